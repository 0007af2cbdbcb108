"""Train / validation / test splits: groups held out whole, stratification, and unusable data."""

from __future__ import annotations

from collections import Counter

import pytest

from automl_tl.config import DataConfig
from automl_tl.contract import Example, LabelledData
from automl_tl.errors import DataError
from automl_tl.splits import make_splits

LABELS = ("a", "b", "c")


def grouped(groups: int = 6, per_group: int = 3) -> LabelledData:
    """Every group has ``per_group`` examples of each label."""
    examples = [
        Example(item=f"{g}-{label}-{i}", label=label, group=f"g{g}")
        for g in range(groups)
        for label in LABELS
        for i in range(per_group)
    ]
    return LabelledData(examples, "grouped", group_name="speaker")


def ungrouped(per_label: dict[str, int]) -> LabelledData:
    return LabelledData([Example(f"{label}-{i}", label) for label, n in per_label.items() for i in range(n)], "plain")


def groups_of(examples: list[Example]) -> set[str | None]:
    return {e.group for e in examples}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_are_held_out_whole_for_test_and_validation(seed):
    data = grouped()
    splits = make_splits(data, DataConfig(), seed)
    train, validation, test = groups_of(splits.train), groups_of(splits.validation), groups_of(splits.test)
    assert train and validation and test
    assert not (train & validation) and not (train & test) and not (validation & test)
    assert train | validation | test == groups_of(data.examples)
    assert sorted(e.item for e in splits.train + splits.validation + splits.test) == sorted(e.item for e in data.examples)
    assert splits.classes == list(LABELS)
    assert "speakers" in splits.description and "held out" in splits.description


def test_split_is_reproducible_from_the_seed():
    first = make_splits(grouped(), DataConfig(), seed=5)
    again = make_splits(grouped(), DataConfig(), seed=5)
    assert [e.item for e in first.test] == [e.item for e in again.test]
    assert [e.item for e in first.validation] == [e.item for e in again.validation]


def test_named_test_and_validation_groups():
    splits = make_splits(grouped(), DataConfig(test_groups=["g1", "g4"], validation_groups=["g2"]), seed=0)
    assert groups_of(splits.test) == {"g1", "g4"}
    assert groups_of(splits.validation) == {"g2"}
    assert groups_of(splits.train) == {"g0", "g3", "g5"}
    assert "speakers g1, g4 held out" in splits.description


def test_unknown_test_group_is_a_clear_error():
    with pytest.raises(DataError, match=r"test groups nobody are not in the data \(groups: g0, g1, g2, g3, g4, g5\)"):
        make_splits(grouped(), DataConfig(test_groups=["g1", "nobody"]), seed=0)


def test_holding_out_every_group_is_an_error():
    with pytest.raises(DataError, match="leaves no group to train on"):
        make_splits(grouped(groups=3), DataConfig(test_groups=["g0", "g1", "g2"]), seed=0)


def test_stratified_split_when_examples_have_no_groups():
    data = ungrouped({"a": 20, "b": 10, "c": 30})
    splits = make_splits(data, DataConfig(test_fraction=0.2, validation_fraction=0.25), seed=0)
    assert "stratified" in splits.description
    test, validation = Counter(e.label for e in splits.test), Counter(e.label for e in splits.validation)
    assert test == {"a": 4, "b": 2, "c": 6}  # 20 % of each class
    assert validation == {"a": 4, "b": 2, "c": 6}  # 25 % of what is left
    items = [e.item for e in splits.train + splits.validation + splits.test]
    assert sorted(items) == sorted(e.item for e in data.examples) and len(set(items)) == len(items)


def test_split_by_stratified_ignores_groups():
    splits = make_splits(grouped(), DataConfig(split_by="stratified"), seed=0)
    assert groups_of(splits.train) & groups_of(splits.test)  # groups shared: stratified by label only
    assert "stratified" in splits.description


def test_split_by_group_needs_groups():
    with pytest.raises(DataError, match="needs a group for every example"):
        make_splits(ungrouped({"a": 5, "b": 5}), DataConfig(split_by="group"), seed=0)


def test_datasets_own_test_split_is_kept():
    own_test = [Example("t1", "a"), Example("t2", "b")]
    data = ungrouped({"a": 10, "b": 10})
    data.test = own_test
    splits = make_splits(data, DataConfig(), seed=0)
    assert splits.test == own_test
    assert len(splits.train) + len(splits.validation) == 20


def test_one_class_is_an_error():
    with pytest.raises(DataError, match=r"only one class \('a'\)"):
        make_splits(ungrouped({"a": 12}), DataConfig(), seed=0)


@pytest.mark.parametrize("grouping", ["stratified", "group"])
def test_a_class_with_a_single_example_is_an_error(grouping):
    data = grouped() if grouping == "group" else ungrouped({"a": 10, "b": 10})
    data.examples.append(Example("lonely", "rare", "g0" if grouping == "group" else None))
    with pytest.raises(DataError, match=r"'rare'.*2 examples"):
        make_splits(data, DataConfig(), seed=0)


def test_empty_data_is_an_error():
    with pytest.raises(DataError, match="no examples"):
        make_splits(LabelledData([], "nothing"), DataConfig(), seed=0)


def test_empty_validation_split_is_an_error():
    with pytest.raises(DataError, match="validation split is empty"):
        make_splits(ungrouped({"a": 2, "b": 2}), DataConfig(), seed=0)


def test_two_examples_a_class_say_why_validation_is_empty():
    """Lowering the fractions cannot help (each class holds out at least one): the message says what can."""
    for fractions in ({}, {"test_fraction": 0.05, "validation_fraction": 0.05}):
        with pytest.raises(DataError) as caught:
            make_splits(ungrouped({f"c{i}": 2 for i in range(200)}), DataConfig(**fractions), seed=0)
        assert str(caught.value) == (
            "the validation split is empty: after the test split every class has at most 1 example(s) left, and a "
            "stratified split keeps one of each for training (add examples (3 or more of each class), or pass a "
            "separate test file with --test)"
        )


def test_the_split_description_gives_the_shares_taken_not_the_ones_asked():
    splits = make_splits(ungrouped({f"c{i}": 3 for i in range(100)}), DataConfig(), seed=0)
    assert splits.sizes() == {"train": 100, "validation": 100, "test": 100}
    assert splits.description == (
        "test: stratified 33% (test_fraction = 0.2; every class holds out at least one example and keeps one for training); "
        "validation: stratified 33% (validation_fraction = 0.15 of the rest; every class holds out at least one example "
        "and keeps one for training)"
    )
    plenty = make_splits(ungrouped({"a": 40, "b": 40}), DataConfig(), seed=0)
    assert plenty.description == "test: stratified 20%; validation: stratified 12%"  # 15 % of the 80 % left


def test_a_label_only_in_the_test_file_is_named_as_such():
    data = ungrouped({"a": 10, "b": 10})
    data.test = [Example("t1", "a"), Example("t2", "zebra")]
    with pytest.raises(DataError, match=r"label\(s\) 'zebra' appear only in the test file \(--test\), never in the data to train on"):
        make_splits(data, DataConfig(), seed=0)
