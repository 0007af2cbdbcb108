"""Reading labelled texts: CSV, TSV, JSON Lines, folders of them, or one sub-folder of .txt files per class.

Each `Example.item` is the text itself, so the core's splits, run fingerprint and caches see the
data and nothing else. Columns are found by name when the header makes it obvious (``text``,
``sentence``... and ``label``, ``category``...), else from the recipe's ``[options]``; a two-column
file without a header (``label<TAB>text``, like the SMS Spam Collection) is recognised by its
values. Empty texts (and JSON's NaN, which pandas writes for a missing value) are skipped and
counted; undecodable bytes stop the load with the file and line, unless the user asked to skip bad
files. Class folders are walked by the core's `automl_tl.datafiles` (symlinks followed once, a
file under two labels refused, links and other files left out counted).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from automl_tl.contract import DataRequest, Example, LabelledData
from automl_tl.datafiles import check_columns, class_folders, count, scan_class_folders
from automl_tl.datahome import ENV_VAR
from automl_tl.errors import DataError

from automl_tl_text.options import TextOptions

DEFAULT_DATASET = Path("sms-spam") / "SMSSpamCollection"
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
"""File kinds by suffix; files without one (``SMSSpamCollection``) or ``.txt`` are sniffed (tab or comma)."""
TEXT_NAMES = ("text", "sentence", "message", "content", "body", "document", "review", "utterance", "query", "tweet", "comment")
LABEL_NAMES = ("label", "labels", "category", "class", "intent", "target", "sentiment", "topic", "tag")
GROUP_NAMES = ("group",)
"""Only an explicit ``group`` column is used automatically: grouping changes how splits are made."""
SPLIT_NAMES = {"train": "train", "test": "test", "validation": "validation", "valid": "validation", "dev": "validation", "val": "validation"}
FIELD_LIMIT = 1 << 27
IGNORED_NAMES = ("readme", "license", "licence", "changelog", "citation")


@dataclass
class _Loaded:
    """Examples read from one or more files, with what was skipped and any notes for the user."""

    examples: list[Example] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    columns: str = ""

    def extend(self, other: _Loaded) -> None:
        self.examples += other.examples
        self.skipped += other.skipped
        self.notes += other.notes
        self.columns = self.columns or other.columns


def load_text_data(request: DataRequest, options: TextOptions) -> LabelledData:
    """The user's labelled texts (or the default SMS spam data) as `LabelledData`."""
    path = request.path
    if path is None:
        path = request.data_home / DEFAULT_DATASET
        if not path.is_file():
            raise DataError(
                f"the default text dataset (SMS Spam Collection) is not in the data home: {path} does not exist",
                hint=f"set {ENV_VAR} or --data-home to the folder holding {DEFAULT_DATASET.as_posix()}, or pass --data FILE",
            )
    skip_bad = request.skip_bad_files
    test: _Loaded | None = None
    validation: _Loaded | None = None
    if path.is_dir():
        splits = _read_folder(path, options, skip_bad)
        main = splits.get("train") or splits["all"]
        test, validation = splits.get("test"), splits.get("validation")
        what = f"{path} ({', '.join(k for k in ('train', 'validation', 'test') if k in splits) or 'one split'})"
    elif path.is_file():
        main = _read_table(path, options, skip_bad)
        what = str(path)
    else:
        raise DataError(f"data path {path} does not exist")
    if request.test_path is not None:
        if test is not None:
            main.notes.append(f"--test {request.test_path} replaces the folder's own test split")
        tp = request.test_path
        test = _read_folder(tp, options, skip_bad).get("all") if tp.is_dir() else _read_table(tp, options, skip_bad)
        if test is None:
            raise DataError(f"test folder {tp} holds both train and test data; give the test file itself")
    parts = [main] + [p for p in (test, validation) if p is not None]
    skipped = [s for p in parts for s in p.skipped]
    notes = [n for p in parts for n in p.notes] + _repeats([e for p in parts for e in p.examples])
    labels = {e.label for e in main.examples}
    sizes = f"{len(main.examples):,} texts, {len(labels)} labels"
    if test is not None:
        sizes += f" (+{len(test.examples):,} test)"
    if validation is not None:
        sizes += f" (+{len(validation.examples):,} validation)"
    description = f"{sizes} from {what}"
    if main.columns:
        description += f" [{main.columns}]"
    empties = sum(1 for s in skipped if s.endswith(("empty text", "empty label")))
    if empties:
        notes.append(f"{empties} row(s) with an empty text or label skipped")
    if notes:
        description += "; " + "; ".join(notes)
    if not main.examples:
        raise DataError(f"no labelled texts found in {path}", hint=_LAYOUTS)
    if test is not None and not test.examples:
        raise DataError(f"no labelled texts found in the test data {request.test_path or path}")
    return LabelledData(
        examples=main.examples,
        description=description,
        test=test.examples if test is not None else None,
        validation=validation.examples if validation is not None else None,
        group_name=str(options.group_column) if options.group_column is not None else "group",
        skipped=skipped,
    )


