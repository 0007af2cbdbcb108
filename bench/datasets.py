"""Benchmark datasets made from offline sources, written outside the repository.

Selection and defaults must hold on data nobody chose them on (issue #24), and domain adaptation
needs a source and a target (issue #19). Each set is written once into the cache folder
(`$AUTOML_TL_CACHE/bench-data/<name>`, never into the repository) or into ``--out DIR``, and
the folder's path is printed.

Two image sets, as ``train/<class>/*.png`` and ``test/<class>/*.png``, for `automl-tl search
--modality vision --data PATH/train --test PATH/test`:

* ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes), a
  stratified 70 / 30 split with seed 0;
* ``fashion``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (28×28 clothing
  images, 10 classes; ``apt-get install dataset-fashion-mnist``), ``--per-class`` images per class
  from its train file and a third as many from its test file.

One speech set, for `automl-tl search --modality speech --data PATH/train --test PATH/test`:

* ``speech-voices``: spoken digits synthesised by the speech plugin's eSpeak NG synthesiser
  (``--per-class`` clips per digit at 16 kHz, 18 voices and accents, noise), a quarter of the voices
  (seeded) held out as ``test/``: FSDD-style ``recordings/`` folders of links into ``all/``, so the
  voice is each clip's group and the search validates on voices it did not train on.

* ``fsdd-speakers``: who is speaking rather than what is said: FSDD's recordings in one class
  folder per speaker, digits 0–6 in ``train/`` and 7–9 in ``test/`` (words the model never heard
  from anyone), links into the data home's ``fsdd/recordings``; ``train.csv`` lists ``train/``
  with the digit as each clip's group (``--data SET/train.csv``: validation then holds words out).

One speech pair, for `recipes/speech-synth-to-fsdd.toml` (synthetic voices to real ones):

* ``speech-pair``: ``source/`` spoken digits synthesised by the speech plugin's own eSpeak NG
  synthesiser (``--per-class`` clips per digit, many voices; `automl_tl_speech.synth`),
  ``target/`` the FSDD recordings of every speaker but george and theo and ``target-test/``
  theirs, each an FSDD-style ``recordings/`` folder of symbolic links into the data home's
  ``fsdd/recordings`` (no audio is copied). The speech plugin reads all three by their file
  names, ``{digit}_{speaker}_{index}.wav``: the digit is the label and the speaker (an eSpeak
  voice in the source) the group, so a group split holds whole voices out.

    python bench/datasets.py digits
    python bench/datasets.py fashion --per-class 60
    python bench/datasets.py speech-voices
    python bench/datasets.py fsdd-speakers
    python bench/datasets.py speech-pair --per-class 100 --out /tmp/speech-pair
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import platformdirs
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automl_tl.errors import UserError  # noqa: E402  (after the path: `python bench/datasets.py` from anywhere)

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
PER_CLASS = {"fashion": 60, "speech-pair": 100, "speech-voices": 100}
"""``--per-class`` by default: fashion's training images, the speech sets' synthesised clips per digit."""
SPEECH_PAIR_RATE = 8000
"""The synthetic source's sample rate: FSDD's. At the synthesiser's own 16 kHz the source alone would
carry sound above 4 kHz, a difference of recording bandwidth, where the pair asks about voices."""


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
        raise UserError(f"{FASHION} is missing", hint="apt-get install dataset-fashion-mnist")
    for split, prefix, count in (("train", "train", per_class), ("test", "t10k", max(1, per_class // 3))):
        images, labels = _idx(f"{prefix}-images-idx3-ubyte.gz"), _idx(f"{prefix}-labels-idx1-ubyte.gz")
        chosen = np.concatenate([np.flatnonzero(labels == c)[:count] for c in range(10)])
        write(folder, split, images[chosen], [FASHION_CLASSES[c] for c in labels[chosen]])


def _fsdd() -> Path:
    """The data home's FSDD, which the speech sets link to; a `UserError` where it is not."""
    from automl_tl.datahome import data_home

    fsdd = data_home() / "fsdd"
    if not fsdd.is_dir():
        raise UserError(f"FSDD is not at {fsdd}", hint="set AUTOML_TL_DATA to the data home that holds fsdd/")
    return fsdd


def _synth() -> ModuleType:
    """The speech plugin's eSpeak NG synthesiser; a `UserError` where it cannot run."""
    from automl_tl_speech import synth

    if not synth.available():
        raise UserError("eSpeak NG is not available", hint="pip install espeakng-loader (or apt-get install espeak-ng)")
    return synth


