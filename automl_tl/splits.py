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
        notes.append(f"test: stratified {config.test_fraction:.0%}")
    if data.validation is not None:
        validation = list(data.validation)
        notes.append("validation: the dataset's own split")
    elif use_groups and len({e.group for e in pool}) >= 2:
        pool, validation, held = _hold_out_groups(
            pool, config.validation_groups, config.validation_fraction, rng, "validation"
        )
        notes.append(f"validation: {data.group_name}s {', '.join(held)} held out")
    else:
        pool, validation = _stratified(pool, config.validation_fraction, rng)
        notes.append(f"validation: stratified {config.validation_fraction:.0%}")
    splits = Splits(pool, validation, test, sorted({e.label for e in examples} | {e.label for e in test}), "; ".join(notes))
    _check(splits)
    return splits


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


def _check(splits: Splits) -> None:
    train_counts = Counter(e.label for e in splits.train)
    if len(splits.classes) < 2:
        raise DataError(f"only one class ({splits.classes[0]!r}) in the data; a classifier needs at least two")
    missing = [c for c in splits.classes if train_counts[c] == 0]
    if missing:
        raise DataError(
            f"class(es) {', '.join(map(repr, missing[:5]))} have no training example after splitting",
            hint="every class needs at least 2 examples (3 or more for a useful validation split)",
        )
    for name in ("validation", "test"):
        if not getattr(splits, name):
            raise DataError(f"the {name} split is empty", hint="add data or lower the split fractions")
