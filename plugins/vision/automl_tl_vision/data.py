"""Reading labelled images: class folders (optionally inside train/val/test), or a CSV manifest.

Layouts ``--data`` accepts:

* ``DIR/<class>/**/*.jpg`` — one sub-folder per class (nested folders inside a class are fine);
* ``DIR/train/<class>/...`` with optional ``DIR/val/`` (or ``validation/``, ``valid/``) and
  ``DIR/test/`` laid out the same way: the dataset's own splits are kept;
* ``manifest.csv`` with a header naming a path column (``path``, ``file``, ``filename`` or
  ``image``) and a label column (``label``, ``class`` or ``category``), paths relative to the CSV's
  folder; optional ``split`` (train/val/test) and ``group`` columns. A folder holding nothing but
  one CSV file is read as that manifest.

Every image is decoded once here, before any model loads, so a corrupt file stops the run at once
with its name (or, with ``skip_bad_files``, is skipped and counted). Files that are not images
(``notes.txt`` in a class folder) count as bad files too; hidden files and ``Thumbs.db``-style
clutter are ignored. Class folders are walked by the core's `automl_tl.datafiles` (symlinks
followed once, a file under two labels refused, links and folders left out counted). No torch is
imported here.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from automl_tl.contract import DataRequest, Example, LabelledData
from automl_tl.datafiles import check_columns, class_folders, scan_class_folders
from automl_tl.errors import DataError
from automl_tl_vision.images import IMAGE_SUFFIXES, check_image, is_ignored_name, is_image_name

DEFAULT_DATASET = "cifar10-small"
"""The default (demo) dataset's folder in the data home: ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``."""

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}
"""Split folder names (and CSV ``split`` values), lower case, to the split they hold."""

PATH_COLUMNS = ("path", "file", "filename", "image", "filepath", "image_path")
LABEL_COLUMNS = ("label", "class", "category", "target")
MAX_NAMED = 5
"""Bad files named in an error message before "and N more"."""


@dataclass(frozen=True)
class _Entry:
    path: Path
    label: str
    split: str | None = None
    group: str | None = None


@dataclass
class _Scan:
    entries: list[_Entry]
    bad: list[tuple[Path, str]]
    """Files that cannot be images (wrong type), found while listing."""
    layout: str
    root: Path
    loose: int = 0
    """Images lying outside any class folder (not labelled, so not used)."""
    notes: list[str] = field(default_factory=list)
    """What is used differently from what the files suggest (empty class folders, repeated rows), for the description."""


def load_images(request: DataRequest) -> LabelledData:
    """The plugin's ``load_data``: the user's images, or the default CIFAR-10 subset."""
    if request.path is None:
        root = default_dataset(request.data_home)
        scan = scan_source(root)
        title = f"CIFAR-10 subset ({DEFAULT_DATASET} in the data home)"
    else:
        scan = scan_source(request.path)
        title = f"images from {request.path}"
    scans = [scan]
    replaced_test = False
    if request.test_path is not None:
        test_scan = scan_source(request.test_path)
        replaced_test = any(e.split == "test" for e in scan.entries)
        scan.entries = [e for e in scan.entries if e.split != "test"]
        test_scan.entries = [_Entry(e.path, e.label, "test", e.group) for e in test_scan.entries]
        scans.append(test_scan)

    bad = [item for s in scans for item in s.bad]
    entries = [e for s in scans for e in s.entries]
    bad += _undecodable(entries)
    bad_paths = {path for path, _ in bad}
    skipped: list[str] = []
    if bad:
        reasons = [f"{_shown(path, scans)}: {reason}" for path, reason in bad]
        if not request.skip_bad_files:
            named = "; ".join(reasons[:MAX_NAMED]) + (f"; and {len(reasons) - MAX_NAMED} more" if len(reasons) > MAX_NAMED else "")
            raise DataError(
                f"{len(reasons)} file(s) cannot be read as images: {named}",
                hint="fix or remove them, or pass --skip-bad-files (recipe: [data] skip_bad_files = true) to skip them",
            )
        skipped = reasons
        entries = [e for e in entries if e.path not in bad_paths]

    by_split: dict[str | None, list[Example]] = {}
    for entry in entries:
        by_split.setdefault(entry.split, []).append(Example(item=entry.path, label=entry.label, group=entry.group))
    train = by_split.get("train", []) + by_split.get(None, [])
    if not train:
        where = ", ".join(str(s.root) for s in scans)
        raise DataError(
            f"no training images found in {where}",
            hint="expected one sub-folder per class (optionally inside train/), or a CSV manifest with path,label columns",
        )
    test = by_split.get("test")
    validation = by_split.get("validation")
    return LabelledData(
        examples=train,
        description="; ".join([_describe(title, scan, train, validation, test, replaced_test, request.test_path),
                               *(note for s in scans for note in s.notes)]),
        test=test,
        validation=validation,
        skipped=skipped,
    )


