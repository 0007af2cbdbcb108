"""Fuzzing what every data loader feeds: any labelled data either splits soundly or is one `DataError`.

Sound means: the splits partition the examples, no group straddles two splits when splitting by
group, every class can be learned (it has training examples) and neither held-out split is empty.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from automl_tl.config import DataConfig
from automl_tl.contract import Example, LabelledData
from automl_tl.errors import DataError
from automl_tl.splits import make_splits

rows = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "ü", "a b"]), st.sampled_from(["g1", "g2", "g3", "g4", "g5", "g6"])),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    rows=rows,
    grouped=st.booleans(),
    split_by=st.sampled_from(["auto", "group", "stratified"]),
    fractions=st.tuples(st.floats(0.01, 0.9), st.floats(0.01, 0.9)),
    own_test=st.booleans(),
    seed=st.integers(0, 3),
)
def test_any_labelled_data_splits_soundly_or_is_one_data_error(rows, grouped, split_by, fractions, own_test, seed):
    examples = [Example(item=f"x{i}", label=label, group=group if grouped else None) for i, (label, group) in enumerate(rows)]
    test = examples[: len(examples) // 4] if own_test else None
    data = LabelledData(examples[len(test or []):], "fuzz", test=test)
    config = DataConfig(split_by=split_by, test_fraction=fractions[0], validation_fraction=fractions[1])
    try:
        splits = make_splits(data, config, seed)
    except DataError as exc:
        assert exc.message and "\n" not in exc.message
        return
    parts = [splits.train, splits.validation, splits.test]
    items = [e.item for part in parts for e in part]
    assert sorted(items) == sorted(e.item for e in examples), "the splits are a partition of the examples"
    assert splits.validation and splits.test
    assert {e.label for e in splits.train} == set(splits.classes), "every class has training examples"
    def groups(part: list[Example]) -> set[str | None]:
        return {e.group for e in part}

    if "test: groups" in splits.description:  # held out by group: no test group is seen in training or validation
        assert not groups(splits.test) & groups(splits.train + splits.validation)
    if "validation: groups" in splits.description:
        assert not groups(splits.validation) & groups(splits.train)
