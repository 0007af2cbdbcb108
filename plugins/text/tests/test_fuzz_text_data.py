"""Fuzzing the text loader: any file, in any of its formats, gives labelled texts or one `DataError`.

Contents are random text made of the characters that matter to the parsers (separators, quotes,
braces, newlines, a byte-order mark, non-ASCII, JSON's NaN and Infinity) or random bytes; the
file's suffix picks the parser, and the header option is sometimes forced either way. Folders of
class folders hold random bytes and random symlinks (loops, links across classes, to files,
dangling): each file is read once, under its own folder's label. (Also here, as a plain test: how
repeated texts are reported.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automl_tl.contract import DataRequest
from automl_tl.errors import DataError
from automl_tl_text import TextPlugin
from automl_tl_text.options import TextOptions

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALPHABET = st.sampled_from(list('ab,\t"\n{}[]:\ufeff\u00e9 ') + ["text", "label", "spam", "ham", '"text": ', '"label": ',
                                                                 "NaN", "Infinity", "-Infinity"])
NON_FINITE = {"nan", "inf", "-inf"}
"""What JSON's NaN and Infinity became as a text or label, before they counted as empty cells."""
links = st.lists(
    st.tuples(st.sampled_from(["pos", "neg"]),
              st.sampled_from(["..", ".", "../pos", "../neg", "../..", "good.txt", "../neg/good.txt", "gone.txt"])),
    max_size=3,
)
"""Symlinks to put in the class folders: (folder, target)."""
contents = st.one_of(
    st.lists(ALPHABET, max_size=80).map(lambda parts: "".join(parts).encode("utf-8")),
    st.binary(max_size=200),
    st.lists(st.tuples(st.sampled_from(["spam", "ham", ""]), st.text(max_size=12)), max_size=8).map(
        lambda rows: "".join(f"{label}\t{text}\n" for label, text in rows).encode("utf-8", "surrogatepass")
    ),
)


@FUZZ
@given(
    content=contents,
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".txt", ""]),
    header=st.sampled_from([None, True, False]),
    skip=st.booleans(),
)
def test_any_file_gives_labelled_texts_or_one_data_error(content: bytes, suffix: str, header: bool | None, skip: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(content)
        options = TextOptions(header=header)
        request = DataRequest(path=path, data_home=Path(folder), options=options, skip_bad_files=skip)
        try:
            data = TextPlugin().load_data(request)
        except DataError as exc:
            assert exc.message and "\n" not in exc.message.strip()
            return
    assert data.examples
    for example in data.examples:
        assert isinstance(example.item, str) and example.item.strip() and example.item not in NON_FINITE, example
        assert isinstance(example.label, str) and example.label.strip() and example.label not in NON_FINITE, example


@FUZZ
@given(files=st.lists(st.binary(max_size=30), min_size=1, max_size=4), links=links, skip=st.booleans())
def test_any_class_folders_and_symlinks_give_each_file_once_or_one_data_error(
    files: list[bytes], links: list[tuple[str, str]], skip: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "data"
        for label in ("pos", "neg"):
            (root / label).mkdir(parents=True)
            (root / label / "good.txt").write_text(f"a good {label} text")
        for i, content in enumerate(files):
            (root / ("pos", "neg")[i % 2] / f"fuzz{i}.txt").write_bytes(content)
        for i, (where, target) in enumerate(links):
            os.symlink(target, root / where / f"link{i}{'.txt' if target.endswith('.txt') else ''}")
        try:
            data = TextPlugin().load_data(DataRequest(path=root, data_home=Path(folder), skip_bad_files=skip))
        except DataError as exc:
            assert (not skip or "labelled both" in exc.message) and exc.message
            return
    assert len(data.examples) + len(data.skipped) == 2 + len(files)  # links add no file, and lose none
    assert sorted((e.item, e.label) for e in data.examples if e.item.startswith("a good")) == [
        ("a good neg text", "neg"), ("a good pos text", "pos")]


def test_repeated_texts_are_reported_with_their_conflicts(tmp_path: Path) -> None:
    """Kept (real data has them) but said: a repeat can sit in train and test, a conflict caps the accuracy."""
    path = tmp_path / "data.csv"
    path.write_text("text,label\nhello,ham\nwin cash,spam\nhello,ham\nwin cash,ham\nbye,ham\n")
    data = TextPlugin().load_data(DataRequest(path=path, data_home=tmp_path))
    assert len(data.examples) == 5
    assert "2 repeated text(s) kept, 1 text(s) under more than one label" in data.description
