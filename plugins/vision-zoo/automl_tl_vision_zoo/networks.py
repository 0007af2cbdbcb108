"""timm and torchvision networks cut into stem, blocks and the model's own pooling.

Each family is cut where its ``forward_features`` has natural seams: ResNets after the max-pool
and at each ``layerN``; ConvNeXt at its stages (torchvision's downsampling layer joins the stage
after it); EfficientNet / MobileNetV3 at their stages; ViTs at their transformer layers, on
(B, T, D) tokens with the CLS token first. What ``forward_features`` does after the last block
(a final norm, EfficientNet's 1×1 head convolution) belongs to the pooling, so mean and weighted
pooling read the blocks' own outputs. Widths are measured by one forward pass at the input
resolution, not read from per-family attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from automl_tl.backbone import Backbone, Hidden
from automl_tl.errors import UserError
from automl_tl.provenance import file_digest
from automl_tl_vision.backbones import IMAGENET_MEAN, IMAGENET_STD, Block, ConvStem
from automl_tl_vision.preprocess import ImagePreprocessor

NATIVE = 224
"""Training resolution of every listed model: ``resolution = 0`` uses it."""


class TokenStem(nn.Module):
    """``pixel_values`` → (B, T, D) tokens, by a function of the model's embedding modules.

    ``tokens`` are the CLS token and position embeddings, parameters of the model itself rather
    than of a module: registered here, they train with the stem.
    """

    def __init__(self, parts: nn.ModuleDict, tokens: Sequence[nn.Parameter],
                 embed: Callable[[nn.ModuleDict, Tensor], Tensor]) -> None:
        super().__init__()
        self.parts = parts
        self.tokens = nn.ParameterList([t for t in tokens if isinstance(t, nn.Parameter)])
        self.embed = embed

    def forward(self, batch: dict[str, Tensor]) -> Hidden:
        return Hidden(self.embed(self.parts, batch["pixel_values"].contiguous()), None)


class Head(nn.Module):
    """The model's own pooling of the last block's states: ``finish`` then ``pool`` to (B, width)."""

    def __init__(self, finish: nn.Module, pool: Callable[[Tensor], Tensor], owned: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.finish = finish
        self.owned = nn.ModuleList(owned)
        """The modules ``pool`` calls, registered here so their weights belong to the pooling."""
        self.pool = pool

    def forward(self, hidden: Hidden) -> Tensor:
        return self.pool(self.finish(hidden.states)).flatten(1)


def build_timm(model_name: str, resolution: int, weights: Path | None) -> Backbone:
    import timm

    try:
        model = timm.create_model(model_name, pretrained=False, num_classes=0, **_dynamic_size(model_name))
    except RuntimeError as exc:  # timm's "Unknown model"
        raise UserError(f"timm has no model {model_name!r}: {exc}", hint="see timm.list_models()") from None
    if weights is not None:
        origin = _load(model, weights, f"timm:{model_name}")
    else:
        origin = _timm_cache(timm, model, model_name)
    config = model.pretrained_cfg
    native = int(config.get("input_size", (3, NATIVE, NATIVE))[-1])
    mean, std = config.get("mean", IMAGENET_MEAN), config.get("std", IMAGENET_STD)
    stem, blocks, finish = _cut_timm(model)
    head = Head(finish, lambda x: model.forward_head(x, pre_logits=True), _rest(model, stem, blocks, finish))
    return _backbone(model.eval(), stem, blocks, head, resolution or native, mean, std, f"timm:{model_name}:{origin}")


def build_torchvision(model_name: str, resolution: int, weights: Path | None) -> Backbone:
    import torchvision

    size = resolution or NATIVE
    builder = getattr(torchvision.models, model_name, None)
    if builder is None or not model_name.startswith(("resnet", "mobilenet_v3", "convnext", "vit_")):
        raise UserError(f"torchvision:{model_name} is not a model this plugin can cut",
                        hint="use a torchvision ResNet, MobileNetV3, ConvNeXt or ViT (e.g. torchvision:resnet18)")
    model = builder(weights=None, **({"image_size": size} if model_name.startswith("vit_") else {}))
    if weights is None:
        from automl_tl_vision_zoo import torch_hub_checkpoints

        url = torchvision.models.get_model_weights(model_name).DEFAULT.url
        weights = torch_hub_checkpoints() / url.rsplit("/", 1)[1]
        if not weights.is_file():
            raise UserError(f"no weights for torchvision:{model_name} on this machine (looked for {weights})",
                            hint="pass a state dict with --weights FILE")
    origin = _load(model, weights, f"torchvision:{model_name}", resize=size if model_name.startswith("vit_") else None)
    stem, blocks, head = _cut_torchvision(model)
    return _backbone(model.eval(), stem, blocks, head, size, IMAGENET_MEAN, IMAGENET_STD, f"torchvision:{model_name}:{origin}")


def _backbone(model: nn.Module, stem: nn.Module, blocks: list[nn.Module], head: nn.Module, size: int,
              mean: Sequence[float], std: Sequence[float], fingerprint: str) -> Backbone:
    """The cut network, its widths measured by one pass over a blank image of the input size."""
    with torch.no_grad():
        hidden = stem({"pixel_values": torch.zeros(1, 3, size, size)})
        widths = []
        for block in blocks:
            hidden = block(hidden)
            widths.append(int(hidden.states.shape[-1] if hidden.states.dim() == 3 else hidden.states.shape[1]))
        width = int(head(hidden).shape[-1])
    return Backbone(preprocessor=ImagePreprocessor(size, mean, std), stem=stem, blocks=blocks, pool=head, width=width,
                    block_widths=widths, fingerprint=fingerprint)


def _dynamic_size(model_name: str) -> dict[str, Any]:
    """ViTs interpolate their position embeddings to any input size; other families take any size anyway."""
    return {"dynamic_img_size": True} if "vit" in model_name or "deit" in model_name else {}


def _cut_timm(model: nn.Module) -> tuple[nn.Module, list[nn.Module], nn.Module]:
    """(stem, blocks, what forward_features does after the last block)."""
    if hasattr(model, "layer4"):
        stem = ConvStem(nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool))
        return stem, [Block(getattr(model, f"layer{i}"), channels_last=True) for i in range(1, 5)], nn.Identity()
    if hasattr(model, "stages"):
        return ConvStem(model.stem), [Block(s, channels_last=True) for s in model.stages], model.norm_pre
    if hasattr(model, "conv_stem"):
        finish = nn.Sequential(model.conv_head, model.bn2) if hasattr(model, "bn2") else nn.Identity()
        return ConvStem(nn.Sequential(model.conv_stem, model.bn1)), [Block(s, channels_last=True) for s in model.blocks], finish
    if hasattr(model, "patch_embed") and hasattr(model, "blocks"):
        parts = nn.ModuleDict({"patch_embed": model.patch_embed, "patch_drop": model.patch_drop, "norm_pre": model.norm_pre})
        embed = lambda parts, x: parts["norm_pre"](parts["patch_drop"](model._pos_embed(parts["patch_embed"](x))))  # noqa: E731
        tokens = [getattr(model, name, None) for name in ("cls_token", "reg_token", "pos_embed")]
        return TokenStem(parts, tokens, embed), [Block(b) for b in model.blocks], model.norm
    raise UserError(f"timm model {type(model).__name__} is of a family this plugin cannot cut into blocks",
                    hint="use a ResNet, ConvNeXt, EfficientNet/MobileNetV3 or ViT model")


def _rest(model: nn.Module, stem: nn.Module, blocks: list[nn.Module], finish: nn.Module) -> list[nn.Module]:
    """The model's modules that neither the stem, the blocks nor ``finish`` hold: what ``forward_head`` uses."""
    taken = {id(p) for part in (stem, *blocks, finish) for p in part.parameters()}
    return [child for child in model.children() if not any(id(p) in taken for p in child.parameters())]


