"""What every data loader needs and must not get wrong on its own: a safe walk of class folders,
tidy labels, and headers that say which column they mean.

Plugins label a file by the class folder it sits in. A symlink can make that silently wrong: a
link back to a parent (``cat/up -> ..``) made 40 images into 2440, the same files in train and
test, dog images labelled cat; a link to a sibling (``cat/more -> ../dog``) used every dog image
under both labels. The walk here follows each symlink to a folder at most once, does not follow
one into a folder that holds it (a loop) or one already read for the class, and refuses a file
reached under two labels, as a manifest listing one file under two labels is refused. Nothing the
walk leaves out goes unsaid: each kind is counted in a note for the data description.

Nothing here knows a modality: the plugin says which file endings are its data.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from automl_tl.contract import LabelledData
from automl_tl.errors import DataError

SKIPPED_FOLDER_PREFIXES = (".", "__")
"""Hidden folders and tool clutter (``__MACOSX``, ``__pycache__``) are never classes or data."""
NAMED = 3
"""Paths named in a note before "…"."""


@dataclass
class FolderScan:
    """What a walk of class folders found, in a stable (sorted) order."""

    files: list[tuple[Path, str]] = field(default_factory=list)
    """Data files (a wanted ending) and their label, each real file once, as first reached."""
    others: list[tuple[Path, str]] = field(default_factory=list)
    """Other files in the class folders (hidden ones left out): the plugin decides what they mean."""
    notes: list[str] = field(default_factory=list)
    """What was found and not used (empty class folders, loops, dangling links...), counted, for the data description."""


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of ``root`` (symlinked ones included), sorted by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(SKIPPED_FOLDER_PREFIXES))


def scan_class_folders(root: Path, suffixes: Collection[str]) -> FolderScan:
    """Every file under each class folder of ``root``, labelled by that folder's name.

    ``suffixes`` (lower case, with the dot) are the plugin's data files. Nested folders are read;
    a `DataError` when one file is reached under two labels (a symlink across classes).
    """
    walk = _Walk(root, frozenset(suffixes))
    real_root = os.path.realpath(root)
    for folder in class_folders(root):
        found = len(walk.scan.files)
        walk.visited = {real_root}
        walk.enter(folder, real_root, folder.name)
        if len(walk.scan.files) == found:
            walk.empty.append(folder)
    walk.scan.notes = [
        note
        for paths, what in (
            (walk.empty, "empty class folder(s) ignored"),
            (walk.loops, "symlink loop(s) not followed"),
            (walk.again, "folder(s) reached a second time (through a symlink) read once"),
            (walk.repeated, "file(s) reached by more than one path used once"),
            (walk.dangling, "dangling symlink(s) ignored"),
            (walk.named_like_data, "folder(s) named like data files ignored"),
            (walk.special, "entries that are not regular files ignored"),
        )
        for note in count(paths, what, root)
    ]
    return walk.scan


def data_files(folder: Path, suffixes: Collection[str] | None) -> list[Path]:
    """Every data file under ``folder`` (None: every file), recursively: each real file once, symlink loops not followed.

    For unlabelled inputs (files to predict): the same walk as `scan_class_folders`, one label for all.
    """
    walk = _Walk(folder, frozenset(suffixes) if suffixes is not None else None)
    walk.read(folder, "")
    return [path for path, _ in walk.scan.files]


class _Walk:
    """One walk's state: real paths already met, and what was left out, by kind."""

    def __init__(self, root: Path, suffixes: frozenset[str] | None) -> None:
        self.root = root
        self.suffixes = suffixes
        self.scan = FolderScan()
        self.labels: dict[str, tuple[str, Path]] = {}
        """Real path of every file met → its label and the path it was first reached by."""
        self.visited: set[str] = set()
        """Real paths of the folders read for the current class (and the root)."""
        self.empty: list[Path] = []
        self.loops: list[Path] = []
        self.again: list[Path] = []
        self.repeated: list[Path] = []
        self.dangling: list[Path] = []
        self.named_like_data: list[Path] = []
        self.special: list[Path] = []

    def read(self, folder: Path, label: str) -> None:
        real = os.path.realpath(folder)
        self.visited.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"cannot read the folder {folder}: {exc.strerror or exc}") from None
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir():
                if entry.name.startswith(SKIPPED_FOLDER_PREFIXES):
                    continue
                if self.suffixes is not None and path.suffix.lower() in self.suffixes:
                    self.named_like_data.append(path)
                else:
                    self.enter(path, real, label)
            elif entry.name.startswith("."):
                continue
            elif entry.is_file():
                self._file(path, label)
            elif entry.is_symlink():
                self.dangling.append(path)
            else:  # a FIFO or socket would hang or fail the reader
                self.special.append(path)

    def enter(self, path: Path, parent: str, label: str) -> None:
        """Read the folder ``path`` (inside the real folder ``parent``) unless that loops or repeats."""
        target = os.path.realpath(path)
        if os.path.commonpath([target, parent]) == target:  # it holds the folder it sits in
            self.loops.append(path)
        elif target in self.visited:
            self.again.append(path)
        else:
            self.read(path, label)

    def _file(self, path: Path, label: str) -> None:
        if self.suffixes is not None and path.suffix.lower() not in self.suffixes:
            self.scan.others.append((path, label))
            return
        real = os.path.realpath(path)
        if real in self.labels:
            first_label, first = self.labels[real]
            if first_label != label:
                raise DataError(
                    f"one file is labelled both {first_label!r} (as {_shown(first, self.root)}) "
                    f"and {label!r} (as {_shown(path, self.root)})",
                    hint="a symlink puts it in two class folders: remove the link, or copy the file into one",
                )
            self.repeated.append(path)
            return
        self.labels[real] = (label, path)
        self.scan.files.append((path, label))


