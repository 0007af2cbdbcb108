"""The target domain of a domain-adaptation search: its examples without labels, and the honest choice.

The user has labelled *source* data and data from the *target* domain they care about. The target
is read by the plugin's usual loader, so it may carry labels (a folder per class, a label column);
`make_target` drops them before anything trains or chooses, keeping only the two labelled parts
the user asked for by name: ``target_labelled`` examples per class for validation, and a target
test set evaluated once after the search. A test shuffles the target's labels and gets the same
search, which is what "dropped" means here.

`choose` is the rule that picks the final trial: an unsupervised validator can prefer a model
that has collapsed onto a few confident classes, so an adapted trial is chosen over the source-only
ones only if its source validation score stays within ``margin`` of theirs.

Torch-free: the leaderboard applies the same rule to a study it only reads.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from automl_tl.config import RunConfig
from automl_tl.contract import Example, LabelledData
from automl_tl.errors import DataError
from automl_tl.vocabulary.adaptations import SOURCE_ONLY, TARGET_PREFIX

UNLABELLED = ""
"""The label a target example carries once its own is dropped: no class has it, so nothing can train on it."""


@dataclass
class TargetSplits:
    """The target's parts: unlabelled examples, and the labelled ones the user named (maybe none)."""

    unlabelled: list[Example]
    validation: list[Example] = field(default_factory=list)
    """``target_labelled`` examples per class: with them, trials are chosen on target accuracy."""
    test: list[Example] = field(default_factory=list)
    description: str = ""

    def splits(self) -> dict[str, list[Example]]:
        """The feature store's split names for the target's non-empty parts."""
        parts = {"target": self.unlabelled, "target_validation": self.validation, "target_test": self.test}
        return {name: examples for name, examples in parts.items() if examples}


def make_target(
    data: LabelledData, test: LabelledData | None, classes: Sequence[str], labelled: int | None, seed: int, where: str,
) -> TargetSplits:
    """The target's parts, or a `DataError` saying in one line why the target cannot be used.

    The target's own test split (a loader that found ``train/`` and ``test/``) is its test set
    when no ``test`` is given. Every label the target carries must be one of the source's
    ``classes``: a target of another task (or another modality's files read as one) is refused
    rather than adapted to.
    """
    examples = list(data.examples) + list(data.validation or [])
    if not examples:
        raise DataError(f"the target {where} holds no examples", hint="check the path and the expected layout")
    tests = list(test.examples) + list(test.test or []) if test is not None else list(data.test or [])
    known = set(classes)
    for part, what in ((examples, "target"), (tests, "target test")):
        unknown = sorted({e.label for e in part} - known)
        if unknown:
            raise DataError(
                f"{what} classes {', '.join(map(repr, unknown[:5]))} are not among the source's classes "
                f"({', '.join(map(repr, list(classes)[:10]))})",
                hint="a target is the same task in another domain: the same class names",
            )
    notes = [f"{len(examples)} target examples, labels dropped before training and selection"]
    validation: list[Example] = []
    if labelled is not None:
        examples, validation = _labelled(examples, labelled, classes, random.Random(seed))
        notes.append(f"{labelled} labelled per class kept for validation only")
    if tests:
        notes.append(f"{len(tests)} labelled target test examples, evaluated once after the search")
    return TargetSplits([replace(e, label=UNLABELLED) for e in examples], validation, tests, "; ".join(notes))


def _labelled(
    examples: list[Example], per_class: int, classes: Sequence[str], rng: random.Random,
) -> tuple[list[Example], list[Example]]:
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    short = [c for c in classes if len(by_label[c]) <= per_class]
    if short:
        counts = Counter(e.label for e in examples)
        raise DataError(
            f"target_labelled = {per_class} needs more than {per_class} target examples of each class; "
            f"{', '.join(f'{c!r} has {counts[c]}' for c in short[:5])}",
            hint="lower --target-labelled, or leave it out to choose without target labels",
        )
    held: list[Example] = []
    for label in sorted(by_label):
        members = list(by_label[label])
        rng.shuffle(members)
        held.extend(members[:per_class])
    chosen = {id(e) for e in held}
    return [e for e in examples if id(e) not in chosen], held


@dataclass(frozen=True)
class Candidate:
    """A completed trial as `choose` sees it."""

    trial: int
    value: float
    """The search's objective: the validator's value, or target validation accuracy."""
    adaptation: str
    source: float | None
    """Its source validation score (the run's objective metric)."""


def choose(candidates: Sequence[Candidate], margin: float | None) -> Candidate | None:
    """The final trial: the best value among the source-only trials and the adapted trials whose
    source validation score is at most ``margin`` below the best source-only trial's.

    ``margin`` None (no target, or labelled target validation, which measures the target itself)
    is the plain best value.
    """
    if not candidates:
        return None
    floor = source_floor(candidates, margin)
    eligible = [c for c in candidates if floor is None or c.adaptation == SOURCE_ONLY or (c.source or 0.0) >= floor]
    return max(eligible, key=lambda c: c.value)


def source_floor(candidates: Sequence[Candidate], margin: float | None) -> float | None:
    """The lowest source validation score an adapted trial may have and still be chosen (None: no guard)."""
    baselines = [c for c in candidates if c.adaptation == SOURCE_ONLY]
    if margin is None or not baselines:
        return None
    reference = max(baselines, key=lambda c: c.value)
    return None if reference.source is None else reference.source - margin


def selection(config: RunConfig) -> tuple[str, float | None]:
    """The metric a search chooses trials (and their best epochs) by, and `choose`'s margin (None: no guard).

    Without a target, the objective on source validation; with labelled target examples, the
    objective on them; else the chosen validator, guarded by the source validation score.
    """
    data, search = config.data, config.search
    if data.target_path is None or search.validator == "source":
        return search.objective, None
    if data.target_labelled is not None:
        return TARGET_PREFIX + search.objective, None
    return search.validator, search.source_margin