def default_dataset(data_home: Path) -> Path:
    root = data_home / DEFAULT_DATASET
    if not root.is_dir():
        raise DataError(
            f"the default dataset {DEFAULT_DATASET!r} is not in the data home {data_home}",
            hint=f"set AUTOML_TL_DATA or --data-home to the folder that holds {DEFAULT_DATASET}/ "
            "(train/<class>/*.jpg and test/<class>/*.jpg), or pass --data DIR with one sub-folder per class",
        )
    return root


def scan_source(path: Path) -> _Scan:
    """List a data path's labelled image files without decoding them."""
    if path.is_file():
        if path.suffix.lower() in (".csv", ".tsv"):
            return scan_manifest(path)
        raise DataError(
            f"{path} is a file, not a folder of images or a CSV manifest",
            hint="pass a folder with one sub-folder per class, or a .csv with path,label columns",
        )
    if not path.is_dir():
        raise DataError(f"data path {path} does not exist")
    subdirs = class_folders(path)
    if not subdirs:
        manifests = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in (".csv", ".tsv")]
        if len(manifests) == 1:
            return scan_manifest(manifests[0])
        loose = sum(1 for p in path.iterdir() if p.is_file() and is_image_name(p))
        raise DataError(
            f"no class sub-folders in {path}" + (f" ({loose} images lie directly in it)" if loose else ""),
            hint="put each class's images in a sub-folder named after the class, or pass a CSV manifest with path,label columns",
        )
    splits: dict[str, Path] = {}
    for sub in subdirs:
        split = SPLIT_NAMES.get(sub.name.lower())
        if split is not None:
            if split in splits:
                raise DataError(f"{path} has both {splits[split].name}/ and {sub.name}/ as its {split} split; keep one")
            splits[split] = sub
    if "train" in splits:
        scan = _Scan([], [], "train/" + "".join(f", {s.name}/" for n, s in splits.items() if n != "train"), path)
        for split, folder in splits.items():
            part = _scan_class_folders(folder, split)
            scan.entries += part.entries
            scan.bad += part.bad
            scan.loose += part.loose
            scan.notes += part.notes
        return scan
    return _scan_class_folders(path, None)


def _scan_class_folders(folder: Path, split: str | None) -> _Scan:
    if not class_folders(folder):
        raise DataError(
            f"no class sub-folders in {folder}",
            hint="put each class's images in a sub-folder named after the class",
        )
    found = scan_class_folders(folder, IMAGE_SUFFIXES)
    return _Scan(
        entries=[_Entry(file, label, split) for file, label in found.files],
        bad=[(file, f"not an image file ({file.suffix or 'no extension'})") for file, _ in found.others if not is_ignored_name(file)],
        layout="one folder per class",
        root=folder,
        loose=sum(1 for p in folder.iterdir() if p.is_file() and is_image_name(p)),
        notes=found.notes,
    )


