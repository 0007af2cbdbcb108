"""Train / validation / test splits that answer the question the user actually has.

When examples carry groups (speakers, authors), validation and test hold whole groups out: a
random split leaks a speaker's voice into validation, scores near 1.0 for nearly every model and so
cannot choose between them (the FSDD figures are in docs/results.md). Without groups, splits are
stratified by label.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from automl_tl.config import DataConfig
from automl_tl.contract import Example, LabelledData
from automl_tl.errors import DataError


@dataclass
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    classes: list[str]
    description: str
    """How each split was held out, in words (shown in the terminal and the report)."""

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def make_splits(data: LabelledData, config: DataConfig, seed: int) -> Splits:
    """Split ``data`` as ``config`` asks, or raise a `DataError` saying why it cannot be used."""
    examples = data.examples
    if not examples:
        raise DataError("no examples found in the data", hint="check the path and the expected layout")
    # a lone example would sit in train or be held out and leave its class untrainable; either way
    # the class can never be both learned and scored, so say so before splitting (by chance) hides it
    single = sorted(label for label, n in Counter(e.label for e in examples).items() if n < 2)
    if single:
        raise DataError(
            f"class(es) {', '.join(map(repr, single[:5]))} have a single example; every class needs at least 2 examples",
            hint="add examples of those classes or remove them",
        )
    has_groups = all(e.group is not None for e in examples)
    if config.split_by == "group" and not has_groups:
        raise DataError("split_by = 'group' needs a group for every example (e.g. a group column)")
    use_groups = has_groups and config.split_by in ("auto", "group") and len({e.group for e in examples}) >= 3
    if (config.test_groups or config.validation_groups) and not use_groups:  # never drop the user's choice silently
        why = ("split_by is 'stratified'" if config.split_by == "stratified"
               else "the examples have no groups" if not has_groups else "the data has fewer than 3 groups")
        raise DataError(f"test_groups / validation_groups are set, but {why}", hint="remove them, or split by group")
    rng = random.Random(seed)
    notes: list[str] = []
    pool = list(examples)
    if data.test is not None:
        test = list(data.test)
        notes.append("test: the dataset's own test split")
    elif use_groups:
        pool, test, held = _hold_out_groups(pool, config.test_groups, config.test_fraction, rng, "test")
        notes.append(f"test: {data.group_name}s {', '.join(held)} held out")
    else:
        pool, test = _stratified(pool, config.test_fraction, rng)
        notes.append(_stratified_note("test", test, len(examples), len(examples), config.test_fraction))
    if data.validation is not None:
        validation = list(data.validation)
        notes.append("validation: the dataset's own split")
    elif use_groups and len({e.group for e in pool}) >= 2:
        pool, validation, held = _hold_out_groups(
            pool, config.validation_groups, config.validation_fraction, rng, "validation"
        )
        notes.append(f"validation: {data.group_name}s {', '.join(held)} held out")
    else:
        before = len(pool)
        pool, validation = _stratified(pool, config.validation_fraction, rng)
        if not validation:
            most = max(Counter(e.label for e in pool).values())
            raise DataError(
                f"the validation split is empty: after the test split every class has at most {most} example(s) left, "
                "and a stratified split keeps one of each for training",
                hint="add examples (3 or more of each class), or pass a separate test file with --test",
            )
        notes.append(_stratified_note("validation", validation, before, len(examples), config.validation_fraction))
    splits = Splits(pool, validation, test, sorted({e.label for e in examples} | {e.label for e in test}), "; ".join(notes))
    _check(splits, data)
    return splits


def _stratified_note(split: str, held: list[Example], pool: int, total: int, fraction: float) -> str:
    """How much a stratified hold-out took, as a share of all examples.

    It is rarely the fraction asked for: each class holds out a whole number of its examples, at
    least one and never its last, so with few examples per class the share is far from it (3 per
    class hold out 1 for test: 33 %, not 20 %). Then the note says so, and why.
    """
    note = f"{split}: stratified {len(held) / total:.0%}"
    if abs(len(held) / pool - fraction) >= 0.02:
        note += (f" ({split}_fraction = {fraction:g}{' of the rest' if pool < total else ''}; "
                 "every class holds out at least one example and keeps one for training)")
    return note


def _hold_out_groups(
    pool: list[Example], named: Sequence[str] | None, fraction: float, rng: random.Random, split: str
) -> tuple[list[Example], list[Example], list[str]]:
    groups = sorted({e.group for e in pool if e.group is not None})
    if named:
        unknown = sorted(set(named) - set(groups))
        if unknown:
            raise DataError(f"{split} groups {', '.join(unknown)} are not in the data (groups: {', '.join(groups)})")
        held = sorted(named)
    else:
        count = min(len(groups) - 1, max(1, round(fraction * len(groups))))
        held = sorted(rng.sample(groups, count))
    if len(held) >= len(groups):
        raise DataError(f"holding out {', '.join(held)} for {split} leaves no group to train on")
    chosen = set(held)
    return [e for e in pool if e.group not in chosen], [e for e in pool if e.group in chosen], held


def _stratified(pool: list[Example], fraction: float, rng: random.Random) -> tuple[list[Example], list[Example]]:
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in pool:
        by_label[example.label].append(example)
    keep: list[Example] = []
    held: list[Example] = []
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        count = min(len(members) - 1, max(1, round(fraction * len(members)))) if len(members) > 1 else 0
        held.extend(members[:count])
        keep.extend(members[count:])
    return keep, held


def _check(splits: Splits, data: LabelledData) -> None:
    """What no split can fix: one class, a label only the dataset's own test or validation split has, an empty one."""
    if len(splits.classes) < 2:
        raise DataError(f"only one class ({splits.classes[0]!r}) in the data; a classifier needs at least two")
    trained = {e.label for e in data.examples}
    for name, own in (("test", data.test), ("validation", data.validation)):
        where = "the test file (--test)" if name == "test" else "the dataset's own validation split"
        unseen = sorted({e.label for e in own or []} - trained)
        if unseen:
            raise DataError(f"label(s) {', '.join(map(repr, unseen[:5]))} appear only in {where}, never in the data to train on",
                            hint="a model cannot learn a class it never sees: add examples of it, or remove it from there")
        if own is not None and not own:
            raise DataError(f"{where} holds no examples")
    in_train = {e.label for e in splits.train}
    missing = [c for c in splits.classes if c not in in_train]
    if missing:  # a stratified split keeps one of each class: only held-out groups can take a class whole
        raise DataError(
            f"class(es) {', '.join(map(repr, missing[:5]))} have no training example: all their examples are in held-out groups",
            hint="add examples of them from other groups, or name test_groups / validation_groups that leave some to train on",
        )
