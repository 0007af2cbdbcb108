"""Which epoch of a trial counts: the best by a smoothed validation curve, with that epoch's weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor


@dataclass
class TrialOutcome:
    scores: dict[str, float]
    """Validation metrics of the best epoch (best by the smoothed curve, see `smoothed`)."""
    best_epoch: int
    trainable_params: int
    history: list[dict[str, float]] = field(default_factory=list)
    state: dict[str, Tensor] = field(default_factory=dict)
    """The tail's weights at the best epoch."""
    predictions: np.ndarray | None = None
    """Validation predictions (class indices) of the best epoch: selection compares trials on them."""


def smoothed(curve: list[float], index: int) -> float:
    """Epoch ``index``'s validation score averaged with its neighbours' (one each side, where they exist).

    The best epoch is chosen on this, not on the raw curve: on a few hundred validation examples
    one epoch's score jumps by a standard error or two, and the best epoch decides both the
    trial's checkpoint and how long the refit trains; a one-epoch spike would otherwise cut the
    refit short (the CIFAR case in docs/performance.md, "Figures behind the code's choices").
    """
    window = curve[max(0, index - 1) : index + 2]
    return sum(window) / len(window)


def best_epoch(curve: list[float]) -> int:
    """Index of the epoch with the best `smoothed` score, the earliest on a tie.

    Every trial's recorded score is its raw score at this epoch: a pruned trial's partial curve
    is judged like a completed one's, so the leaderboard compares like with like.
    """
    return max(range(len(curve)), key=lambda i: (smoothed(curve, i), -i))


class BestEpoch:
    """The epoch `best_epoch` picks, and its weights, kept while the trial trains.

    An epoch is judged once the next epoch's score is in (its right neighbour in the smoothing
    window), so at most two copies of the weights are held: the best so far and the last epoch's.
    """

    def __init__(self, objective: str) -> None:
        self.objective = objective
        self.metrics: list[dict[str, float]] = []
        self.predictions: list[np.ndarray] = []
        self.waiting: dict[str, Tensor] | None = None
        self.best: TrialOutcome | None = None
        self.best_score = -math.inf

    def add(self, metrics: dict[str, float], state: dict[str, Tensor], predictions: np.ndarray) -> None:
        self.metrics.append(metrics)
        self.predictions.append(predictions)
        if self.waiting is not None:
            self._judge(len(self.metrics) - 2, self.waiting)
        self.waiting = state

    def outcome(self) -> TrialOutcome:
        if self.waiting is not None:
            self._judge(len(self.metrics) - 1, self.waiting)
            self.waiting = None
        assert self.best is not None, "no epoch was scored"
        return self.best

    def _judge(self, index: int, state: dict[str, Tensor]) -> None:
        score = smoothed([m[self.objective] for m in self.metrics], index)
        if score > self.best_score:
            self.best_score = score
            self.best = TrialOutcome(self.metrics[index], index + 1, 0, state=state, predictions=self.predictions[index])
