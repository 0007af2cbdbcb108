"""Selection that generalises: the simplest model within validation noise of the best, and intervals."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl_tl.search.metrics import interval, paired_difference
from automl_tl.search.selection import PREDICTIONS, choose

RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 4, 400)


def predictions(accuracy: float, seed: int) -> np.ndarray:
    """Predictions right on about ``accuracy`` of `LABELS`, wrong elsewhere."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(LABELS)) > accuracy
    return np.where(wrong, (LABELS + 1) % 4, LABELS)


def trial(number: int, predicted: np.ndarray, params: int, baseline: bool = False) -> optuna.trial.FrozenTrial:
    value = float(np.mean(predicted == LABELS))
    attrs = {PREDICTIONS: predicted.tolist(), "trainable_params": params,
             "params": {"strategy": "feature_extraction" if baseline else "full"}}
    if baseline:
        attrs["baseline"] = "linear probe"
    made = create_trial(state=TrialState.COMPLETE, value=value, params={"x": 0.5},
                        distributions={"x": FloatDistribution(0, 1)}, user_attrs=attrs)
    made.number = number
    return made


def test_a_fine_tune_within_noise_of_the_probe_loses_to_the_probe():
    probe = trial(0, predictions(0.90, 1), params=3_000, baseline=True)
    fine_tune = predictions(0.90, 1).copy()
    fine_tune[np.flatnonzero(fine_tune != LABELS)[:3]] = LABELS[np.flatnonzero(fine_tune != LABELS)[:3]]  # 3 more right
    tuned = trial(1, fine_tune, params=5_000_000)
    choice = choose([probe, tuned], LABELS, 4, "accuracy")
    assert choice is not None and choice.best is tuned and choice.trial is probe
    assert "linear probe" in choice.reason and "within noise" in choice.reason


def test_a_fine_tune_clearly_above_the_probe_is_chosen():
    probe = trial(0, predictions(0.70, 1), params=3_000, baseline=True)
    tuned = trial(1, predictions(0.95, 2), params=5_000_000)
    choice = choose([probe, tuned], LABELS, 4, "accuracy")
    assert choice is not None and choice.trial is tuned and choice.best is tuned
    assert choice.reason.startswith("trial 1: the best validation accuracy")


def test_trials_recorded_without_predictions_fall_back_to_the_best_score():
    old = [trial(0, predictions(0.8, 1), 10), trial(1, predictions(0.9, 2), 20)]
    for t in old:
        del t.user_attrs[PREDICTIONS]
    choice = choose(old, LABELS, 4, "accuracy")
    assert choice is not None and choice.trial.number == 1
    assert choose([], LABELS, 4, "accuracy") is None


def test_intervals_cover_the_score_and_narrow_with_more_examples():
    truth = RNG.integers(0, 3, 2000)
    predicted = np.where(RNG.random(2000) < 0.85, truth, (truth + 1) % 3)
    small = interval(truth[:100], predicted[:100], 3, "accuracy")
    large = interval(truth, predicted, 3, "macro_f1")
    assert small["low"] <= np.mean(truth[:100] == predicted[:100]) <= small["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]
    assert small["unit"] == "examples" and small["level"] == 0.95


def test_groups_are_resampled_whole_once_there_are_enough_of_them():
    truth = RNG.integers(0, 2, 200)
    predicted = truth.copy()
    two = interval(truth, predicted, 2, "accuracy", groups=["a", "b"] * 100)
    many = interval(truth, predicted, 2, "accuracy", groups=[f"g{i % 10}" for i in range(200)])
    assert two["unit"] == "examples" and many["unit"] == "groups"
    assert many["low"] == many["high"] == 1.0


def test_the_paired_difference_of_a_model_with_itself_is_zero():
    predicted = predictions(0.8, 3)
    assert paired_difference(LABELS, predicted, predicted, 4, "macro_f1") == (0.0, 0.0, 0.0)
    gain, low, high = paired_difference(LABELS, predictions(0.99, 4), predictions(0.6, 5), 4, "accuracy")
    assert 0 < low <= gain <= high
    assert gain == pytest.approx(np.mean(predictions(0.99, 4) == LABELS) - np.mean(predictions(0.6, 5) == LABELS))