def _cut_torchvision(model: nn.Module) -> tuple[nn.Module, list[nn.Module], nn.Module]:
    name = type(model).__name__
    if name == "ResNet":
        stem = ConvStem(nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool))
        blocks = [Block(getattr(model, f"layer{i}"), channels_last=True) for i in range(1, 5)]
        return stem, blocks, Head(nn.Identity(), model.avgpool, [model.avgpool])
    if name == "MobileNetV3":
        features = list(model.features)
        head = Head(features[-1], model.avgpool, [features[-1], model.avgpool])
        return ConvStem(features[0]), [Block(f, channels_last=True) for f in features[1:-1]], head
    if name == "ConvNeXt":
        features = list(model.features)
        stages = [features[1]] + [nn.Sequential(features[i], features[i + 1]) for i in range(2, len(features), 2)]
        pool = nn.Sequential(model.avgpool, model.classifier[0])
        return ConvStem(features[0]), [Block(s, channels_last=True) for s in stages], Head(nn.Identity(), pool, [pool])
    if name == "VisionTransformer":
        parts = nn.ModuleDict({"conv_proj": model.conv_proj, "dropout": model.encoder.dropout})

        def embed(parts: nn.ModuleDict, x: Tensor) -> Tensor:
            tokens = model._process_input(x)
            tokens = torch.cat([model.class_token.expand(x.shape[0], -1, -1), tokens], dim=1)
            return parts["dropout"](tokens + model.encoder.pos_embedding)

        ln = model.encoder.ln
        tokens = [model.class_token, model.encoder.pos_embedding]
        return TokenStem(parts, tokens, embed), [Block(layer) for layer in model.encoder.layers], Head(ln, lambda x: x[:, 0], [ln])
    raise UserError(f"torchvision model {name} is of a family this plugin cannot cut into blocks")


