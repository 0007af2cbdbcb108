"""Speech data layouts: class folders, a CSV/JSONL manifest, or FSDD-style file names.

* a folder with one sub-folder per class, holding audio files;
* a manifest file (``.csv`` with a header, or ``.jsonl``) with ``path,label[,group]``, paths
  relative to the manifest's folder;
* FSDD naming, ``{label}_{speaker}_{index}.wav`` in the folder or its ``recordings/``: the speaker
  becomes the group, so splits can hold whole speakers out.

Files are checked when listed (header readable, at least one sample): a bad file is named in one
error, or skipped and counted when the user asks for that.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from pathlib import Path

import soundfile as sf

from automl_tl.contract import Example, LabelledData
from automl_tl.errors import DataError
from automl_tl_speech.audio import AUDIO_SUFFIXES

FSDD_NAME = re.compile(r"^(?P<label>[^_]+)_(?P<group>[^_]+)_(?P<index>\d+)$")
DEMO_TEST_SPEAKERS = ("george", "theo")
"""FSDD speakers the demo holds out for test: the accuracy on *new* speakers is the question."""


def load_path(path: Path, skip_bad_files: bool) -> LabelledData:
    """Read any supported layout at ``path``."""
    if path.is_file():
        examples, group_name = _manifest(path), "group"
        layout = f"manifest {path}"
    elif (fsdd := _fsdd_folder(path)) is not None:
        examples, group_name = _fsdd(fsdd), "speaker"
        layout = f"FSDD-style recordings in {fsdd}"
    else:
        examples, group_name = _class_folders(path), "group"
        layout = f"class folders in {path}"
    examples, skipped = _check_files(examples, skip_bad_files)
    description = f"{len(examples)} clips from {layout}"
    return LabelledData(examples, description, group_name=group_name, skipped=skipped)


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


def _class_folders(path: Path) -> list[Example]:
    if not path.is_dir():
        raise DataError(f"{path} is neither a folder nor a manifest file")
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    examples = [Example(item=f, label=c.name) for c in classes for f in _audio_files(c)]
    if not examples:
        raise DataError(
            f"no audio found in {path}",
            hint=f"expected one sub-folder per class holding {'/'.join(AUDIO_SUFFIXES)} files, "
            "FSDD-style names like 7_jackson_3.wav, or a CSV/JSONL manifest",
        )
    return examples


def _manifest(path: Path) -> list[Example]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"manifest {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise DataError(f"{path}:{number} is not valid JSON ({exc})") from None
    else:
        rows = list(csv.DictReader(text.splitlines()))
    examples = []
    seen: dict[Path, str] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("path") or row.get("label") in (None, ""):
            raise DataError(f"{path}: row {number} needs 'path' and 'label' (got {row!r})", hint="columns: path,label[,group]")
        file = (path.parent / str(row["path"])).resolve()
        label = str(row["label"])
        if file in seen and seen[file] != label:
            raise DataError(f"{path}: {row['path']} is labelled both {seen[file]!r} and {label!r}")
        if file in seen:
            continue  # an exact duplicate row adds nothing
        seen[file] = label
        group = row.get("group")
        examples.append(Example(item=file, label=label, group=str(group) if group not in (None, "") else None))
    if not examples:
        raise DataError(f"manifest {path} lists no files")
    return examples


def _check_files(examples: list[Example], skip: bool) -> tuple[list[Example], list[str]]:
    good, skipped = [], []
    for example in examples:
        problem = _problem(Path(example.item))
        if problem is None:
            good.append(example)
        elif skip:
            skipped.append(f"{example.item}: {problem}")
        else:
            raise DataError(f"audio file {example.item} {problem}", hint="fix or remove it, or pass --skip-bad-files")
    return good, skipped


def _problem(path: Path) -> str | None:
    if not path.exists():
        return "does not exist"
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        return f"cannot be decoded ({exc})"
    if info.frames == 0:
        return "is empty (zero samples)"
    return None
