"""Fuzzing the text loader: any file, in any of its formats, gives labelled texts or one `DataError`.

Contents are random text made of the characters that matter to the parsers (separators, quotes,
braces, newlines, a byte-order mark, non-ASCII) or random bytes; the file's suffix picks the
parser, and the header option is sometimes forced either way. (Also here, as a plain test: how
repeated texts are reported.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automl_tl.contract import DataRequest
from automl_tl.errors import DataError
from automl_tl_text import TextPlugin
from automl_tl_text.options import TextOptions

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALPHABET = st.sampled_from(list('ab,\t"\n{}[]:\ufeff\u00e9 ') + ["text", "label", "spam", "ham", '"text": ', '"label": '])
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
        assert isinstance(example.item, str) and example.item.strip(), example
        assert isinstance(example.label, str) and example.label.strip(), example


def test_repeated_texts_are_reported_with_their_conflicts(tmp_path: Path) -> None:
    """Kept (real data has them) but said: a repeat can sit in train and test, a conflict caps the accuracy."""
    path = tmp_path / "data.csv"
    path.write_text("text,label\nhello,ham\nwin cash,spam\nhello,ham\nwin cash,ham\nbye,ham\n")
    data = TextPlugin().load_data(DataRequest(path=path, data_home=tmp_path))
    assert len(data.examples) == 5
    assert "2 repeated text(s) kept, 1 text(s) under more than one label" in data.description
