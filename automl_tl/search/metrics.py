"""Classification metrics, computed the same way for selection, the leaderboard and the report.

Every score comes with how far it could move on other examples of the same kind: a percentile
bootstrap over the examples (or over whole groups, where a split holds enough of them), so a
reader can tell a real difference from a clip or two on a small split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BOOTSTRAP_SAMPLES = 1000
"""Resamples per interval: the 2.5 % and 97.5 % percentiles are then each set by 25 resamples."""
MIN_BOOTSTRAP_GROUPS = 5
"""Fewer groups than this (FSDD's two test speakers) are resampled as examples: resampling two
groups has three outcomes, which is not an interval."""


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predictions."""
    flat = np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred), minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 (every class counts the same, so a rare class cannot be ignored)."""
    matrix = confusion(y_true, y_pred, n_classes)
    _, _, f1 = _per_class(matrix)
    present = matrix.sum(axis=1) > 0
    return {
        "accuracy": float(np.trace(matrix) / max(1, matrix.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
    }


def detailed(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Scores plus confusion matrix and per-class precision/recall/F1, for the test evaluation."""
    matrix = confusion(y_true, y_pred, len(classes))
    precision, recall, f1 = _per_class(matrix)
    return {
        **scores(y_true, y_pred, len(classes)),
        "confusion": matrix.tolist(),
        "per_class": {
            c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, matrix.sum(axis=1), strict=True)
        },
    }


def interval(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, metric: str,
    groups: Sequence[str | None] | None = None, level: float = 0.95, seed: int = 0,
) -> dict[str, Any]:
    """A metric's percentile bootstrap interval: ``{"low", "high", "level", "unit"}``.

    Whole groups (speakers, authors) are resampled where the examples carry at least
    `MIN_BOOTSTRAP_GROUPS` of them, since examples of one speaker are not independent; else examples.
    """
    units = _units(groups)
    rng = np.random.default_rng(seed)
    values = np.empty(BOOTSTRAP_SAMPLES)
    for i in range(BOOTSTRAP_SAMPLES):
        index = _resample(units, rng, len(y_true))
        values[i] = score_of(y_true[index], y_pred[index], n_classes, metric)
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return {"low": float(low), "high": float(high), "level": level, "unit": "groups" if units else "examples"}


def paired_difference(
    y_true: np.ndarray, a: np.ndarray, b: np.ndarray, n_classes: int, metric: str, level: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """``metric`` of ``a`` minus that of ``b`` on the same examples, and its percentile bootstrap interval.

    Paired: each resample scores both predictions on the same examples, so what the two models
    get right together does not count as noise.
    """
    rng = np.random.default_rng(seed)
    diffs = np.empty(BOOTSTRAP_SAMPLES)
    for i in range(BOOTSTRAP_SAMPLES):
        index = rng.integers(0, len(y_true), len(y_true))
        diffs[i] = score_of(y_true[index], a[index], n_classes, metric) - score_of(y_true[index], b[index], n_classes, metric)
    low, high = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    observed = score_of(y_true, a, n_classes, metric) - score_of(y_true, b, n_classes, metric)
    return float(observed), float(low), float(high)


def score_of(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, name: str) -> float:
    """One metric (``accuracy`` or ``macro_f1``) of predictions."""
    if name == "accuracy":
        return float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    return scores(y_true, y_pred, n_classes)[name]


def _units(groups: Sequence[str | None] | None) -> list[np.ndarray]:
    """Example indices per group, when there are enough groups to resample; else none."""
    if groups is None or any(g is None for g in groups):
        return []
    by_group: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        by_group.setdefault(str(group), []).append(i)
    return [np.array(v) for v in by_group.values()] if len(by_group) >= MIN_BOOTSTRAP_GROUPS else []


def _resample(units: list[np.ndarray], rng: np.random.Generator, n: int) -> np.ndarray:
    if not units:
        return rng.integers(0, n, n)
    return np.concatenate([units[i] for i in rng.integers(0, len(units), len(units))])


def _per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    actual = matrix.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1