def _load(model: nn.Module, path: Path, name: str, resize: int | None = None) -> str:
    """Load a local state dict into ``model``; returns the file's digest for the fingerprint.

    A classifier head the file has and the backbone does not is ignored; any other mismatch is a
    `UserError` naming a missing key, since a wrong file would otherwise be a silently random net.
    """
    path = Path(path).expanduser()
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated file, a pickle of a whole model, not a state dict at all
        raise UserError(f"cannot read weights {path} for {name}: {type(exc).__name__}: {str(exc)[:160]}",
                        hint="pass a state dict saved with torch.save(model.state_dict()) or safetensors") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise UserError(f"weights {path} hold a {type(state).__name__}, not a state dict", hint="save model.state_dict()")
    if resize is not None and "encoder.pos_embedding" in state:
        from torchvision.models.vision_transformer import interpolate_embeddings

        state = interpolate_embeddings(resize, model.patch_size, state)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    missing = sorted(set(own) - set(state))
    wrong = sorted(k for k in state if state[k].shape != own[k].shape)
    if missing or wrong:
        key = (missing or wrong)[0]
        raise UserError(f"weights {path} do not fit {name}: {len(missing)} missing, {len(wrong)} of another shape (e.g. {key})",
                        hint="pass the state dict of the same architecture")
    model.load_state_dict(state, strict=False)
    return f"file:{file_digest(path)}"


def _timm_cache(timm: Any, model: nn.Module, model_name: str) -> str:
    """Load timm's own pretrained weights when they are in the local Hugging Face cache; else a `UserError`."""
    hub_id = model.pretrained_cfg.get("hf_hub_id")
    from automl_tl.hub import cached_offline

    if not hub_id or not cached_offline(hub_id):
        raise UserError(f"no weights for timm:{model_name} on this machine (not in the Hugging Face cache)",
                        hint="pass a state dict with --weights FILE")
    pretrained = timm.create_model(model_name, pretrained=True, num_classes=0, **_dynamic_size(model_name))
    model.load_state_dict(pretrained.state_dict())
    return f"hf:{hub_id}"
