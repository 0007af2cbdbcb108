"""The target domain of a domain-adaptation search: its examples without labels, and the honest choice.

The user has labelled *source* data and data from the *target* domain they care about. The target
is read by the plugin's usual loader, so it may carry labels (a folder per class, a label column);
`make_target` drops them before anything trains or chooses, keeping only the two labelled parts
the user asked for by name: ``target_labelled`` examples per class for validation, and a target
test set evaluated once after the search. A test shuffles the target's labels and gets the same
search, which is what "dropped" means here.

Before the first trial, the shift check (`NO_SHIFT_AUC`) asks whether there is a shift to adapt
to at all; without one the run searches and chooses as a search without a target (`without_shift`).
`guard` is the rule an adapting run's choice obeys: an unsupervised validator can prefer a model
that has collapsed onto a few confident classes, so a trial is chosen only if its source validation
score stays within ``margin`` of the best one's. `adapted_choice` feeds
the trials it lets through to the search's one choice step (`automl_tl.search.selection`).

Torch-free: the leaderboard applies the same rule to a study it only reads.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from automl_tl.config import RunConfig
from automl_tl.contract import Example, LabelledData
from automl_tl.errors import DataError
from automl_tl.search.selection import Choice, choose
from automl_tl.vocabulary.adaptations import SOURCE_ONLY, TARGET_PREFIX

UNLABELLED = ""
"""The label a target example carries once its own is dropped: no class has it, so nothing can train on it."""
NO_SHIFT_AUC = 0.6
"""Below this AUC a domain classifier on the frozen features cannot tell the target from the source
(`automl_tl.search.validators.domain_shift`; 0.5 is chance, and its noise on a few hundred examples
of each domain is a few hundredths). The adaptation methods then have no difference to act on, and
an unsupervised validator can only reward confidence on examples like those the models trained on
(a target that is a copy of the source: docs/adaptation.md), so the search then runs as without a
target: no method is sampled, and trials are chosen on source validation. The demo pairs' shifts
lie far above it (docs/adaptation.md)."""
RULED_NAMED = 5
"""The choice's reason names this many of the trials the guard ruled out, and counts the rest."""
SHIFT = "domain_shift"
"""The study's (and the run metadata's) record of the shift check: ``{"auc", "source", "target"}``
(``auc`` None: too few examples to decide)."""


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
    """A completed trial as the source guard sees it."""

    trial: int
    value: float
    """The search's objective: the validator's value, or target validation accuracy."""
    adaptation: str
    source: float | None
    """Its source validation score (the run's objective metric)."""

    @classmethod
    def of(cls, trial: FrozenTrial, source_metric: str) -> Candidate:
        return cls(trial.number, float(trial.value or 0.0), trial.user_attrs.get("params", {}).get("adaptation", SOURCE_ONLY),
                   trial.user_attrs.get("scores", {}).get(source_metric))


def guard(candidates: Sequence[Candidate], margin: float | None) -> tuple[list[Candidate], float | None]:
    """The candidates a choice may take: those whose source validation score is at most ``margin``
    below the best any candidate has; and that floor.

    Source validation bounds one part of a model's target error and says nothing of the shift; a
    validator reads the target and rewards the confidence that methods such as `entropy` train for.
    So the validator decides only among the trials source validation cannot tell from the best: on
    the text pair, where `im` alone preferred entropy-trained LP-FTs that had lost 3 points of source
    validation and were worse on the target than source only (docs/adaptation.md).
    ``margin`` None (no target, or labelled target validation, which measures the target itself)
    lets every candidate through.
    """
    floor = source_floor(candidates, margin)
    return [c for c in candidates if floor is None or (c.source or 0.0) >= floor], floor


def source_reference(candidates: Sequence[Candidate]) -> Candidate | None:
    """The best source-only candidate by the search's value: what adaptation is measured against
    (the report's "before"); None when no source-only trial completed."""
    baselines = [c for c in candidates if c.adaptation == SOURCE_ONLY]
    return max(baselines, key=lambda c: c.value) if baselines else None