def _repeats(examples: list[Example]) -> list[str]:
    """A note on texts that occur more than once: real data has them, but the user should know.

    A repeat may land in train and test (an easy test example), and one text under two labels
    caps the accuracy any model can reach.
    """
    labels: dict[str, set[str]] = {}
    for example in examples:
        labels.setdefault(example.item, set()).add(example.label)
    repeated = len(examples) - len(labels)
    if not repeated:
        return []
    conflicting = sum(1 for found in labels.values() if len(found) > 1)
    return [f"{repeated} repeated text(s) kept" + (f", {conflicting} text(s) under more than one label" if conflicting else "")]


_LAYOUTS = (
    "give a CSV, TSV or JSONL file with a text and a label column, a folder of such files "
    "(train.csv / test.csv...), or a folder with one sub-folder of .txt files per class"
)


# --- folders ---------------------------------------------------------------------------------


def _read_folder(root: Path, options: TextOptions, skip_bad: bool) -> dict[str, _Loaded]:
    """A folder's examples by split (``all`` when the folder does not name splits)."""
    subdirs = class_folders(root)
    split_dirs = {SPLIT_NAMES[d.name.lower()]: d for d in subdirs if d.name.lower() in SPLIT_NAMES}
    if "train" in split_dirs and len(split_dirs) >= 2:
        return {split: _read_class_folders(d, skip_bad) for split, d in split_dirs.items()}
    class_dirs = [d for d in subdirs if any(d.rglob("*.txt"))]
    if class_dirs:
        return {"all": _read_class_folders(root, skip_bad)}
    tables = _table_files(root)
    if not tables:
        raise DataError(f"no data files found in the folder {root}", hint=_LAYOUTS)
    named = {SPLIT_NAMES[f.stem.lower()]: f for f in tables if f.stem.lower() in SPLIT_NAMES}
    if "train" in named and len(named) >= 2:
        return {split: _read_table(f, options, skip_bad) for split, f in named.items()}
    loaded = _Loaded()
    for f in tables:
        loaded.extend(_read_table(f, options, skip_bad))
    return {"all": loaded}


def _table_files(root: Path) -> list[Path]:
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    tables = [f for f in files if f.suffix.lower() in TABLE_SUFFIXES and f.suffix.lower() != ".json"]
    if tables:
        return tables
    # a folder like sms-spam/ holds one extension-less data file
    return [f for f in files if not f.suffix and not f.name.lower().startswith(IGNORED_NAMES)]


def _read_class_folders(root: Path, skip_bad: bool) -> _Loaded:
    """``root/<label>/**/*.txt``: one text per file, labelled by its folder."""
    found = scan_class_folders(root, (".txt",))
    others = count([f for f, _ in found.others], "non-.txt file(s) ignored", root)
    loaded = _Loaded(columns="one folder per label", notes=found.notes + others)
    for file, label in found.files:
        data = _read_bytes(file)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            where = f"{file}: line {_line_of(data, exc.start)}: not valid UTF-8"
            if not skip_bad:
                raise DataError(where, hint="convert the file to UTF-8, or pass --skip-bad-files to skip it") from None
            loaded.skipped.append(where)
            continue
        text = text.strip()
        if not text:
            loaded.skipped.append(f"{file}: empty text")
            continue
        loaded.examples.append(Example(item=text, label=label))
    if not loaded.examples and not loaded.skipped:
        raise DataError(f"no .txt files found under the class folders of {root}", hint=_LAYOUTS)
    return loaded


# --- tables ----------------------------------------------------------------------------------


@dataclass
class _Table:
    path: Path
    columns: list[str]
    """Header names, or ``0``, ``1``... for a file without header."""
    rows: list[tuple[int, list[str | None]]]
    """``(line number, values)``; a value is None where a JSON record lacks the key."""
    has_header: bool
    kind: str