@contextmanager
def _staged(folder: Path) -> Iterator[Path]:
    """A hidden folder beside ``folder``, renamed to it when the block ends well and removed when it does not:
    an interrupted run leaves no half-made set that a later call would take for a finished one (removing
    links removes never what they point to)."""
    staging = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    try:
        yield staging
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def speech_pair(folder: Path, fsdd: Path, per_class: int, seed: int) -> None:
    """Write ``source/``, ``target/`` and ``target-test/`` under ``folder`` (see the module docstring).

    FSDD is read by the speech plugin's own loader, so each recording goes where the search will
    see its speaker.
    """
    from automl_tl_speech.data import DEMO_TEST_SPEAKERS, load_path

    synth = _synth()
    recordings = load_path(fsdd, skip_bad_files=False).examples
    with _staged(folder) as staging:
        synth.synthesize_digits(staging / "source", per_class=per_class, seed=seed, sample_rate=SPEECH_PAIR_RATE)
        for example in recordings:
            file = Path(example.item)
            link = staging / ("target-test" if example.group in DEMO_TEST_SPEAKERS else "target") / "recordings" / file.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(file.resolve())


def speech_voices(folder: Path, per_class: int, seed: int) -> None:
    """Write ``all/`` (the synthesised clips), ``train/`` and ``test/`` (links, split by voice) under ``folder``."""
    import random

    from automl_tl_speech.data import load_path

    synth = _synth()
    with _staged(folder) as staging:
        clips = load_path(synth.synthesize_digits(staging / "all", per_class=per_class, seed=seed), skip_bad_files=False).examples
        voices = sorted({str(clip.group) for clip in clips})  # the speech plugin's reading of the file names
        random.Random(seed).shuffle(voices)
        held = set(voices[: max(1, len(voices) // 4)])
        for clip in clips:
            name = Path(clip.item).name
            link = staging / ("test" if str(clip.group) in held else "train") / "recordings" / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path("../../all/recordings") / name)


SPEAKER_TEST_DIGITS = ("7", "8", "9")
"""fsdd-speakers' test words: the speakers are to be told apart on digits no training clip says."""


def fsdd_speakers(folder: Path, fsdd: Path) -> None:
    """Write ``train/<speaker>/`` and ``test/<speaker>/`` under ``folder``: links to FSDD's recordings, split by digit;
    and ``train.csv``, the same training clips as a manifest whose group is the digit said, so that a search
    told so validates on words its training split does not say, as the test does."""
    from automl_tl_speech.data import load_path

    with _staged(folder) as staging:
        rows = ["path,label,group"]
        for example in load_path(fsdd, skip_bad_files=False).examples:
            file = Path(example.item)
            part = "test" if example.label in SPEAKER_TEST_DIGITS else "train"
            link = staging / part / str(example.group) / file.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(file.resolve())
            if part == "train":
                rows.append(f"train/{example.group}/{file.name},{example.group},{example.label}")
        (staging / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


SETS: dict[str, Callable[[Path, int, int], None]] = {
    "digits": lambda folder, per_class, seed: digits(folder),
    "fashion": lambda folder, per_class, seed: fashion(folder, per_class),
    "speech-voices": speech_voices,
    "fsdd-speakers": lambda folder, per_class, seed: fsdd_speakers(folder, _fsdd()),
    "speech-pair": lambda folder, per_class, seed: speech_pair(folder, _fsdd(), per_class, seed),
}
"""Each set's maker, from its folder, ``--per-class`` and ``--seed``."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=list(SETS))
    parser.add_argument("--per-class", type=int, help="fashion: training images per class (60); "
                        "speech-voices, speech-pair: synthesised clips per digit (100)")
    parser.add_argument("--seed", type=int, default=0, help="speech-voices, speech-pair: the synthesiser's seed")
    parser.add_argument("--out", type=Path, help="the folder to write (default: one named after the set in the cache folder)")
    options = parser.parse_args()
    name, per_class, seed = options.name, options.per_class or PER_CLASS.get(options.name, 0), options.seed
    if options.per_class is not None and options.per_class < 1 or seed < 0:
        parser.error("--per-class must be at least 1 and --seed at least 0")
    default = {"digits": "digits", "fashion": f"fashion-{per_class}", "fsdd-speakers": name}.get(name, f"{name}-{per_class}-seed{seed}")
    folder = (options.out or home() / default).expanduser().absolute()
    done = folder / ("target-test" if name == "speech-pair" else "test")
    built_whole = name not in ("digits", "fashion")  # renamed into place when finished: anything else there is not one
    if built_whole and folder.exists() and not done.is_dir() and any(folder.iterdir()):
        parser.error(f"{folder} exists and holds no finished {name} set: remove it or choose another --out")
    if not done.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        SETS[name](folder, per_class, seed)
    print(folder)


if __name__ == "__main__":
    from bench.common import run_script

    run_script(main)
