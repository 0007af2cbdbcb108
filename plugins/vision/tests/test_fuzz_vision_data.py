"""Fuzzing the vision loader: any bytes in an image file, any manifest, give images or one `DataError`.

Image files are random bytes, a real PNG or JPEG cut at a random byte, one with random bytes
overwritten, or a float TIFF holding NaN or infinity; the class folders also hold random symlinks
(loops, links across classes, to files, dangling). The loader decodes every file before any model
loads, so each image it accepts must then open, with finite pixels; each file is used once, under
the label of the folder it really lies in; and with skip_bad_files every bad one is skipped and
counted, never fatal. (Also here, as plain tests: the manifest and folder cases found while fuzzing.)
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from automl_tl.contract import DataRequest
from automl_tl.errors import DataError
from automl_tl_vision.data import load_images
from automl_tl_vision.images import open_rgb

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _encoded(fmt: str) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _float_tiff(bad: float) -> bytes:
    pixels = np.ones((8, 8), dtype=np.float32)
    pixels[2, 5] = bad
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="F").save(buffer, format="TIFF")
    return buffer.getvalue()


REAL = {".png": _encoded("PNG"), ".jpg": _encoded("JPEG")}


def damaged(suffix: str) -> st.SearchStrategy[bytes]:
    real = REAL[suffix]
    return st.one_of(
        st.binary(max_size=200),
        st.integers(0, len(real)).map(lambda n: real[:n]),
        st.lists(st.tuples(st.integers(0, len(real) - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
            lambda flips: bytes(dict(flips).get(i, b) for i, b in enumerate(real))
        ),
    )


files = st.lists(
    st.one_of(
        st.sampled_from([".png", ".jpg"]).flatmap(lambda s: st.tuples(st.just(s), damaged(s))),
        st.sampled_from([np.nan, np.inf, -np.inf]).map(lambda bad: (".tiff", _float_tiff(bad))),
    ),
    min_size=1,
    max_size=4,
)
links = st.lists(
    st.tuples(st.sampled_from(["red", "blue"]),
              st.sampled_from(["..", ".", "../red", "../blue", "../..", "good.png", "../blue/good.png", "gone.png"])),
    max_size=3,
)
"""Symlinks to put in the class folders: (folder, target)."""


def _load(path: Path, skip: bool) -> object:
    return load_images(DataRequest(path=path, data_home=path, skip_bad_files=skip))


@FUZZ
@given(files=files, links=links, skip=st.booleans())
def test_any_image_bytes_give_images_or_one_data_error(files: list[tuple[str, bytes]], links: list[tuple[str, str]], skip: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "data"
        for label in ("red", "blue"):
            (root / label).mkdir(parents=True)
            (root / label / "good.png").write_bytes(REAL[".png"])
        for i, (suffix, content) in enumerate(files):
            (root / ("red", "blue")[i % 2] / f"fuzz{i}{suffix}").write_bytes(content)
        for i, (where, target) in enumerate(links):
            os.symlink(target, root / where / f"link{i}{'.png' if target.endswith('.png') else ''}")
        try:
            data = _load(root, skip)
        except DataError as exc:
            assert (not skip or "labelled both" in exc.message) and exc.message
            return
        assert len(data.examples) + len(data.skipped) == 2 + len(files)  # links add no file, and lose none
        real = [Path(os.path.realpath(e.item)) for e in data.examples]
        assert len(set(real)) == len(real) and all(r.parent.name == e.label for r, e in zip(real, data.examples))
        for example in data.examples:
            assert open_rgb(example.item).size[0] > 0  # accepted means decodable
            with Image.open(example.item) as raw:
                assert raw.mode != "F" or np.isfinite(np.asarray(raw)).all()


@FUZZ
@given(
    header=st.sampled_from(["path,label", "path,label,split", "file,class,group", "label", ""]),
    rows=st.lists(st.lists(st.one_of(st.sampled_from(["a.png", "b.png", "nope.png", "train", "test", "x"]), st.text(max_size=6)),
                           max_size=4), max_size=6),
    raw=st.one_of(st.none(), st.binary(max_size=100)),
)
def test_any_manifest_gives_images_or_one_data_error(header: str, rows: list[list[str]], raw: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "a.png").write_bytes(REAL[".png"])
        (root / "b.png").write_bytes(REAL[".png"])
        manifest = root / "manifest.csv"
        if raw is not None:
            manifest.write_bytes(raw)
        else:
            manifest.write_text("\n".join([header, *(",".join(row) for row in rows)]), encoding="utf-8", errors="surrogatepass")
        try:
            data = _load(manifest, skip=False)
        except DataError as exc:
            assert exc.message
            return
        assert data.examples and all(e.label.strip() == e.label and e.label for e in data.examples)


def test_manifest_conflicts_repeats_and_empty_class_folders(tmp_path: Path) -> None:
    """The cases found while fuzzing, as plain tests: one image under two labels, a repeated row, an empty class."""
    for name in ("a.png", "b.png", "c.png", "d.png"):
        (tmp_path / name).write_bytes(REAL[".png"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.png,red\nb.png,red\nc.png,blue\nd.png,blue\na.png,blue\n")
    with pytest.raises(DataError, match="line 6: a.png is labelled both 'red' and 'blue'"):
        _load(manifest, skip=False)
    manifest.write_text("path,label\na.png,red\nb.png,red\nc.png,blue\nd.png,blue\na.png,red\n")
    data = _load(manifest, skip=False)
    assert len(data.examples) == 4 and "1 repeated row(s) of m.csv ignored" in data.description

    folders = tmp_path / "folders"
    for label in ("red", "blue"):
        (folders / label).mkdir(parents=True)
        (folders / label / "x.png").write_bytes(REAL[".png"])
    (folders / "green").mkdir()
    assert "1 empty class folder(s) ignored: green" in _load(folders, skip=False).description
