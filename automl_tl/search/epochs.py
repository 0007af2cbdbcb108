"""Which epoch of a trial counts: the best by a smoothed validation curve, with that epoch's weights;
how long a refit of the trial's configuration trains; and which epochs of a running trial are the
run's usable model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from optuna.trial import FrozenTrial
from torch import Tensor

from automl_tl.search.metrics import paired_difference


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
    refit_epochs: int | None = None
    """How many epochs a refit on train + validation trains (`BestEpoch.outcome` says why)."""
    last_state: dict[str, Tensor] | None = None
    """The tail's weights after the last epoch, where that is not the best epoch (else `state`): a trial
    that ran its whole schedule is its configuration's model for the validation fold when cross-validating
    (`automl_tl.search.crossval.validation_fold`)."""


def refit_epochs(trial: FrozenTrial, configured: int) -> int:
    """Epochs a refit (or a cross-validation fold) of a completed trial's configuration trains.

    A trial recorded before `TrialOutcome.refit_epochs` existed refits for its best epoch.
    """
    return int(trial.user_attrs.get("refit_epochs") or trial.user_attrs.get("best_epoch", configured))


def smoothed(curve: list[float], index: int) -> float:
    """Epoch ``index``'s validation score averaged with its neighbours' (one each side, where they exist).

    The best epoch is chosen on this, not on the raw curve: on a few hundred validation examples
    one epoch's score jumps by a standard error or two, and the best epoch decides the trial's
    value and checkpoint; a one-epoch spike would otherwise stand for the whole trial (the CIFAR
    case in docs/performance.md, "Figures behind the code's choices").
    """
    window = curve[max(0, index - 1) : index + 2]
    return sum(window) / len(window)


def best_epoch(curve: list[float]) -> int:
    """Index of the epoch with the best `smoothed` score, the earliest on a tie.

    Every trial's recorded score is its raw score at this epoch: a pruned trial's partial curve
    is judged like a completed one's, so the leaderboard compares like with like.
    """
    return max(range(len(curve)), key=lambda i: (smoothed(curve, i), -i))


def earlier_holds(truth: np.ndarray | None, earlier: np.ndarray, later: np.ndarray, n_classes: int, objective: str) -> bool:
    """Whether an earlier epoch's validation predictions beat a later one's beyond noise (the paired bootstrap
    `selection` uses); without labels, or for an objective they do not score, nothing says otherwise: it holds."""
    if truth is None or objective not in ("accuracy", "macro_f1"):
        return True
    return paired_difference(truth, earlier, later, n_classes, objective)[1] > 0


class BestEpoch:
    """The epoch `best_epoch` picks, and its weights, kept while the trial trains.

    An epoch is judged once the next epoch's score is in (its right neighbour in the smoothing
    window), so at most two copies of the weights are held: the best so far and the last epoch's.
    ``truth`` (the validation labels) lets the outcome compare the best epoch with the last on the
    same examples; without it (an objective no label scores) a refit trains for the best epoch.
    """

    def __init__(self, objective: str, truth: np.ndarray | None = None, n_classes: int = 0) -> None:
        self.objective = objective
        self.truth, self.n_classes = truth, n_classes
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
        last = self.waiting
        if last is not None:
            self._judge(len(self.metrics) - 1, last)
            self.waiting = None
        assert self.best is not None, "no epoch was scored"
        self.best.refit_epochs = self._refit_epochs(self.best.best_epoch)
        self.best.last_state = None if self.best.best_epoch == len(self.metrics) else last
        return self.best

    def _refit_epochs(self, best: int) -> int:
        """The whole schedule, unless its last epoch is worse than the best one beyond validation noise.

        The learning rate follows a schedule over all of a trial's epochs, so a refit cut to the
        best epoch trains under a compressed schedule the trial never ran; and on a flat curve
        (one held-out speaker) the best epoch is a coin toss, so refits cut to it tested worse
        (docs/performance.md, "Figures behind the code's choices"). Only an earlier epoch better
        than the last by more than the noise (the paired bootstrap `selection` uses) shortens it.
        """
        last = len(self.metrics)
        if best == last or earlier_holds(self.truth, self.predictions[best - 1], self.predictions[-1], self.n_classes,
                                         self.objective):
            return best
        return last

    def _judge(self, index: int, state: dict[str, Tensor]) -> None:
        score = smoothed([m[self.objective] for m in self.metrics], index)
        if score > self.best_score:
            self.best_score = score
            self.best = TrialOutcome(self.metrics[index], index + 1, 0, state=state, predictions=self.predictions[index])


class UsableEpochs:
    """Which epochs of a running trial become the run's usable model (a checkpoint).

    The first must beat ``floor``, the best completed trial's score when the trial started (a
    search stopped then should hand on the better of the two). After that a later epoch takes
    over unless the trial's best epoch so far beats it beyond validation noise — the rule the
    refit's length follows (`BestEpoch`), for the same reason: one schedule's later epochs have
    trained longer at a lower learning rate, and on a few hundred validation examples an early
    epoch's lead of a few examples is as often noise as merit, so waiting for a raw new high kept
    a mid-schedule epoch for the whole trial (docs/performance.md, CIFAR).
    """

    def __init__(self, floor: float, objective: str, truth: np.ndarray, n_classes: int) -> None:
        self.floor, self.objective, self.truth, self.n_classes = floor, objective, truth, n_classes
        self.best: tuple[float, np.ndarray] | None = None
        """The trial's best epoch so far: its score and validation predictions."""

    def takes(self, score: float, predictions: np.ndarray) -> bool:
        """Whether this epoch (the latest) becomes the usable model; every epoch must be offered, in order."""
        best = self.best
        if best is None or score > best[0]:
            self.best = (score, predictions)
        if score <= self.floor:
            return False
        return best is None or score > best[0] or not earlier_holds(self.truth, best[1], predictions, self.n_classes,
                                                                    self.objective)
