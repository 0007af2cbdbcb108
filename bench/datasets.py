"""Image datasets the project was never tuned on, written as class folders outside the repository.

Selection and defaults must hold on data nobody chose them on (issue #24). Both sets come from
offline packages, are written once into the cache folder (`$AUTOML_TL_CACHE/bench-data/<name>`,
never into the repository) as ``train/<class>/*.png`` and ``test/<class>/*.png``, and the folder's
path is printed for `automl-tl search --modality vision --data PATH/train --test PATH/test`:

* ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes), a
  stratified 70 / 30 split with seed 0;
* ``fashion``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (28×28 clothing
  images, 10 classes; ``apt-get install dataset-fashion-mnist``), ``--per-class`` images per class
  from its train file and a third as many from its test file.

    python bench/datasets.py digits
    python bench/datasets.py fashion --per-class 60
"""

from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path

import numpy as np
import platformdirs
from PIL import Image

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def home() -> Path:
    return Path(os.environ.get("AUTOML_TL_CACHE") or platformdirs.user_cache_dir("automl-tl")) / "bench-data"


def write(folder: Path, split: str, images: np.ndarray, labels: list[str]) -> None:
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        path = folder / split / label / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(path)


def digits(folder: Path) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images * (255 / 16)).round()
    train, test, y_train, y_test = train_test_split(images, data.target, test_size=0.3, stratify=data.target, random_state=0)
    write(folder, "train", train, [str(y) for y in y_train])
    write(folder, "test", test, [str(y) for y in y_test])


def _idx(name: str) -> np.ndarray:
    with gzip.open(FASHION / name) as handle:
        raw = handle.read()
    if name.endswith("images-idx3-ubyte.gz"):
        return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    return np.frombuffer(raw, np.uint8, offset=8)


def fashion(folder: Path, per_class: int) -> None:
    if not FASHION.is_dir():
        raise SystemExit(f"{FASHION} is missing: apt-get install dataset-fashion-mnist")
    for split, prefix, count in (("train", "train", per_class), ("test", "t10k", max(1, per_class // 3))):
        images, labels = _idx(f"{prefix}-images-idx3-ubyte.gz"), _idx(f"{prefix}-labels-idx1-ubyte.gz")
        chosen = np.concatenate([np.flatnonzero(labels == c)[:count] for c in range(10)])
        write(folder, split, images[chosen], [FASHION_CLASSES[c] for c in labels[chosen]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["digits", "fashion"])
    parser.add_argument("--per-class", type=int, default=60, help="fashion: training images per class")
    options = parser.parse_args()
    folder = home() / (options.name if options.name == "digits" else f"fashion-{options.per_class}")
    if not (folder / "test").is_dir():
        digits(folder) if options.name == "digits" else fashion(folder, options.per_class)
    print(folder)


if __name__ == "__main__":
    main()
