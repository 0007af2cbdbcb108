"""Reading labelled texts: every accepted layout, column detection, and bad input (no model needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from automl_tl.config import plugin_options, read_recipe, resolve
from automl_tl.contract import DataRequest
from automl_tl.errors import DataError, UserError
from automl_tl_text import TextPlugin, minilm_folder, resolve_backbone
from automl_tl_text.options import TextOptions

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"
RECIPES = Path(__file__).resolve().parents[3] / "recipes"


def load(path: Path | None, *, home: Path | None = None, test: Path | None = None, skip: bool = False, **options):
    request = DataRequest(path=path, data_home=home or Path("/nonexistent"), test_path=test, options=TextOptions(**options), skip_bad_files=skip)
    return TextPlugin().load_data(request)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_header_finds_columns_by_name(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'id,sentence,category\n1,"Hello, world",greeting\n2,Bye now,farewell\n3,"Say ""hi""",greeting\n')
    data = load(path)
    assert [(e.item, e.label) for e in data.examples] == [
        ("Hello, world", "greeting"), ("Bye now", "farewell"), ('Say "hi"', "greeting")]
    assert "'sentence'" in data.description and "'category'" in data.description
    assert data.test is None and data.skipped == []


def test_columns_from_options_and_groups(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "review,stars,user\ngreat,5,u1\nbad,1,u2\nfine,5,u1\n")
    data = load(path, text_column="review", label_column="stars", group_column="user")
    assert [(e.item, e.label, e.group) for e in data.examples] == [("great", "5", "u1"), ("bad", "1", "u2"), ("fine", "5", "u1")]
    assert data.group_name == "user"


def test_headerless_tsv_like_sms_spam(tmp_path: Path) -> None:
    lines = ['ham\tOk lar... "Joking" wif u oni...', "spam\tFree entry in 2 a wkly comp", "ham\tU dun say so early hor",
             "spam\tWINNER!! claim\tnow", "ham\tNah I don't think he goes to usf"]
    path = write(tmp_path / "SMSSpamCollection", "\n".join(lines) + "\n")
    data = load(path)
    assert len(data.examples) == 5
    assert data.examples[0].item == 'Ok lar... "Joking" wif u oni...'  # quotes kept as written
    assert data.examples[3].item == "WINNER!! claim\tnow"  # a tab inside the text joins back
    assert {e.label for e in data.examples} == {"ham", "spam"}
    assert "no header" in data.description


def test_two_unknown_columns_with_header_detected_by_values(tmp_path: Path) -> None:
    # "mood" never repeats in its column, so it is a column name; the texts are the other column
    path = write(tmp_path / "d.tsv", "mood\tsaid\npos\tlovely day\nneg\tawful day\npos\tnice one\n")
    data = load(path)
    assert [(e.item, e.label) for e in data.examples] == [("lovely day", "pos"), ("awful day", "neg"), ("nice one", "pos")]


def test_header_option_forces_headerless_and_numbered_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,text,label\ny,first text,a\nz,second text,b\n")
    data = load(path, header=False, text_column=1, label_column=2)
    assert [e.item for e in data.examples] == ["text", "first text", "second text"]
    with pytest.raises(DataError, match="no header row"):
        load(path, header=False, text_column="text", label_column=2)


def test_jsonl(tmp_path: Path) -> None:
    rows = [{"text": "hi there", "intent": "greet"}, {"text": "bye", "intent": "leave", "extra": 1}, {"text": "yo", "intent": 3}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = load(path)
    assert [(e.item, e.label) for e in data.examples] == [("hi there", "greet"), ("bye", "leave"), ("yo", "3")]


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label"\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2"):
        load(path)


def test_folder_of_class_folders_with_txt(tmp_path: Path) -> None:
    write(tmp_path / "pos" / "1.txt", "great film\n")
    write(tmp_path / "pos" / "sub" / "2.txt", "loved it")
    write(tmp_path / "neg" / "1.txt", "boring")
    write(tmp_path / "neg" / "2.txt", "   \n")
    data = load(tmp_path)
    assert sorted((e.label, e.item) for e in data.examples) == [("neg", "boring"), ("pos", "great film"), ("pos", "loved it")]
    assert len(data.skipped) == 1 and "empty text" in data.skipped[0]
    assert "1 row(s) with an empty text" in data.description


