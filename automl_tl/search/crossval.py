"""Cross-validated re-scoring, for when the validation split is too small to choose between configurations.

On a few dozen validation examples one example moves the score by points, so the trials within
noise of the best are many and the choice among them is close to a coin toss. Then the candidates
(the trials the validation split cannot tell apart, the simplest first) are each trained again on
k folds of train + validation — whole groups per fold where the data has enough groups, else
stratified by class — and scored on the examples each fold held out: every labelled example
outside the test split is then a validation example once. Selection runs again on those
out-of-fold predictions. Small validation splits come with small data, so the folds are cheap;
frozen strategies read their folds from the feature store's cache.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from optuna.trial import FrozenTrial

from automl_tl.contract import Example
from automl_tl.search.features import FeatureStore
from automl_tl.search.model import Tail
from automl_tl.search.train import Compute, input_mode, predict, train_trial
from automl_tl.vocabulary import TrialParams

WIDER_THAN = 0.10
"""Cross-validate when the best trial's 95 % validation interval is wider than this (± 5 points):
narrower, the paired comparison on validation already separates configurations a few points apart."""
FOLDS = 5
CANDIDATES = 4
"""Trials re-scored at most: the best and the simplest of those within noise of it."""


def needed(best: FrozenTrial) -> bool:
    """Whether the validation split is too small to trust the choice (see `WIDER_THAN`)."""
    spread = best.user_attrs.get("interval")
    return bool(spread) and spread["high"] - spread["low"] > WIDER_THAN


def candidates(within: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The best (first in ``within``) and the simplest others, `CANDIDATES` in all."""
    best, others = within[0], sorted(within[1:], key=lambda t: (t.user_attrs.get("trainable_params") or 0, t.number))
    return [best, *others[: CANDIDATES - 1]]


def fold_indices(examples: Sequence[Example], folds: int, seed: int) -> list[list[int]]:
    """Each example's index in exactly one fold: whole groups where there are at least ``folds``
    of them, else stratified by class, so every fold sees every class it can."""
    rng = random.Random(seed)
    groups = [e.group for e in examples]
    if None not in groups and len(set(groups)) >= folds:
        names = sorted({str(g) for g in groups})
        rng.shuffle(names)
        fold_of = {name: i % folds for i, name in enumerate(names)}
        keys = [fold_of[str(g)] for g in groups]
    else:
        by_label: dict[str, list[int]] = defaultdict(list)
        for i, example in enumerate(examples):
            by_label[example.label].append(i)
        keys = [0] * len(examples)
        offset = 0
        for label in sorted(by_label):
            members = by_label[label]
            rng.shuffle(members)
            for j, i in enumerate(members):
                keys[i] = (offset + j) % folds
            offset += len(members)
    return [[i for i, k in enumerate(keys) if k == fold] for fold in range(folds) if fold in keys]


def out_of_fold(
    trial: FrozenTrial, store: FeatureStore, n_classes: int, objective: str, seed: int, compute: Compute,
) -> np.ndarray:
    """The trial's configuration trained on all but one fold at a time, predicting the fold left out.

    Each fold trains for the trial's best epoch count and keeps its last epoch: no epoch is chosen
    on the examples it is scored on. ``store`` is train + validation (`FeatureStore.merged`).
    """
    params: TrialParams = TrialParams(**trial.user_attrs["params"])
    params = replace(params, epochs=int(trial.user_attrs.get("best_epoch", params.epochs)))
    examples = store.examples["train"]
    predictions = np.empty(len(examples), dtype=np.int64)
    for number, held in enumerate(fold_indices(examples, FOLDS, seed)):
        held_set = set(held)
        folded = store.folded("train", [i for i in range(len(examples)) if i not in held_set], held)
        outcome = train_trial(params, folded, n_classes, objective, seed=seed * 100_003 + trial.number * 31 + number,
                              on_epoch=lambda entry: None, on_batch=lambda d, t: None, compute=compute)
        tail = Tail(store.backbone, params, n_classes)
        tail.load_state_dict(outcome.state)
        predictions[held] = predict(tail, folded, "heldout", input_mode(params), params, compute)
    return predictions