def source_floor(candidates: Sequence[Candidate], margin: float | None) -> float | None:
    """The lowest source validation score a trial may have and still be chosen (None: no guard)."""
    scores = [c.source for c in candidates if c.source is not None]
    return None if margin is None or not scores else max(scores) - margin


def eligible(completed: Sequence[FrozenTrial], config: RunConfig) -> list[FrozenTrial]:
    """The completed trials the run's source guard lets through (all of them without a guard)."""
    kept, _ = guard([Candidate.of(t, config.search.objective) for t in completed], selection(config)[1])
    numbers = {c.trial for c in kept}
    return [t for t in completed if t.number in numbers]


def adapted_choice(completed: Sequence[FrozenTrial], config: RunConfig) -> Choice | None:
    """The choice of a run that ranks trials on the target (`selection` is not the source objective).

    `automl_tl.search.selection.choose` among the trials the guard lets through, ranked by the
    selection metric's value: a validator scores the target as a whole, not example by example,
    and source validation measures the wrong domain, so there is no paired comparison to make.
    The reason says which metric ranked and what the guard ruled out; cross-validation on source
    folds is not made (`automl_tl.search.final`), as it would measure the source again.
    """
    metric, margin = selection(config)
    kept = eligible(completed, config)
    choice = choose(kept, np.empty(0, dtype=np.int64), 0, metric, predictions={})
    if choice is None:
        return None
    if config.data.target_labelled is not None:
        why = f"the best {metric} on the {config.data.target_labelled} labelled target examples per class"
    else:
        why = f"the best value of the {metric} validator on the unlabelled target (no target label is read)"
    candidates = [Candidate.of(t, config.search.objective) for t in completed]
    floor = source_floor(candidates, margin)
    if floor is not None and margin is not None:
        why += (f"; trials count only with source validation {config.search.objective} within {margin} "
                f"of the best ({floor + margin:.4f})")
        allowed = {t.number for t in kept}
        ruled = [c for c in candidates if c.trial not in allowed]
        if ruled:
            named = ", ".join(f"trial {c.trial} ({c.adaptation}, source {c.source or 0.0:.4f})" for c in ruled[:RULED_NAMED])
            why += f", which ruled out {named}" + (f" and {len(ruled) - RULED_NAMED} more" if len(ruled) > RULED_NAMED else "")
    return replace(choice, reason=f"trial {choice.trial.number}: {why}")


def selection(config: RunConfig) -> tuple[str, float | None]:
    """The metric a search chooses trials (and their best epochs) by, and `guard`'s margin (None: no guard).

    Without a target, the objective on source validation; with labelled target examples, the
    objective on them; else the chosen validator, guarded by the source validation score.
    """
    data, search = config.data, config.search
    if data.target_path is None or search.validator == "source":
        return search.objective, None
    if data.target_labelled is not None:
        return TARGET_PREFIX + search.objective, None
    return search.validator, search.source_margin


def shift_found(shift: Mapping[str, Any] | None) -> bool:
    """Whether the shift check (``shift``, its record) leaves something to adapt to; True without a
    check (labelled target examples, a validator that is ``source``, or a run made before it)."""
    return shift is None or shift["auc"] is None or shift["auc"] >= NO_SHIFT_AUC


def without_shift(config: RunConfig, shift: Mapping[str, Any] | None) -> RunConfig:
    """``config`` as the search applies it after the shift check: where the check found no shift,
    trials are chosen on source validation (validator ``source``)."""
    if shift_found(shift):
        return config
    return config.model_copy(update={"search": config.search.model_copy(update={"validator": "source"})})


def describe_shift(shift: Mapping[str, Any]) -> str:
    """The shift check's outcome in words, for the output, the leaderboard and the report."""
    if shift["auc"] is None:
        return f"too few examples to check for a shift ({shift['source']} source, {shift['target']} target): adapting as asked"
    if shift_found(shift):
        return f"a domain classifier on the frozen features tells target from source (AUC {shift['auc']:.2f})"
    return (f"a domain classifier on the frozen features cannot tell target from source (AUC {shift['auc']:.2f}, below "
            f"{NO_SHIFT_AUC}): no shift to adapt to, so the search runs and chooses as without a target (source only, on source validation)")
