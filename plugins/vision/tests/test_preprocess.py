"""Decoding any image mode to RGB, shrinking on load, resizing, normalising and augmenting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from automl_tl.errors import DataError  # noqa: E402
from automl_tl_vision.images import open_rgb  # noqa: E402
from automl_tl_vision.preprocess import ImagePreprocessor  # noqa: E402


@pytest.fixture
def pre() -> ImagePreprocessor:
    return ImagePreprocessor(64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_greyscale_becomes_rgb(tmp_path: Path, image, pre: ImagePreprocessor) -> None:
    raw = pre.load(image(tmp_path / "g.png", (90, 90, 90), mode="L"))
    assert raw.shape == (3, 32, 32) and raw.dtype == torch.uint8
    assert torch.equal(raw[0], raw[1]) and torch.equal(raw[1], raw[2])


def test_palette_becomes_rgb(tmp_path: Path, image, pre: ImagePreprocessor) -> None:
    path = image(tmp_path / "p.gif", (200, 30, 30), mode="P")
    assert Image.open(path).mode == "P"
    raw = pre.load(path).float()
    assert raw.shape == (3, 32, 32)
    assert raw[0].mean() > 150 and raw[1].mean() < 90  # still red


def test_transparency_is_composited_on_white(tmp_path: Path, pre: ImagePreprocessor) -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:, :4] = (0, 0, 255, 255)  # left half opaque blue, right half fully transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    raw = pre.load(tmp_path / "a.png")
    assert raw[:, 0, 0].tolist() == [0, 0, 255]
    assert raw[:, 0, 7].tolist() == [255, 255, 255]
    palette = Image.fromarray(rgba, "RGBA").convert("P")  # palette with a transparent index
    palette.save(tmp_path / "t.png", transparency=palette.getpixel((7, 0)))
    assert pre.load(tmp_path / "t.png")[:, 0, 7].tolist() == [255, 255, 255]


def test_sixteen_bit_greyscale_keeps_its_range(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(tmp_path / "w.png")
    assert open_rgb(tmp_path / "w.png").getpixel((0, 0)) == (156, 156, 156)


def test_large_images_are_shrunk_on_load(tmp_path: Path, image, pre: ImagePreprocessor) -> None:
    raw = pre.load(image(tmp_path / "big.jpg", size=(400, 300)))
    assert raw.shape == (3, pre.keep_side, round(400 * pre.keep_side / 300))
    assert pre.keep_side == 74  # ceil(64 * 8 / 7)


def test_corrupt_file_names_it(tmp_path: Path, pre: ImagePreprocessor) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"bad\.jpg"):
        pre.load(tmp_path / "bad.jpg")


def test_transform_resizes_and_normalises(pre: ImagePreprocessor) -> None:
    raw = torch.full((3, 20, 40), 255, dtype=torch.uint8)
    raw[:, :, 10:30] = 0  # the centre square is black, the side strips white
    x = pre.transform(raw, augment=False)["pixel_values"]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, -1.0))  # (0/255 - 0.5) / 0.5: the centre crop only


def test_augment_is_random_and_in_range(pre: ImagePreprocessor) -> None:
    raw = torch.randint(0, 256, (3, 48, 40), dtype=torch.uint8)
    torch.manual_seed(0)
    a, b = (pre.transform(raw, augment=True)["pixel_values"] for _ in range(2))
    assert a.shape == b.shape == (3, 64, 64)
    assert not torch.equal(a, b)
    assert a.min() >= -1.0 - 1e-5 and a.max() <= 1.0 + 1e-5
    torch.manual_seed(0)
    assert torch.equal(pre.transform(raw, augment=True)["pixel_values"], a)  # seeded by the core's torch seed


def test_collate_is_channels_last(pre: ImagePreprocessor) -> None:
    raw = torch.zeros((3, 32, 32), dtype=torch.uint8)
    batch = pre.collate([pre.transform(raw, False) for _ in range(3)])["pixel_values"]
    assert batch.shape == (3, 3, 64, 64)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert pre.length(raw) == 0


def test_fingerprint_tracks_what_changes_the_output() -> None:
    a = ImagePreprocessor(64, (0.5,) * 3, (0.5,) * 3).fingerprint
    assert a != ImagePreprocessor(96, (0.5,) * 3, (0.5,) * 3).fingerprint
    assert a != ImagePreprocessor(64, (0.485, 0.456, 0.406), (0.5,) * 3).fingerprint
