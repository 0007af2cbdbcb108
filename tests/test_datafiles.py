"""The core's class-folder walk, label tidying and header check, which every data loader relies on.

Symlinks are where a folder's labels silently went wrong: ``cat/up -> ..`` multiplied the data
and mislabelled it, ``cat/more -> ../dog`` used the dog files under both labels. Each case here is
what a user's folder can hold; each ends in the right files, a counted note, or one `DataError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from automl_tl.contract import Example, LabelledData
from automl_tl.datafiles import check_columns, scan_class_folders, tidy_labels
from automl_tl.errors import DataError


def _classes(root: Path, per_class: int = 3) -> Path:
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            (root / label / f"{i}.dat").write_text(f"{label} {i}")
    return root


def test_a_link_back_to_a_parent_is_a_loop_read_once_not_a_copy_of_everything(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data")
    os.symlink("..", root / "cat" / "up")  # 6 files became 6 + 6 * ... labelled cat, before
    os.symlink(".", root / "dog" / "self")
    scan = scan_class_folders(root, {".dat"})
    assert [(f.relative_to(root).as_posix(), label) for f, label in scan.files] == [
        ("cat/0.dat", "cat"), ("cat/1.dat", "cat"), ("cat/2.dat", "cat"),
        ("dog/0.dat", "dog"), ("dog/1.dat", "dog"), ("dog/2.dat", "dog"),
    ]
    assert scan.notes == ["2 symlink loop(s) not followed: cat/up, dog/self"]


def test_a_file_reached_under_two_labels_is_refused_naming_it_and_both_labels(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data")
    os.symlink("../dog", root / "cat" / "more")
    with pytest.raises(DataError) as refused:
        scan_class_folders(root, {".dat"})
    assert refused.value.message == "one file is labelled both 'cat' (as cat/more/0.dat) and 'dog' (as dog/0.dat)"
    os.remove(root / "cat" / "more")
    os.symlink("cat", root / "kitty")  # a whole class folder under a second name
    with pytest.raises(DataError, match=r"one file is labelled both 'cat' \(as cat/0.dat\) and 'kitty' \(as kitty/0.dat\)"):
        scan_class_folders(root, {".dat"})


def test_links_inside_one_class_are_followed_once_and_what_is_left_out_is_counted(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "far.dat").write_text("far")
    root = _classes(tmp_path / "data")
    os.symlink(outside, root / "cat" / "a-link")  # a folder outside the data: followed
    os.symlink(outside, root / "cat" / "b-link")  # the same folder again: read once
    os.symlink("0.dat", root / "dog" / "again.dat")  # the same file again: used once
    os.symlink("nowhere.dat", root / "dog" / "gone.dat")
    (root / "dog" / "x.dat").mkdir()
    (root / "dog" / "notes.txt").write_text("not data")
    (root / "bird").mkdir()
    (root / "__MACOSX").mkdir()
    scan = scan_class_folders(root, {".dat"})
    assert len(scan.files) == 7 and (root / "cat" / "a-link" / "far.dat", "cat") in scan.files
    assert scan.others == [(root / "dog" / "notes.txt", "dog")]
    assert scan.notes == [
        "1 empty class folder(s) ignored: bird",
        "1 folder(s) reached a second time (through a symlink) read once: cat/b-link",
        "1 file(s) reached by more than one path used once: dog/again.dat",
        "1 dangling symlink(s) ignored: dog/gone.dat",
        "1 folder(s) named like data files ignored: dog/x.dat",
    ]


def test_labels_differing_by_spaces_are_merged_and_by_case_are_noted() -> None:
    examples = [Example(i, label) for i, label in enumerate(["cat", "cat ", " dog", "dog", "Cat", "bird"])]
    data = tidy_labels(LabelledData(examples, "6 things", test=[Example(9, "bird ")]))
    assert [e.label for e in data.examples] == ["cat", "cat", "dog", "dog", "Cat", "bird"]
    assert [e.label for e in data.test or []] == ["bird"] and data.validation is None
    assert data.description == ("6 things; 3 label(s) with surrounding spaces stripped: ' dog' as 'dog', 'bird ' as 'bird', "
                                "'cat ' as 'cat'; labels differing only by case kept apart: 'Cat' / 'cat'")
    untouched = LabelledData([Example(1, "a"), Example(2, "b")], "2 things")
    assert tidy_labels(untouched).description == "2 things"


def test_a_column_the_loader_reads_named_twice_is_refused() -> None:
    check_columns("t.csv", ["text", "label", "note", "note"], ["text", "label"])  # an unused repeat is harmless
    with pytest.raises(DataError, match=r"^t.csv: the header names the column 'label' 2 times \(columns 2, 4\)"):
        check_columns("t.csv", ["text", "label", "note", "Label "], ["text", "label"])
