"""Reading image datasets: class folders, train/val/test sub-splits, CSV manifests, bad files."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from automl_tl.contract import DataRequest
from automl_tl.errors import DataError
from automl_tl_vision import VisionPlugin
from automl_tl_vision.data import DEFAULT_DATASET


def load(path: Path | None, home: Path | None = None, **kwargs):
    return VisionPlugin().load_data(DataRequest(path=path, data_home=home or Path("/nonexistent"), **kwargs))


def test_class_folders(image_folder: Path) -> None:
    data = load(image_folder)
    assert Counter(e.label for e in data.examples) == {"red": 10, "green": 10, "blue": 10}
    assert data.test is None and data.validation is None and not data.skipped
    assert all(isinstance(e.item, Path) and e.item.is_file() and e.group is None for e in data.examples)
    assert "30 training images in 3 classes" in data.description


def test_nested_folders_clutter_and_every_common_format(tmp_path: Path, image) -> None:
    root = tmp_path / "data"
    for i, suffix in enumerate((".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")):
        image(root / "a" / "deeper" / f"img{i}{suffix}", (200, 0, 0))
        image(root / "b" / f"img{i}{suffix.upper()}", (0, 0, 200))
    (root / "a" / ".DS_Store").write_bytes(b"\0\1")
    (root / "b" / "Thumbs.db").write_bytes(b"\0\1")
    data = load(root)
    assert Counter(e.label for e in data.examples) == {"a": 8, "b": 8}


def test_train_val_test_sub_splits(tmp_path: Path, class_folders) -> None:
    class_folders(tmp_path / "ds" / "train", per_class=6)
    class_folders(tmp_path / "ds" / "val", per_class=2)
    class_folders(tmp_path / "ds" / "test", per_class=3)
    data = load(tmp_path / "ds")
    assert len(data.examples) == 18 and len(data.validation) == 6 and len(data.test) == 9
    assert all("train" in e.item.parts for e in data.examples)
    assert all("test" in e.item.parts for e in data.test)
    assert {e.label for e in data.test} == {"red", "green", "blue"}


def test_train_and_test_without_validation(tmp_path: Path, class_folders) -> None:
    class_folders(tmp_path / "ds" / "train", per_class=4)
    class_folders(tmp_path / "ds" / "validation", per_class=1)
    data = load(tmp_path / "ds")
    assert len(data.validation) == 3 and data.test is None


def test_two_validation_folders_are_ambiguous(tmp_path: Path, class_folders) -> None:
    for split in ("train", "val", "validation"):
        class_folders(tmp_path / "ds" / split, per_class=1)
    with pytest.raises(DataError, match="both val/ and validation/"):
        load(tmp_path / "ds")


def test_csv_manifest_relative_paths_split_and_group(tmp_path: Path, image) -> None:
    rows = ["Path,Label,split,group"]
    for i in range(6):
        image(tmp_path / "pics" / f"{i}.png", (200, 0, 0) if i % 2 else (0, 0, 200))
        rows.append(f"pics/{i}.png,{'hot' if i % 2 else 'cold'},{'test' if i >= 4 else ''},g{i % 3}")
    manifest = tmp_path / "meta" / "labels.csv"
    manifest.parent.mkdir()
    (tmp_path / "meta" / "pics").symlink_to(tmp_path / "pics")
    manifest.write_text("\n".join(rows) + "\n")
    data = load(manifest)
    assert [e.label for e in data.examples] == ["cold", "hot", "cold", "hot"]
    assert [e.group for e in data.examples] == ["g0", "g1", "g2", "g0"]
    assert len(data.test) == 2 and data.validation is None
    assert data.examples[0].item == manifest.parent / "pics" / "0.png"


def test_folder_holding_only_a_manifest(tmp_path: Path, image) -> None:
    image(tmp_path / "x.png")
    image(tmp_path / "y.png")
    (tmp_path / "m.csv").write_text("file,class\nx.png,a\ny.png,b\n")
    assert [e.label for e in load(tmp_path).examples] == ["a", "b"]


def test_manifest_without_label_column(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("image,kind\nx.png,a\n")
    with pytest.raises(DataError, match="needs a path and a label column"):
        load(tmp_path / "m.csv")


def test_manifest_missing_file_names_it(tmp_path: Path, image) -> None:
    image(tmp_path / "x.png")
    (tmp_path / "m.csv").write_text("path,label\nx.png,a\ngone.png,b\n")
    with pytest.raises(DataError, match=r"gone\.png: file not found"):
        load(tmp_path / "m.csv")


@pytest.mark.parametrize("content", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-broken"])
def test_corrupt_file_is_a_data_error_naming_it(image_folder: Path, content: bytes) -> None:
    (image_folder / "red" / "broken.png").write_bytes(content)
    with pytest.raises(DataError, match=r"1 file\(s\) cannot be read as images: red/broken\.png") as info:
        load(image_folder)
    assert "--skip-bad-files" in str(info.value)


def test_truncated_jpeg_is_caught(image_folder: Path, image) -> None:
    good = image(image_folder / "green" / "photo.jpg", (0, 200, 0), size=(64, 64)).read_bytes()
    (image_folder / "green" / "photo.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"green/photo\.jpg"):
        load(image_folder)


def test_bad_files_skipped_and_counted(image_folder: Path) -> None:
    (image_folder / "red" / "broken.jpg").write_bytes(b"garbage")
    (image_folder / "blue" / "notes.txt").write_text("not data")
    data = load(image_folder, skip_bad_files=True)
    assert len(data.examples) == 30
    assert sorted(data.skipped) == sorted(
        ["blue/notes.txt: not an image file (.txt)", "red/broken.jpg: not an image Pillow can read"]
    )


def test_a_symlink_in_a_class_folder_is_followed_once_and_never_relabels(image_folder: Path) -> None:
    """``red/up -> ..`` turned 30 images into thousands, in every split; ``red/more -> ../blue`` labelled blue images red too."""
    os.symlink("..", image_folder / "red" / "up")
    data = load(image_folder)
    assert len(data.examples) == 30 and "1 symlink loop(s) not followed: red/up" in data.description
    os.symlink("../blue", image_folder / "red" / "more")
    with pytest.raises(DataError, match=r"one file is labelled both 'blue' \(as blue/000.png\) and 'red' \(as red/more/000.png\)"):
        load(image_folder)


def test_a_float_image_with_nan_or_infinity_is_a_bad_file(image_folder: Path) -> None:
    import numpy as np
    from PIL import Image

    pixels = np.ones((16, 16), dtype=np.float32)
    pixels[3, 4] = np.nan
    Image.fromarray(pixels, mode="F").save(image_folder / "red" / "depth.tiff")
    with pytest.raises(DataError, match=r"red/depth.tiff: holds NaN or infinite pixel values"):
        load(image_folder)
    assert load(image_folder, skip_bad_files=True).skipped == ["red/depth.tiff: holds NaN or infinite pixel values"]


def test_a_repeated_manifest_column_is_refused(tmp_path: Path, image) -> None:
    image(tmp_path / "x.png")
    (tmp_path / "m.csv").write_text("path,label,Label\nx.png,a,b\n")
    with pytest.raises(DataError, match=r"m.csv: the header names the column 'label' 2 times \(columns 2, 3\)"):
        load(tmp_path / "m.csv")


def test_many_bad_files_are_summarised(image_folder: Path) -> None:
    for i in range(8):
        (image_folder / "red" / f"bad{i}.png").write_bytes(b"x")
    with pytest.raises(DataError, match=r"8 file\(s\).*and 3 more"):
        load(image_folder)


def test_images_outside_class_folders(tmp_path: Path, image) -> None:
    image(tmp_path / "a.png")
    with pytest.raises(DataError, match="no class sub-folders.*1 images lie directly in it"):
        load(tmp_path)


def test_missing_path_and_plain_file(tmp_path: Path, image) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nowhere")
    with pytest.raises(DataError, match="not a folder of images or a CSV"):
        load(image(tmp_path / "a.png"))


def test_default_dataset_from_the_data_home(tmp_path: Path, class_folders) -> None:
    class_folders(tmp_path / DEFAULT_DATASET / "train", per_class=3, suffix=".jpg")
    class_folders(tmp_path / DEFAULT_DATASET / "test", per_class=2, suffix=".jpg")
    data = load(None, home=tmp_path)
    assert len(data.examples) == 9 and len(data.test) == 6
    assert data.description.startswith("CIFAR-10 subset")


def test_default_dataset_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar10-small.*not in the data home") as info:
        load(None, home=tmp_path)
    assert "AUTOML_TL_DATA" in str(info.value)


def test_separate_test_path_replaces_the_folders_own(tmp_path: Path, class_folders) -> None:
    class_folders(tmp_path / "ds" / "train", per_class=3)
    class_folders(tmp_path / "ds" / "test", per_class=3)
    class_folders(tmp_path / "other", per_class=1)
    data = load(tmp_path / "ds", test_path=tmp_path / "other")
    assert len(data.test) == 3 and all("other" in e.item.parts for e in data.test)
    assert "replaced by --test" in data.description


SHARED_DATA = Path(os.environ.get("AUTOML_TL_DATA") or Path(__file__).resolve().parents[4] / "shared" / "data")


@pytest.mark.skipif(not (SHARED_DATA / DEFAULT_DATASET).is_dir(), reason="the shared CIFAR-10 subset is not here")
def test_real_cifar_subset() -> None:
    data = load(None, home=SHARED_DATA)
    assert len(data.examples) == 2000 and len(data.test) == 1000
    assert len({e.label for e in data.examples}) == 10