def test_class_folders_follow_a_symlink_once_and_never_relabel(tmp_path: Path) -> None:
    for label, texts in (("pos", ("great", "lovely")), ("neg", ("awful", "dull"))):
        for i, text in enumerate(texts):
            write(tmp_path / "d" / label / f"{i}.txt", text)
    (tmp_path / "d" / "pos" / "nothing.txt").symlink_to("gone.txt")
    data = load(tmp_path / "d")
    assert len(data.examples) == 4 and "1 dangling symlink(s) ignored: pos/nothing.txt" in data.description
    (tmp_path / "d" / "happy").symlink_to("pos")
    with pytest.raises(DataError, match=r"one file is labelled both 'happy' \(as happy/0.txt\) and 'pos' \(as pos/0.txt\)"):
        load(tmp_path / "d")


def test_a_repeated_column_is_refused_and_nan_is_an_empty_cell(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"d.csv: the header names the column 'text' 2 times \(columns 1, 3\)"):
        load(write(tmp_path / "d.csv", "text,label,Text\nhello,a,bye\n"))
    rows = '{"text": "hi", "label": "a"}\n{"text": NaN, "label": "b"}\n{"text": "yo", "label": Infinity}\n{"text": "hey", "label": "b"}\n'
    data = load(write(tmp_path / "d.jsonl", rows))
    assert [(e.item, e.label) for e in data.examples] == [("hi", "a"), ("hey", "b")]
    assert "2 row(s) with an empty text or label skipped" in data.description


def test_folder_with_train_and_test_files(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", "text,category\na,x\nb,y\nc,x\n")
    write(tmp_path / "test.csv", "text,category\nd,x\ne,y\n")
    write(tmp_path / "categories.json", '["x", "y"]')
    data = load(tmp_path)
    assert [e.item for e in data.examples] == ["a", "b", "c"]
    assert data.test is not None and [e.item for e in data.test] == ["d", "e"]


def test_folder_of_class_folders_split_in_train_and_test(tmp_path: Path) -> None:
    for split in ("train", "test"):
        write(tmp_path / split / "pos" / "1.txt", f"{split} good")
        write(tmp_path / split / "neg" / "1.txt", f"{split} bad")
    data = load(tmp_path)
    assert {e.item for e in data.examples} == {"train good", "train bad"}
    assert data.test is not None and {e.item for e in data.test} == {"test good", "test bad"}


def test_folder_of_tables_is_concatenated(tmp_path: Path) -> None:
    write(tmp_path / "part1.csv", "text,label\na,x\n")
    write(tmp_path / "part2.jsonl", '{"text": "b", "label": "y"}\n')
    assert [e.item for e in load(tmp_path).examples] == ["a", "b"]


def test_separate_test_file(tmp_path: Path) -> None:
    train = write(tmp_path / "train.tsv", "label\ttext\nx\tone\ny\ttwo\nx\tthree\n")
    test = write(tmp_path / "held.tsv", "label\ttext\nx\tfour\ny\tfive\n")
    data = load(train, test=test)
    assert [e.item for e in data.examples] == ["one", "two", "three"]
    assert data.test is not None and [(e.item, e.label) for e in data.test] == [("four", "x"), ("five", "y")]
    assert "+2 test" in data.description


def test_missing_column_names_the_available_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "body,kind,source\na,x,s\n")
    with pytest.raises(DataError, match=r"'body', 'kind', 'source'"):
        load(path, text_column="body", label_column="label")
    with pytest.raises(DataError, match=r"cannot tell which column .* holds the label .*'body', 'kind', 'source'"):
        load(path)


def test_empty_texts_and_labels_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'text,label\nfine,a\n"",a\n   ,b\nok,\nalso fine,b\nshort\n')
    data = load(path)
    assert [e.item for e in data.examples] == ["fine", "also fine"]
    assert len(data.skipped) == 4
    assert sum("empty text" in s for s in data.skipped) == 2 and any("d.csv:5: empty label" in s for s in data.skipped)
    assert "3 row(s) with an empty text or label skipped" in data.description


def test_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", b"text,label\ngood,a\ncaf\xe9 au lait,b\n")
    with pytest.raises(DataError, match=r"d\.csv: line 3: not valid UTF-8"):
        load(path)
    data = load(path, skip=True)
    assert data.examples[1].item == "caf\ufffd au lait"
    assert "replaced" in data.description