def count(paths: Sequence[Path], what: str, root: Path) -> list[str]:
    """``["2 <what>: a/x, b/y"]``, naming the first few paths relative to ``root``; no note for no paths."""
    if not paths:
        return []
    named = ", ".join(_shown(p, root) for p in paths[:NAMED]) + (", …" if len(paths) > NAMED else "")
    return [f"{len(paths)} {what}: {named}"]


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def tidy_labels(data: LabelledData) -> LabelledData:
    """Labels that differ only by surrounding spaces merged, and labels that differ only by case noted.

    ``'cat '`` and ``'cat'`` are one class typed twice, so they are merged; ``'Cat'`` and
    ``'cat'`` may be meant apart (``'US'``/``'us'``), so they are kept, but said: either way the
    user learns how many classes there are and why.
    """
    parts = [data.examples, data.test or [], data.validation or []]
    labels = {e.label for part in parts for e in part}
    spaced = sorted(label for label in labels if label != label.strip())
    if spaced:
        data.examples, data.test, data.validation = (
            [dataclasses.replace(e, label=e.label.strip()) for e in part] if part is not None else None
            for part in (data.examples, data.test, data.validation)
        )
        merged = ", ".join(f"{label!r} as {label.strip()!r}" for label in spaced[:NAMED]) + (", …" if len(spaced) > NAMED else "")
        data.description += f"; {len(spaced)} label(s) with surrounding spaces stripped: {merged}"
        labels = {label.strip() for label in labels}
    by_case: dict[str, list[str]] = {}
    for label in sorted(labels):
        by_case.setdefault(label.casefold(), []).append(label)
    alike = [" / ".join(map(repr, group)) for group in by_case.values() if len(group) > 1]
    if alike:
        data.description += f"; labels differing only by case kept apart: {', '.join(alike[:NAMED])}" + (", …" if len(alike) > NAMED else "")
    return data


def check_columns(source: object, header: Sequence[str], used: Iterable[str]) -> None:
    """A `DataError` when a column the loader reads is named more than once in ``header``.

    Which of two ``label`` columns was meant is a guess, and reading the first one silently gave
    wrong labels with no hint why; the user can rename one in a second.
    """
    names = [cell.strip().casefold() for cell in header]
    for name in used:
        positions = [str(i + 1) for i, cell in enumerate(names) if cell == name.strip().casefold()]
        if len(positions) > 1:
            raise DataError(
                f"{source}: the header names the column {name!r} {len(positions)} times (columns {', '.join(positions)})",
                hint="rename or remove all but one",
            )
