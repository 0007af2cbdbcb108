"""Decoding image files with Pillow into plain RGB, whatever the file's mode.

Only Pillow and numpy here (no torch): the data loader uses it to check files before any model
loads, and the preprocessor to decode them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from automl_tl.errors import DataError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm"}
)
"""File name endings read as images (compared in lower case)."""

IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "readme", "readme.md", "readme.txt", "license", "license.txt"})
"""Files that are commonly found in image folders and are not data (hidden files are ignored too)."""

BACKGROUND = (255, 255, 255)
"""Transparent pixels are composited onto white (what an image viewer shows)."""


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_ignored_name(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED_NAMES


def open_rgb(path: Path | str, max_short_side: int | None = None) -> Image.Image:
    """Decode ``path`` to an RGB image, shrunk so its shorter side is at most ``max_short_side``.

    Greyscale, palette, CMYK, 16-bit and float images become RGB; transparency is composited on
    white; EXIF orientation is applied; an animated GIF gives its first frame. Raises `DataError`
    naming the file when it cannot be decoded.
    """
    try:
        with Image.open(path) as image:
            if max_short_side and image.format == "JPEG":
                # JPEG can decode at 1/2, 1/4 or 1/8 scale directly: much faster for big photos
                scale = max_short_side / min(image.size)
                if scale < 1:
                    image.draft("RGB", (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))))
            image.load()
            rgb = to_rgb(_upright(image))
    except DataError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for broken files
        raise DataError(f"cannot read image {path}: {describe_error(exc)}") from None
    if max_short_side and min(rgb.size) > max_short_side:
        scale = max_short_side / min(rgb.size)
        size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return rgb


def check_image(path: Path) -> str | None:
    """Why ``path`` cannot be used as an image, or None when it decodes.

    Decodes for real (a truncated JPEG passes ``Image.verify``), but JPEGs at 1/8 scale, so
    checking a folder of photos costs a fraction of reading it.
    """
    if not path.is_file():
        return "file not found" if not path.exists() else "not a file"
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
            image.load()
            if image.size[0] < 1 or image.size[1] < 1:
                return "empty image"
            to_rgb(image)  # a mode Pillow cannot convert fails here, not halfway through a run
    except Exception as exc:
        return describe_error(exc)
    return None


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; unreadable EXIF is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:
        return image


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if type(exc).__name__ == "UnidentifiedImageError":
        return "not an image Pillow can read"
    return text


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB (8 bits per channel)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _wide_grey_to_rgb(image)
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    elif mode == "L" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, BACKGROUND)
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale: scaled to 0–255 (``convert`` would clip them at 255).

    A float image holding NaN or infinity is refused: scaled, it becomes garbage pixels (or NaN
    inputs that poison every trial), so it is a bad file, named or skipped like any other.
    """
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("holds NaN or infinite pixel values")
    if image.mode.startswith("I;16"):
        values = values / 257.0
    else:
        low, high = float(values.min()), float(values.max())
        values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    grey = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    return grey.convert("RGB")


def median_side(items: Sequence[object], sample: int, seed: int) -> int | None:
    """The median short side of up to ``sample`` of the images (headers only), or None when none can be read.

    Sampled with the run's seed so the same data always gives the same answer (the resolution
    enters the cache key and the configuration's fingerprint through the preprocessor).
    """
    paths = [item for item in items if isinstance(item, str | Path)]
    chosen = random.Random(seed).sample(paths, min(sample, len(paths)))
    sides = []
    for path in chosen:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return int(np.median(sides)) if sides else None
