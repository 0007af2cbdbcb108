"""timm and torchvision backbones for the vision modality, registered as backbone plugins.

Cheap to import (no torch): the catalogue checks for weight files only; networks are built in
`automl_tl_vision_zoo.networks`. Names are ``timm:<model>`` and ``torchvision:<model>``; the
weights come from the vision option ``weights`` (``--weights FILE``) or from the local caches the
libraries themselves read, never from a download.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl_tl.contract import BackboneInfo, BackbonePlugin
from automl_tl.hub import cached_offline

if TYPE_CHECKING:
    from automl_tl.backbone import Backbone

__all__ = ["TimmBackbones", "TorchvisionBackbones"]

TIMM_MODELS = (
    ("resnet18", "timm/resnet18.a1_in1k", "12M params"),
    ("resnet50", "timm/resnet50.a1_in1k", "26M params"),
    ("mobilenetv3_small_100", "timm/mobilenetv3_small_100.lamb_in1k", "2.5M params"),
    ("convnext_atto", "timm/convnext_atto.d2_in1k", "3.7M params"),
    ("efficientnet_b0", "timm/efficientnet_b0.ra_in1k", "5.3M params"),
    ("vit_tiny_patch16_224", "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", "5.7M params"),
)
"""Listed for discovery; any other timm model of these families works by name too."""
TORCHVISION_MODELS = (
    ("resnet18", "resnet18-f37072fd.pth", "12M params"),
    ("resnet50", "resnet50-11ad3fa6.pth", "26M params"),
    ("mobilenet_v3_small", "mobilenet_v3_small-047dcff4.pth", "2.5M params"),
    ("mobilenet_v3_large", "mobilenet_v3_large-5c1a4163.pth", "5.5M params"),
    ("convnext_tiny", "convnext_tiny-983f1562.pth", "29M params"),
    ("vit_b_16", "vit_b_16-c867db91.pth", "86M params"),
)
"""torchvision's ImageNet weights and the file name torch hub caches them under."""


def torch_hub_checkpoints() -> Path:
    """Where ``torch.hub`` keeps downloaded weights, found without importing torch."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


class TimmBackbones(BackbonePlugin):
    name = "timm"
    modality = "vision"
    description = "any timm model (ResNet, ConvNeXt, EfficientNet/MobileNetV3, ViT families) from local weights"

    def backbones(self) -> Sequence[BackboneInfo]:
        return [BackboneInfo(f"timm:{model}", f"hf:{repo}", size, cached_offline(repo), "or --weights FILE")
                for model, repo, size in TIMM_MODELS]

    def handles(self, name: str) -> bool:
        return name.startswith("timm:")

    def build_backbone(self, name: str, options: Any) -> Backbone:
        from automl_tl_vision_zoo.networks import build_timm

        return build_timm(name.removeprefix("timm:"), _resolution(options), options.weights)


class TorchvisionBackbones(BackbonePlugin):
    name = "torchvision"
    modality = "vision"
    description = "torchvision ResNet, MobileNetV3, ConvNeXt and ViT from local weights"

    def backbones(self) -> Sequence[BackboneInfo]:
        checkpoints = torch_hub_checkpoints()
        return [BackboneInfo(f"torchvision:{model}", "torch hub cache", size, (checkpoints / file).is_file(), "or --weights FILE")
                for model, file, size in TORCHVISION_MODELS]

    def handles(self, name: str) -> bool:
        return name.startswith("torchvision:")

    def build_backbone(self, name: str, options: Any) -> Backbone:
        from automl_tl_vision_zoo.networks import build_torchvision

        return build_torchvision(name.removeprefix("torchvision:"), _resolution(options), options.weights)


def _resolution(options: Any) -> int:
    """The vision option's side; unset, the vision plugin's default for images of unknown size.

    A backbone plugin does not see the data, so it cannot fit the side to the images as the
    vision plugin does: give ``--resolution`` (0 for the model's own size) for large photos.
    """
    from automl_tl_vision import fit_resolution

    return options.resolution if options.resolution is not None else fit_resolution(None)
