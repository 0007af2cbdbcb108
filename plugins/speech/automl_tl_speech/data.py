"""Speech data layouts: class folders, a CSV/JSONL manifest, or FSDD-style file names.

* a folder with one sub-folder per class, holding audio files;
* a manifest file (``.csv`` with a header, or ``.jsonl``) with ``path,label[,group]``, paths
  relative to the manifest's folder;
* FSDD naming, ``{label}_{speaker}_{index}.wav`` in the folder or its ``recordings/``: the speaker
  becomes the group, so splits can hold whole speakers out.

Files are checked when listed (header readable, at least `MIN_SECONDS` of sound, no NaN or
infinite sample): a bad file is named in one error, or skipped and counted when the user asks for
that. Class folders are walked by the core's `automl_tl.datafiles` (symlinks followed once, a file
under two labels refused). What is used differently from what the folder suggests is said in the
description: empty class folders, files and links left out, clips cut at `MAX_SECONDS`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from automl_tl.contract import Example, LabelledData
from automl_tl.datafiles import check_columns, count, scan_class_folders
from automl_tl.errors import DataError
from automl_tl_speech.audio import AUDIO_SUFFIXES, MAX_SECONDS, MIN_SECONDS

FSDD_NAME = re.compile(r"^(?P<label>[^_]+)_(?P<group>[^_]+)_(?P<index>\d+)$")
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
"""Sample encodings that can store NaN or infinity (libsndfile's subtype names)."""
DEMO_TEST_SPEAKERS = ("george", "theo")
"""FSDD speakers the demo holds out for test: the accuracy on *new* speakers is the question."""


def load_path(path: Path, skip_bad_files: bool) -> LabelledData:
    """Read any supported layout at ``path``."""
    notes = []
    if path.is_file():
        examples, repeated = _manifest(path)
        group_name, layout = "group", f"manifest {path}"
        if repeated:
            notes.append(f"{repeated} repeated row(s) ignored")
    elif (fsdd := _fsdd_folder(path)) is not None:
        examples, group_name = _fsdd(fsdd), "speaker"
        layout = f"FSDD-style recordings in {fsdd}"
    else:
        examples, found = _class_folders(path)
        group_name, layout = "group", f"class folders in {path}"
        notes += found
    examples, skipped, long = _check_files(examples, skip_bad_files)
    if long:
        notes.append(f"{long} clip(s) longer than {MAX_SECONDS:.0f} s: only their first {MAX_SECONDS:.0f} s are used")
    description = "; ".join([f"{len(examples)} clips from {layout}", *notes])
    return LabelledData(examples, description, group_name=group_name, skipped=skipped)


def with_test(data: LabelledData, test: LabelledData) -> LabelledData:
    """``data`` with ``test`` (``--test``, read by the same `load_path`) as its test split."""
    data.test = test.examples
    data.skipped += test.skipped
    data.description += f"; test: {test.description}"
    return data


def hold_out_speakers(data: LabelledData, speakers: Iterable[str]) -> LabelledData:
    """The demo's test split: every clip of ``speakers``, so the test score is on unseen voices."""
    held = set(speakers)
    data.test = [e for e in data.examples if e.group in held]
    data.examples = [e for e in data.examples if e.group not in held]
    data.description += f"; test = speakers {', '.join(sorted(held))}"
    return data


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _fsdd_folder(path: Path) -> Path | None:
    for folder in (path / "recordings", path):
        if folder.is_dir():
            files = _audio_files(folder)
            if files and all(FSDD_NAME.match(f.stem) for f in files):
                return folder
    return None


def _fsdd(folder: Path) -> list[Example]:
    examples = []
    for file in _audio_files(folder):
        match = FSDD_NAME.match(file.stem)
        assert match is not None
        examples.append(Example(item=file, label=match["label"], group=match["group"]))
    return examples


def _class_folders(path: Path) -> tuple[list[Example], list[str]]:
    """The clips of each class folder, and notes on what was left out (empty folders, other files, links)."""
    if not path.is_dir():
        raise DataError(f"{path} is neither a folder nor a manifest file")
    scan = scan_class_folders(path, AUDIO_SUFFIXES)
    examples = [Example(item=f, label=label) for f, label in scan.files]
    if not examples:
        raise DataError(
            f"no audio found in {path}",
            hint=f"expected one sub-folder per class holding {'/'.join(AUDIO_SUFFIXES)} files, "
            "FSDD-style names like 7_jackson_3.wav, or a CSV/JSONL manifest",
        )
    return examples, scan.notes + count([f for f, _ in scan.others], "non-audio file(s) ignored", path)


def manifest_files(path: Path) -> list[Path]:
    """The audio files a manifest lists, labelled or not (what `automl-tl predict` reads from one)."""
    files = []
    for number, row in enumerate(_manifest_rows(path), start=1):
        if not isinstance(row, dict) or not row.get("path"):
            raise DataError(f"{path}: row {number} needs a 'path' (got {row!r})", hint="columns: path[,label,group]")
        files.append(_listed_file(path, number, row))
    return files


def _listed_file(path: Path, number: int, row: dict) -> Path:
    if "\0" in str(row["path"]):
        raise DataError(f"{path}: row {number}: the path holds a NUL character")
    return (path.parent / str(row["path"])).resolve()


def _manifest_rows(path: Path) -> list:
    """A manifest's rows: JSON values of a ``.jsonl`` file, else dicts of a CSV with a header."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"manifest {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise DataError(f"{path}:{number} is not valid JSON ({exc})") from None
    else:
        reader = csv.DictReader(text.splitlines())
        check_columns(path, reader.fieldnames or [], ("path", "label", "group"))
        rows = list(reader)
    return rows


def _manifest(path: Path) -> tuple[list[Example], int]:
    """The examples a manifest lists, and how many rows only repeated an earlier one."""
    rows = _manifest_rows(path)
    examples = []
    seen: dict[Path, str] = {}
    repeated = 0
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("path") or row.get("label") in (None, ""):
            raise DataError(f"{path}: row {number} needs 'path' and 'label' (got {row!r})", hint="columns: path,label[,group]")
        file = _listed_file(path, number, row)
        label = str(row["label"])
        if file in seen and seen[file] != label:
            raise DataError(f"{path}: {row['path']} is labelled both {seen[file]!r} and {label!r}")
        if file in seen:  # once is enough: twice could put one clip in train and in test
            repeated += 1
            continue
        seen[file] = label
        group = row.get("group")
        examples.append(Example(item=file, label=label, group=str(group) if group not in (None, "") else None))
    if not examples:
        raise DataError(f"manifest {path} lists no files")
    return examples, repeated


def _check_files(examples: list[Example], skip: bool) -> tuple[list[Example], list[str], int]:
    """The usable examples, why the others were skipped, and how many clips are longer than `MAX_SECONDS`."""
    good, skipped, long = [], [], 0
    for example in examples:
        problem, seconds = _inspect(Path(example.item))
        if problem is None:
            good.append(example)
            long += seconds > MAX_SECONDS
        elif skip:
            skipped.append(f"{example.item}: {problem}")
        else:
            raise DataError(f"audio file {example.item} {problem}", hint="fix or remove it, or pass --skip-bad-files")
    return good, skipped, long


def _inspect(path: Path) -> tuple[str | None, float]:
    """What is wrong with an audio file (None if nothing), and its duration.

    The header says most; a float file's samples are read too (up to `MAX_SECONDS`, as training
    reads it): one NaN or infinite sample made every trial's loss NaN, and the search failed
    without naming the file. Integer encodings cannot hold such values, so they cost no read.
    """
    if not path.exists():
        return "does not exist", 0.0
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        return f"cannot be decoded ({exc})", 0.0
    if info.frames == 0:
        return "is empty (zero samples)", 0.0
    if info.frames < MIN_SECONDS * info.samplerate:
        return f"is too short ({1000 * info.frames / info.samplerate:.0f} ms, at least {1000 * MIN_SECONDS:.0f} ms)", 0.0
    if info.subtype in FLOAT_SUBTYPES:
        try:
            samples = sf.read(str(path), frames=int(MAX_SECONDS * info.samplerate), dtype="float64")[0]
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
            return f"cannot be decoded ({exc})", 0.0
        if not np.isfinite(samples).all():
            return "holds NaN or infinite samples", 0.0
    return None, info.frames / info.samplerate