def scan_manifest(path: Path, labelled: bool = True) -> _Scan:
    """Rows of a CSV (or TSV) manifest: path and label columns, optional split and group.

    ``labelled=False`` (images to predict) needs only the path column; labels are then ``""``.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the manifest {path}: {exc}") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"the manifest {path} is empty", hint="its first line names the columns, e.g. path,label")
    header = [cell.strip().lower() for cell in rows[0]]
    path_col = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
    label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    if path_col is None or (label_col is None and labelled):
        raise DataError(
            f"the manifest {path} has columns {', '.join(rows[0]) or 'none'}; it needs a path and a label column",
            hint="a header line such as: path,label (paths relative to the CSV's folder)",
        )
    split_col = header.index("split") if "split" in header else None
    group_col = header.index("group") if "group" in header else None
    check_columns(path, header, [header[c] for c in (path_col, label_col, split_col, group_col) if c is not None])
    base = path.parent
    scan = _Scan([], [], f"CSV manifest {path.name}", path)
    labels: dict[Path, str] = {}
    repeated = 0
    for line, row in enumerate(rows[1:], start=2):
        cells = row + [""] * (len(header) - len(row))
        rel, label = cells[path_col].strip(), cells[label_col].strip() if label_col is not None else ""
        if not rel or (not label and labelled):
            raise DataError(f"{path}, line {line}: empty {'path' if not rel else 'label'}")
        if "\0" in rel:
            raise DataError(f"{path}, line {line}: the path holds a NUL character")
        split = None
        if split_col is not None and cells[split_col].strip():
            split = SPLIT_NAMES.get(cells[split_col].strip().lower())
            if split is None:
                raise DataError(f"{path}, line {line}: unknown split {cells[split_col].strip()!r} (use train, val or test)")
        group = (cells[group_col].strip() or None) if group_col is not None else None
        file = Path(rel).expanduser()
        file = file if file.is_absolute() else base / file
        key = file.resolve()
        if key in labels:  # listed before: once is enough (twice could put one image in train and test)
            if labels[key] != label:
                raise DataError(f"{path}, line {line}: {rel} is labelled both {labels[key]!r} and {label!r}",
                                hint="give each image one label")
            repeated += 1
            continue
        labels[key] = label
        scan.entries.append(_Entry(file, label, split, group))
    if repeated:
        scan.notes.append(f"{repeated} repeated row(s) of {path.name} ignored")
    return scan


def _undecodable(entries: list[_Entry]) -> list[tuple[Path, str]]:
    """Decode every listed file once (JPEGs at 1/8 scale); the ones that fail, with why."""
    paths = list(dict.fromkeys(e.path for e in entries))
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:  # Pillow releases the GIL while decoding
        reasons = list(pool.map(check_image, paths, chunksize=64))
    return [(path, reason) for path, reason in zip(paths, reasons, strict=True) if reason is not None]


def _shown(path: Path, scans: list[_Scan]) -> str:
    """A bad file's name relative to the data root when it lies inside it (shorter, still findable)."""
    for scan in scans:
        root = scan.root.parent if scan.root.is_file() else scan.root
        try:
            return str(path.relative_to(root))
        except ValueError:
            continue
    return str(path)


def _describe(
    title: str,
    scan: _Scan,
    train: list[Example],
    validation: list[Example] | None,
    test: list[Example] | None,
    replaced_test: bool,
    test_path: Path | None,
) -> str:
    classes = Counter(e.label for e in train)
    parts = [f"{title}: {len(train)} training images in {len(classes)} classes ({scan.layout})"]
    if validation:
        parts.append(f"{len(validation)} validation images")
    if test:
        parts.append(f"{len(test)} test images" + (f" from {test_path}" if test_path is not None else ""))
    if replaced_test:
        parts.append("the folder's own test/ split is replaced by --test")
    if scan.loose:
        parts.append(f"{scan.loose} images outside any class folder ignored")
    return ", ".join(parts)