def test_non_utf8_txt_file_is_an_error_or_skipped(tmp_path: Path) -> None:
    write(tmp_path / "a" / "1.txt", "fine")
    write(tmp_path / "b" / "1.txt", "fine too")
    write(tmp_path / "b" / "bad.txt", b"\xff\xfe broken")
    with pytest.raises(DataError, match=r"bad\.txt: line 1: not valid UTF-8"):
        load(tmp_path)
    data = load(tmp_path, skip=True)
    assert len(data.examples) == 2 and len(data.skipped) == 1 and "bad.txt" in data.skipped[0]


def test_label_with_one_example_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\na,x\nb,x\nc,lonely\n")
    assert [e.label for e in load(path).examples] == ["x", "x", "lonely"]


def test_unusable_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="one column"):
        load(write(tmp_path / "one.txt", "just text\nmore text\n"))
    with pytest.raises(DataError, match="is empty"):
        load(write(tmp_path / "empty.csv", "\n"))
    with pytest.raises(DataError, match="no data files"):
        load((tmp_path / "nothing").mkdir() or tmp_path / "nothing")


def test_default_dataset_missing_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load(None, home=tmp_path)
    assert "AUTOML_TL_DATA" in str(err.value) and "--data" in str(err.value)


@pytest.mark.skipif(not (SHARED / "sms-spam" / "SMSSpamCollection").is_file(), reason="shared data not present")
def test_default_dataset_is_sms_spam_from_the_data_home() -> None:
    data = load(None, home=SHARED)
    assert len(data.examples) == 5574 and {e.label for e in data.examples} == {"ham", "spam"}
    assert sum(e.label == "spam" for e in data.examples) == 747


@pytest.mark.skipif(not (SHARED / "banking77" / "train.csv").is_file(), reason="shared data not present")
def test_banking77_with_its_test_file() -> None:
    data = load(SHARED / "banking77" / "train.csv", test=SHARED / "banking77" / "test.csv", text_column="text", label_column="category")
    assert len(data.examples) == 10003 and data.test is not None and len(data.test) == 3080
    assert len({e.label for e in data.examples}) == 77


def test_recipes_validate() -> None:
    for name in ("text-sms-spam.toml", "text-banking77.toml"):
        config = resolve(TextPlugin(), read_recipe(RECIPES / name), {}, name)
        assert config.modality == "text"
        assert isinstance(plugin_options(TextPlugin(), config.options), TextOptions)


def options(**raw: object) -> TextOptions:
    """The options object the core hands the plugin for a recipe's ``[options]``."""
    plugin = TextPlugin()
    return plugin_options(plugin, resolve(plugin, {"modality": "text", "options": raw}, {}, "recipe").options)


def test_options_are_checked() -> None:
    with pytest.raises(UserError, match="max_length"):
        options(max_length="long")
    with pytest.raises(UserError, match="pooling"):
        options(pooling="max")
    with pytest.raises(UserError, match="text_column"):
        options(text_column=1.5)
    with pytest.raises(UserError, match="unknown option"):
        options(colour=1)
    assert options(max_length=64, text_column=0).max_length == 64
    assert options(max_length="64").max_length == 64  # a flag's value arrives as text


def test_catalogue_and_backbone_names(tmp_path: Path) -> None:
    infos = {b.name: b for b in TextPlugin().backbones()}
    assert TextPlugin.default_backbone == "minilm-l6" in infos
    assert infos["minilm-l6"].available_offline == (minilm_folder() is not None)
    assert {"bert-base-uncased", "distilbert-base-uncased", "roberta-base", "deberta-v3-small"} <= set(infos)
    assert infos["deberta-v3-small"].source == "hf:microsoft/deberta-v3-small"
    assert resolve_backbone(str(tmp_path)).local
    assert resolve_backbone("someone/some-model").location == "someone/some-model"
    with pytest.raises(UserError, match="does not exist"):
        resolve_backbone(str(tmp_path / "no-such-model"))
    with pytest.raises(UserError, match="unknown backbone"):
        resolve_backbone("not a model!")


def test_import_is_cheap() -> None:
    code = "import sys, automl_tl_text; p = automl_tl_text.TextPlugin(); p.backbones(); print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