def _read_table(path: Path, options: TextOptions, skip_bad: bool) -> _Loaded:
    loaded = _Loaded()
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = _line_of(data, exc.start)
        if not skip_bad:
            raise DataError(
                f"{path}: line {line}: not valid UTF-8 (byte {data[exc.start]:#04x})",
                hint="convert the file to UTF-8, or pass --skip-bad-files to replace undecodable bytes",
            ) from None
        text = data.decode("utf-8-sig", errors="replace")
        loaded.notes.append(f"undecodable bytes in {path.name} replaced (first at line {line})")
    kind = _kind(path, text)
    table = _parse_json(path, text, kind) if kind in ("jsonl", "json") else _parse_delimited(path, text, kind, options)
    text_col, label_col, group_col = _choose_columns(table, options)
    names = table.columns
    loaded.columns = (
        f"text={_describe(names, text_col, table.has_header)}, label={_describe(names, label_col, table.has_header)}"
        + (f", group={_describe(names, group_col, table.has_header)}" if group_col is not None else "")
        + ("" if table.has_header or kind in ("jsonl", "json") else ", no header")
    )
    used = [c for c in (text_col, label_col, group_col) if c is not None]
    check_columns(path, names, [names[c] for c in used])
    needed = max(used)
    last = len(names) - 1
    for line, values in table.rows:
        where = f"{path}:{line}"
        if len(values) <= needed:
            loaded.skipped.append(f"{where}: {len(values)} field(s), expected {len(names)}")
            continue
        if len(values) > len(names) and text_col == last and kind == "\t":
            values = values[:last] + ["\t".join(v or "" for v in values[last:])]  # a tab inside the text
        label = _cell(values[label_col])
        text_value = _cell(values[text_col])
        if not text_value:
            loaded.skipped.append(f"{where}: empty text")
            continue
        if not label:
            loaded.skipped.append(f"{where}: empty label")
            continue
        group = (_cell(values[group_col]) or None) if group_col is not None else None
        loaded.examples.append(Example(item=text_value, label=label, group=group))
    return loaded


def table_texts(path: Path, options: TextOptions) -> list[str]:
    """The texts of a CSV/TSV/JSONL file, labelled or not, in order (what `automl-tl predict` reads from one).

    Empty texts are kept, so each row gets its own output row (and its error).
    """
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: line {_line_of(data, exc.start)}: not valid UTF-8") from None
    kind = _kind(path, text)
    table = _parse_json(path, text, kind) if kind in ("jsonl", "json") else _parse_delimited(path, text, kind, options)
    column = _text_column(table, options)
    return [_cell(values[column]) if len(values) > column else "" for _, values in table.rows]


def _text_column(table: _Table, options: TextOptions) -> int:
    """The text column when labels need not be there: as named, a known name, or the longer of two columns."""
    column = _find(table, options.text_column, "text_column")
    if column is None and table.has_header:
        lowered = [c.lower() for c in table.columns]
        column = next((lowered.index(n) for n in TEXT_NAMES if n in lowered), None)
    if column is None and len(table.columns) == 2:
        column = _guess_label_text([v for _, v in table.rows[:1000]])[1]
    if column is None:
        raise DataError(f"cannot tell which column of {table.path} holds the text (columns: {_column_list(table)})",
                        hint="name it text (or set text_column when searching)")
    return column


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):  # JSON's NaN: a missing value
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _describe(names: Sequence[str], index: int | None, has_header: bool) -> str:
    assert index is not None
    return repr(names[index]) if has_header else f"column {index}"


