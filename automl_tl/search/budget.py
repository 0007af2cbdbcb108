"""A study's budget, shared by every session and every worker that searches it.

Optuna's ``n_trials`` counts the trials one process runs, and ``MaxTrialsCallback`` counts trial
states without telling an interrupted trial from one that failed by itself. Here the budget
belongs to the study: the trials that spend it (`automl_tl.trials.spends_budget`) and their
compute seconds, whoever ran them. Before each trial a worker asks `Budget.room`; a trial that
still slips past the budget in a race between workers is caught by `Budget.taken` and ended
without running.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from automl_tl.trials import is_interrupted, seconds, spends_budget

CLAIMING = (TrialState.RUNNING, TrialState.WAITING)
"""Trials that will spend the budget unless they are interrupted."""


@dataclass(frozen=True)
class Tally:
    spent_trials: int
    spent_seconds: float
    running: int
    waiting: int
    interrupted: int

    @classmethod
    def of(cls, trials: Sequence[FrozenTrial]) -> Tally:
        spending = [t for t in trials if spends_budget(t)]
        return cls(
            spent_trials=len(spending),
            spent_seconds=sum(seconds(t) or 0.0 for t in spending),
            running=sum(1 for t in trials if t.state == TrialState.RUNNING),
            waiting=sum(1 for t in trials if t.state == TrialState.WAITING),
            interrupted=sum(1 for t in trials if is_interrupted(t)),
        )


class Budget:
    """``n_trials`` and ``timeout`` (compute seconds of finished trials) for a whole study.

    Also an Optuna callback: after each trial it stops the worker's loop once there is no room.
    """

    def __init__(
        self,
        n_trials: int | None,
        timeout: float | None,
        reap: Callable[[optuna.Study], None],
        poll: float,
        on_wait: Callable[[int], None] = lambda running: None,
    ) -> None:
        self.n_trials = n_trials
        self.timeout = timeout
        self.reap = reap
        """Fails trials whose worker is gone (and queues their retries); called while waiting."""
        self.poll = poll
        self.on_wait = on_wait

    def tally(self, study: optuna.Study) -> Tally:
        return Tally.of(study.get_trials(deepcopy=False))

    def spent(self, tally: Tally) -> bool:
        return (self.n_trials is not None and tally.spent_trials >= self.n_trials) or (
            self.timeout is not None and tally.spent_seconds >= self.timeout
        )

    def room(self, study: optuna.Study) -> bool:
        """Whether this worker may start another trial; False once the budget is spent.

        When the trials running elsewhere (or queued) would fill what is left, starting one more
        could overshoot the budget, and stopping now would leave it short should one of them be
        killed. So the worker waits, failing abandoned trials as it polls, until they end or a
        killed one's retry is queued for it to run.
        """
        while True:
            tally = self.tally(study)
            if self.spent(tally):
                return False
            if self.n_trials is None or tally.waiting or tally.spent_trials + tally.running < self.n_trials:
                return True
            self.on_wait(tally.running)
            time.sleep(self.poll)
            self.reap(study)

    def taken(self, study: optuna.Study, number: int) -> bool:
        """Whether the trials numbered below ``number`` already claim the whole trial budget.

        Trial numbers are handed out by the storage, so when two workers pass `room` at once for
        the last slot, exactly the later-numbered trial finds itself over the budget.
        """
        if self.n_trials is None:
            return False
        earlier = [t for t in study.get_trials(deepcopy=False) if t.number < number]
        return sum(1 for t in earlier if spends_budget(t) or t.state in CLAIMING) >= self.n_trials

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.room(study):
            study.stop()
