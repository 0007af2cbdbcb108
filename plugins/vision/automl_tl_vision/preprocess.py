"""Image file → normalised tensor at the backbone's input resolution, with training augmentation.

``load`` (cached by the core, once per example) decodes the file to RGB uint8, shrunk so that its
shorter side is at most ``8/7 × resolution``: a 12-megapixel photo is kept as ~256 px for a 224 px
model, not 36 MB, and small images (32 px CIFAR) are kept as they are. ``transform`` crops and
resizes that to ``resolution × resolution`` and normalises it; batches are stacked channels-last,
the layout CPU convolutions run fastest in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from automl_tl_vision.images import open_rgb

KEEP_FACTOR = 8 / 7
"""Decoded images keep a shorter side of at most this × resolution (224 → 256, the classic resize-then-crop)."""
CROP_SCALE = (0.7, 1.0)
"""Random resized crop: fraction of the image's area kept."""
CROP_RATIO = (3 / 4, 4 / 3)
"""Random resized crop: aspect ratio range of the crop."""
JITTER = 0.2
"""Colour jitter: brightness, contrast and saturation each scaled by a factor in 1 ± JITTER."""
_GREY = (0.299, 0.587, 0.114)


class ImagePreprocessor:
    """The vision plugin's `automl_tl.backbone.Preprocessor`."""

    def __init__(self, resolution: int, mean: Sequence[float], std: Sequence[float]) -> None:
        if resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        self.resolution = int(resolution)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.keep_side = math.ceil(self.resolution * KEEP_FACTOR)
        # inputs are 0..255 floats: fold the /255 into the normalisation constants
        self._shift = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1) * 255.0
        self._scale = 1.0 / (torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1) * 255.0)
        self._grey = torch.tensor(_GREY, dtype=torch.float32).view(3, 1, 1)
        self.fingerprint = (
            f"vision-image-v1:res={self.resolution}:keep={self.keep_side}:centre-square-crop:bilinear-aa"
            f":mean={','.join(f'{v:.4f}' for v in self.mean)}:std={','.join(f'{v:.4f}' for v in self.std)}"
        )

    def load(self, item: Any) -> Tensor:
        """(3, H, W) uint8 RGB; `DataError` naming the file when it cannot be decoded."""
        image = open_rgb(Path(item), self.keep_side)
        array = np.array(image, dtype=np.uint8)  # a writable copy, (H, W, 3)
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def transform(self, raw: Tensor, augment: bool) -> dict[str, Tensor]:
        """``{"pixel_values": (3, R, R) float32}``, normalised with the backbone's mean and std.

        Without augmentation: the centred square crop (the whole image when it is square) resized
        to R. With it: a random resized crop (70–100 % of the area, aspect 3:4–4:3), a horizontal
        flip half the time and mild brightness/contrast/saturation jitter.
        """
        _, height, width = raw.shape
        if augment:
            top, left, crop_h, crop_w = _random_crop_box(height, width)
        else:
            side = min(height, width)
            top, left, crop_h, crop_w = (height - side) // 2, (width - side) // 2, side, side
        x = raw[:, top : top + crop_h, left : left + crop_w].float()
        if (crop_h, crop_w) != (self.resolution, self.resolution):
            x = F.interpolate(
                x[None], size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False
            )[0]
        if augment:
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
            x = self._jitter(x)
        return {"pixel_values": ((x - self._shift) * self._scale).contiguous()}

    def collate(self, features: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """(B, 3, R, R) in channels-last memory layout (same shape; faster convolutions on CPU)."""
        batch = torch.stack([f["pixel_values"] for f in features])
        return {"pixel_values": batch.contiguous(memory_format=torch.channels_last)}

    def length(self, raw: Tensor) -> int:
        return 0  # every image becomes R × R: all alike

    def _jitter(self, x: Tensor) -> Tensor:
        brightness, contrast, saturation = (1.0 + (torch.rand(3) * 2 - 1) * JITTER).tolist()
        x = x * brightness
        mean_grey = (x * self._grey).sum(0).mean()
        x = (x - mean_grey) * contrast + mean_grey
        grey = (x * self._grey).sum(0, keepdim=True)
        x = (x - grey) * saturation + grey
        return x.clamp(0.0, 255.0)


def _random_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop covering `CROP_SCALE` of the area (torch RNG)."""
    area = height * width
    log_low, log_high = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(10):
        scale, log_ratio, u_top, u_left = torch.rand(4).tolist()
        target = area * (CROP_SCALE[0] + scale * (CROP_SCALE[1] - CROP_SCALE[0]))
        ratio = math.exp(log_low + log_ratio * (log_high - log_low))
        crop_w = round(math.sqrt(target * ratio))
        crop_h = round(math.sqrt(target / ratio))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            return int(u_top * (height - crop_h + 1)), int(u_left * (width - crop_w + 1)), crop_h, crop_w
    return 0, 0, height, width