def _kind(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return TABLE_SUFFIXES[suffix]
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        return "jsonl"
    return "\t" if "\t" in first else ","


def _parse_delimited(path: Path, text: str, delimiter: str, options: TextOptions) -> _Table:
    # TSV has no quoting (IANA): messages full of quotes, like SMS, must come through as written.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)  # the default (128 kB) is too small for long documents
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    rows: list[tuple[int, list[str | None]]] = []
    try:
        for values in reader:
            if values and any(v.strip() for v in values):
                rows.append((reader.line_num, list(values)))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: cannot parse as {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}") from None
    if not rows:
        raise DataError(f"{path} is empty")
    counts = Counter(len(v) for _, v in rows[:500])
    width = max(counts, key=lambda w: (counts[w], -w))  # the usual row width (a tab in a text adds one)
    if width < 2:
        raise DataError(
            f"{path}: found one column; expected a text and a label column",
            hint="a tab- or comma-separated file (.tsv / .csv) with the label and the text on each line",
        )
    header = options.header if options.header is not None else _looks_like_header(rows, options)
    if header:
        columns = [str(v).strip() for v in rows[0][1]]
        return _Table(path, columns, rows[1:], True, delimiter)
    return _Table(path, [str(i) for i in range(width)], rows, False, delimiter)


def _looks_like_header(rows: list[tuple[int, list[str | None]]], options: TextOptions) -> bool:
    """A first row is a header when it names known or requested columns, or when (two columns) its
    label-like cell never occurs again in that column: real labels repeat, a column name does not."""
    first = [(v or "").strip().lower() for v in rows[0][1]]
    requested = {str(c).lower() for c in (options.text_column, options.label_column, options.group_column)
                 if isinstance(c, str) and not c.isdigit()}
    if requested & set(first) or set(first) & (set(TEXT_NAMES) | set(LABEL_NAMES)):
        return True
    if requested:
        return True  # names were asked for: the first row must hold them (a wrong name is reported later)
    body = [v for _, v in rows[1:1001]]
    if len(first) != 2 or len(body) < 2:
        return False
    label_col, _ = _guess_label_text(body)
    return rows[0][1][label_col] not in {v[label_col] for v in body if len(v) > label_col}


def _guess_label_text(values: Sequence[Sequence[str | None]]) -> tuple[int, int]:
    """For two columns: the label column has fewer distinct values (then: shorter ones)."""
    def stats(i: int) -> tuple[int, float]:
        cells = [str(v[i]) for v in values if len(v) > i and v[i] is not None]
        return len(set(cells)), sum(map(len, cells)) / max(1, len(cells))

    return (0, 1) if stats(0) <= stats(1) else (1, 0)


def _parse_json(path: Path, text: str, kind: str) -> _Table:
    records: list[tuple[int, object]] = []
    if kind == "json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON: {exc}") from None
        if isinstance(data, dict):  # {"data": [...]} and the like
            lists = [v for v in data.values() if isinstance(v, list)]
            data = lists[0] if len(lists) == 1 else data
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a list of records like {{\"text\": ..., \"label\": ...}}")
        records = [(i + 1, r) for i, r in enumerate(data)]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((number, json.loads(line)))
            except ValueError as exc:
                raise DataError(f"{path}:{number}: not a JSON object ({exc.args[0] if exc.args else exc})",
                                hint="JSON Lines: one object per line") from None
    bad = next(((n, r) for n, r in records if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"{path}:{bad[0]}: expected an object like {{\"text\": ..., \"label\": ...}}, got {type(bad[1]).__name__}")
    if not records:
        raise DataError(f"{path} is empty")
    columns: list[str] = []
    for _, record in records[:1000]:
        assert isinstance(record, dict)
        columns += [k for k in record if k not in columns]
    rows = [(n, [r.get(c) for c in columns]) for n, r in records if isinstance(r, dict)]
    return _Table(path, columns, rows, True, kind)  # type: ignore[arg-type]


def _choose_columns(table: _Table, options: TextOptions) -> tuple[int, int, int | None]:
    """Indices of the text, label and (optional) group columns."""
    text_col = _find(table, options.text_column, "text_column")
    label_col = _find(table, options.label_column, "label_column")
    group_col = _find(table, options.group_column, "group_column")
    if table.has_header:
        lowered = [c.lower() for c in table.columns]
        if text_col is None:
            text_col = next((lowered.index(n) for n in TEXT_NAMES if n in lowered), None)
        if label_col is None:
            label_col = next((lowered.index(n) for n in LABEL_NAMES if n in lowered and lowered.index(n) != text_col), None)
        if group_col is None and options.group_column is None:
            group_col = next((lowered.index(n) for n in GROUP_NAMES if n in lowered), None)
    if (text_col is None or label_col is None) and len(table.columns) == 2:
        if text_col is not None or label_col is not None:
            known = text_col if text_col is not None else label_col
            text_col, label_col = (known, 1 - known) if text_col is not None else (1 - known, known)  # type: ignore[operator]
        else:
            label_col, text_col = _guess_label_text([v for _, v in table.rows[:1000]])
    if text_col is None or label_col is None:
        missing = "text_column" if text_col is None else "label_column"
        raise DataError(
            f"cannot tell which column of {table.path} holds the {'text' if text_col is None else 'label'} "
            f"(columns: {_column_list(table)})",
            hint=f"set {missing} in the recipe's [options]",
        )
    if text_col == label_col:
        raise DataError(f"{table.path}: the text and the label are the same column ({_column_list(table)})")
    return text_col, label_col, group_col


def _find(table: _Table, wanted: str | int | None, option: str) -> int | None:
    if wanted is None:
        return None
    lowered = [c.lower() for c in table.columns]
    by_number = isinstance(wanted, str) and wanted.isdigit() and (not table.has_header or wanted.lower() not in lowered)
    if isinstance(wanted, int) or by_number:
        index = int(wanted)
        if index >= len(table.columns):
            raise DataError(f"{option} = {wanted}: {table.path} has only {len(table.columns)} columns ({_column_list(table)})")
        return index
    if not table.has_header:
        raise DataError(
            f"{option} = {wanted!r}, but {table.path} has no header row",
            hint="give the column as a 0-based number, or set header = true in [options]",
        )
    if wanted.lower() not in lowered:
        raise DataError(f"column {wanted!r} ({option}) is not in {table.path} (columns: {_column_list(table)})")
    return lowered.index(wanted.lower())


def _column_list(table: _Table) -> str:
    if table.has_header:
        return ", ".join(repr(c) for c in table.columns)
    first = table.rows[0][1] if table.rows else []
    sample = ", ".join(repr(_cell(v)[:30]) for v in first)
    return f"{len(table.columns)} columns without a header, numbered from 0; first row: {sample}"


# --- bytes -----------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1

