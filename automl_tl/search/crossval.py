"""Cross-validated re-scoring, for when the validation split cannot settle the choice between configurations.

On a few dozen validation examples one example moves the score by points, and one held-out
speaker says little about the next: then the choice between the best trial and the simplest one
within noise of it is close to a coin toss. On a larger split the guard can still fall back from a
fine-tune to frozen features because the fine-tune's lead is inside the noise: the two kinds of
transfer are the choice that costs most when it goes the wrong way, so more evidence is worth its
price there. Both are trained again on k folds of train + validation
— whole groups per fold where the data has enough groups (each fold then scores unseen speakers),
else stratified by class — and scored on the examples each fold held out. The validation split is
the first fold as it is: it made the candidates (within noise of the best on it, or its best two),
so its predictions would re-score them with the luck that chose them; selection runs again on the
other folds' out-of-fold predictions alone, every example of the train split a validation example once.
The validation fold's model, which the final model needs, is the chosen trial itself where it ran
its whole schedule and the run kept its weights (`validation_fold`): no candidate trains one, the
fold models being the costliest part of the final step when the candidates are fine-tunes. Frozen
strategies read their folds from the feature store's cache. The chosen configuration's fold models
are kept: averaged, they are the final model (`automl_tl.search.final`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from optuna.trial import FrozenTrial
from torch import Tensor

from automl_tl.contract import Example
from automl_tl.search.compute import Compute
from automl_tl.search.epochs import refit_epochs
from automl_tl.search.features import FeatureStore
from automl_tl.search.model import Tail
from automl_tl.search.selection import Choice, simplicity
from automl_tl.search.train import input_mode, predict, train_trial
from automl_tl.vocabulary import TrialParams, trains_backbone

WIDER_THAN = 0.10
"""Cross-validate when the best trial's 95 % validation interval is wider than this (± 5 points):
narrower, the paired comparison on validation already separates configurations a few points apart."""
FOLDS = 5
MIN_GROUP_FOLDS = 3
"""Fewest groups that make group folds (leave-one-group-out below `FOLDS` groups)."""
CANDIDATES = 2
"""Trials re-scored: the best and the simplest within noise of it, the two the choice is between; where
validation is a single group and no other is within noise, the runner-up on it (`candidates`)."""
SINGLE_GROUP = "the validation split holds a single group"


def why(best: FrozenTrial, chosen: FrozenTrial, validation: Sequence[Example], labelled: Sequence[Example]) -> str | None:
    """Why the validation split cannot be trusted to choose between ``best`` and ``chosen``, or None when it can.

    Too few examples (the best trial's interval wider than `WIDER_THAN`), or a single group: one
    held-out speaker says little about the next one, while train + validation hold enough groups
    for folds that each hold out a whole group (``labelled`` is train + validation). Or the guard
    chose frozen features over a fine-tune whose lead is within noise: one split's noise would
    then decide between the two kinds of transfer, where the folds score every training example.
    """
    if trains_backbone(best.user_attrs.get("params", {})) and not trains_backbone(chosen.user_attrs.get("params", {})):
        return "the guard would keep frozen features over a fine-tune within noise of them"
    spread = best.user_attrs.get("interval")
    if spread and spread["high"] - spread["low"] > WIDER_THAN:
        return f"the best trial's 95 % validation interval is wider than {WIDER_THAN:.2f}"
    groups = {e.group for e in validation}
    if None not in groups and len(groups) < 2 and len({e.group for e in labelled}) >= MIN_GROUP_FOLDS:
        return SINGLE_GROUP
    return None


def candidates(choice: Choice, doubt: str) -> list[FrozenTrial]:
    """The best and the simplest others within noise of it, `CANDIDATES` in all. Where ``doubt`` is
    `SINGLE_GROUP`, the next best on validation fill in when fewer are within noise: that interval resamples
    one group's examples, not groups, so a lead beyond it may not hold on the next group (speaker)."""
    best, others = choice.within[0], sorted(choice.within[1:], key=simplicity)
    chosen = [best, *others[: CANDIDATES - 1]]
    if doubt == SINGLE_GROUP:
        numbers = {t.number for t in chosen}
        chosen += [t for t in choice.ranked if t.number not in numbers][: CANDIDATES - len(chosen)]
    return chosen


def fold_indices(examples: Sequence[Example], validation: int, folds: int, seed: int) -> list[list[int]]:
    """Each example's index in exactly one fold. ``examples`` are train + validation in that order (as
    `FeatureStore.merged` joins them); the last ``validation`` of them, the validation split, are the
    first fold as they are. The others are divided into the rest: whole groups where the train split
    holds enough of them (one group a fold when they are fewer than the folds left) and none is also
    a validation group, else stratified by class, so every fold sees every class it can."""
    rng = random.Random(seed)
    n = len(examples) - validation
    first = [list(range(n, len(examples)))] if validation else []
    parts = folds - len(first)
    train = examples[:n]
    groups = [e.group for e in examples]
    names = sorted({str(e.group) for e in train})
    apart = not {e.group for e in train} & {e.group for e in examples[n:]}
    if None not in groups and apart and len(names) >= MIN_GROUP_FOLDS - len(first):
        rng.shuffle(names)
        parts = min(parts, len(names))
        fold_of = {name: i % parts for i, name in enumerate(names)}
        keys = [fold_of[str(e.group)] for e in train]
    else:
        by_label: dict[str, list[int]] = defaultdict(list)
        for i, example in enumerate(train):
            by_label[example.label].append(i)
        keys = [0] * n
        offset = 0
        for label in sorted(by_label):
            members = by_label[label]
            rng.shuffle(members)
            for j, i in enumerate(members):
                keys[i] = (offset + j) % parts
            offset += len(members)
    return first + [[i for i, k in enumerate(keys) if k == fold] for fold in range(parts) if fold in keys]


FoldModel = tuple[np.ndarray, dict[str, Tensor]]
"""A fold model's predictions for the fold it left out, and its weights."""


def fold_model(
    trial: FrozenTrial, store: FeatureStore, folds: Sequence[Sequence[int]], number: int, n_classes: int, objective: str,
    seed: int, compute: Compute,
) -> FoldModel:
    """The trial's configuration trained on every fold but ``number``, with its predictions for that one.

    It trains as long as a refit would (`refit_epochs`) and keeps its last epoch: no epoch is chosen
    on the examples it is scored on. ``store`` is train + validation (`FeatureStore.merged`), ``folds``
    its `fold_indices`; the seed depends on the trial and the fold only, so any process makes the same model.
    """
    params: TrialParams = TrialParams(**trial.user_attrs["params"])
    params = replace(params, epochs=refit_epochs(trial, params.epochs))
    held = folds[number]
    held_set = set(held)
    folded = store.folded("train", [i for i in range(len(store.examples["train"])) if i not in held_set], held)
    outcome = train_trial(params, folded, n_classes, objective, seed=seed * 100_003 + trial.number * 31 + number, compute=compute)
    tail = Tail.trained(store.backbone, params, n_classes, outcome.state)
    return predict(tail, folded, "heldout", input_mode(params), params, compute), outcome.state


def validation_fold(trial: FrozenTrial, weights: Path, last: Path) -> dict[str, Tensor] | None:
    """The trial's own weights as its configuration's fold model for the validation fold (`fold_indices`'
    first), or None where the run has none that are: not kept (only the best trial's are), or it
    stopped short of its schedule (the time budget), or a refit trains fewer epochs than it did
    (`refit_epochs`).

    It trained on the train split, exactly that fold's training examples, for the epochs a fold model
    trains, and like a fold model its last epoch is the model (``last``; ``weights``, its best epoch's,
    when that was its last).
    """
    attrs = trial.user_attrs
    epochs = attrs["params"]["epochs"]
    if not len(attrs.get("history", [])) == refit_epochs(trial, epochs) == epochs:
        return None
    path = last if last.is_file() else weights if attrs.get("best_epoch") == epochs and weights.is_file() else None
    return torch.load(path, weights_only=True) if path else None


def out_of_fold(folds: Sequence[Sequence[int]], models: Sequence[FoldModel]) -> np.ndarray:
    """Every example the ``folds`` hold, predicted by the fold model that left it out (``models`` in the order
    of ``folds``), in the order of the examples' indices."""
    held = np.concatenate([np.asarray(fold, dtype=np.int64) for fold in folds])
    predicted = np.concatenate([predictions for predictions, _ in models])
    return predicted[np.argsort(held, kind="stable")]
