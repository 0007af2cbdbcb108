"""The function Optuna calls for each trial: sample a configuration, train it, record whatever happens.

Every outcome is recorded, in the trial's record file and the study: completed (or cut short by the
time budget, with its best epoch so far), pruned, failed by its own error (NaN loss, out of
memory), or interrupted (Ctrl-C, SIGTERM, a full disk). A crashing trial
never ends the search; a user error stops it after marking the trial interrupted, so it is retried.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from automl_tl.config import RunConfig, SearchConfig, rung_steps
from automl_tl.domains import eligible
from automl_tl.errors import Terminated, TrialFailed, UserError
from automl_tl.progress import SearchDisplay
from automl_tl.rundir import RunDir, atomic_write
from automl_tl.search.budget import Budget
from automl_tl.search.compute import Compute
from automl_tl.search.epochs import UsableEpochs, best_epoch
from automl_tl.search.features import FeatureStore
from automl_tl.search.metrics import detailed, interval
from automl_tl.search.model import Tail
from automl_tl.search.selection import PREDICTIONS
from automl_tl.search.space import SearchSpace
from automl_tl.search.train import StopTraining, input_mode, predict, train_trial
from automl_tl.trials import INTERRUPTED, PRUNED_AFTER, STARTING_POINT, STOPPED, spends_budget
from automl_tl.vocabulary import BackboneShape, TrialParams, describe


@dataclass
class TrialContext:
    """What every trial of one search shares."""

    run: RunDir
    space: SearchSpace
    shapes: Mapping[str, BackboneShape]
    stores: Mapping[str, FeatureStore]
    n_classes: int
    settings: SearchConfig
    compute: Compute
    budget: Budget
    display: SearchDisplay
    worker: str
    """``host:pid``: a trial that names its worker can be found abandoned when that process is gone."""
    selection: str
    """The metric trials are chosen by (`automl_tl.domains.selection`): the objective, or a validator."""
    margin: float | None = None
    """The source guard's margin when adapting without target labels; then every trial's weights are
    saved, as the trial finally chosen need not be the one with the best value."""
    deadline: float | None = None
    """When this session's time budget runs out (``time.monotonic()``): a trial still training then
    stops after its epoch, so ``--timeout`` bounds a long trial too, not only when the next one starts."""


class Objective:
    """Runs one trial per call; ``current`` is the storage id of the trial started last."""

    def __init__(self, context: TrialContext) -> None:
        self.context = context
        self.objective = context.selection
        self.current: int | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        """Run one trial; a stop (Ctrl-C, or a user error such as a full disk) marks it interrupted."""
        self.current = trial._trial_id
        trial.set_user_attr("worker", self.context.worker)  # first: a trial that names no worker is taken to be abandoned
        if self.context.budget.taken(trial.study, trial.number):
            reason = f"{INTERRUPTED} (not started: other workers took the last of the budget)"
            trial.set_user_attr("fail_reason", reason)
            self.context.run.write_record(trial.number, "fail", {}, None, reason, trial.user_attrs)
            trial.study.stop()
            return float("nan")
        try:
            return self._run(trial)
        except (KeyboardInterrupt, UserError) as exc:
            why = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else exc.message
            trial.set_user_attr("fail_reason", f"{INTERRUPTED} ({why})")
            raise

    def _run(self, trial: optuna.Trial) -> float:
        ctx = self.context
        params = ctx.space.sample(trial, ctx.shapes)
        trial.set_user_attr("params", params.to_dict())
        ctx.display.trial_started(trial.number, describe(params.to_dict()))
        curve: list[dict[str, float]] = []
        # A plugin's starting point runs whole: a fine-tune measured to win can still trail a
        # linear probe after its first epoch (head-only training converges sooner), which is
        # exactly where the pruner would stop it.
        prunable = STARTING_POINT not in trial.user_attrs

        steps = rung_steps(ctx.settings.first_rung)
        looked: list[dict[str, float]] = []
        usable = self._usable_epochs(trial, params)

        def on_epoch(entry: dict[str, float], state: dict[str, torch.Tensor], predictions: np.ndarray) -> None:
            if entry["epoch"] < 1:  # the first rung, part-way through epoch 1: the pruner's, not an epoch of the curve
                looked.append(entry)
                trial.report(entry[self.objective], 1)
                if prunable and trial.should_prune():
                    trial.set_user_attr(PRUNED_AFTER, f"{entry['epoch']:g} of epoch 1")
                    raise optuna.TrialPruned()
                return
            curve.append(entry)
            epoch = int(entry["epoch"])
            trial.report(entry[self.objective], epoch * steps)
            ctx.display.epoch(epoch, params.epochs)
            # after the last epoch there is nothing left to save: the trial is complete, not pruned
            if prunable and epoch < params.epochs and trial.should_prune():
                trial.set_user_attr(PRUNED_AFTER, f"epoch {epoch}")
                raise optuna.TrialPruned()
            # out of time: the trial completes with its best epoch so far, and says why it is short
            if epoch < params.epochs and ctx.deadline is not None and time.monotonic() >= ctx.deadline:
                trial.set_user_attr(STOPPED, f"stopped by the time budget after epoch {epoch} of {params.epochs}")
                raise StopTraining()
            if epoch < params.epochs and usable.takes(entry[self.objective], predictions):  # the last epoch's outcome is the trial's own
                about = {"trial": trial.number, "epoch": epoch, "epochs": params.epochs, "score": entry[self.objective],
                         "objective": self.objective, "params": params.to_dict()}
                ctx.run.write_checkpoint(trial.number, lambda f: torch.save(state, f), about)
                ctx.display.checkpoint(trial.number, epoch)

        try:
            outcome = train_trial(
                params, ctx.stores[params.backbone], ctx.n_classes, self.objective,
                seed=ctx.settings.seed * 100_003 + trial.number,
                on_epoch=on_epoch, on_batch=ctx.display.batch, compute=ctx.compute, first_rung=ctx.settings.first_rung,
            )
        except optuna.TrialPruned:
            trial.set_user_attr("history", curve)
            scored = curve or looked  # pruned at the first rung: its one score is that look's
            self._finish(trial, params, "pruned", scored[best_epoch([c[self.objective] for c in scored])][self.objective])
            raise
        except UserError:
            raise
        except Exception as exc:  # a crashing trial must not end the search
            reason = failure_reason(exc)
            trial.set_user_attr("fail_reason", reason)
            trial.set_user_attr("history", curve)
            self._finish(trial, params, "fail", None, reason)
            return float("nan")  # Optuna records NaN as a failed trial
        value = outcome.scores[self.objective]
        store = ctx.stores[params.backbone]
        assert outcome.predictions is not None
        for key, attr in (("scores", outcome.scores), ("history", outcome.history),
                          ("trainable_params", outcome.trainable_params), ("best_epoch", outcome.best_epoch),
                          ("refit_epochs", outcome.refit_epochs),
                          (PREDICTIONS, outcome.predictions.tolist())):
            trial.set_user_attr(key, attr)
        if self.objective == ctx.settings.objective:  # a validator scores the whole target: no per-example interval
            trial.set_user_attr("interval", interval(store.labels("validation").numpy(), outcome.predictions, ctx.n_classes,
                                                     self.objective, [e.group for e in store.examples["validation"]]))
        if "target_test" in store.examples:
            trial.set_user_attr("target_test", target_test(params, ctx, outcome.state))
        earlier_best = best_completed(trial.study.get_trials(deepcopy=False))
        if earlier_best is None or value > earlier_best[0] or ctx.margin is not None:  # a tie: the earlier stays the best
            atomic_write(ctx.run.weights_path(trial.number), lambda f: torch.save(outcome.state, f), mode="wb")
            if outcome.last_state is not None and ctx.margin is None:  # ranked on a target: never cross-validated
                atomic_write(ctx.run.last_weights_path(trial.number), lambda f: torch.save(outcome.last_state, f), mode="wb")
        self._finish(trial, params, "complete", value, trial.user_attrs.get(STOPPED))
        return value

    def _usable_epochs(self, trial: optuna.Trial, params: TrialParams) -> UsableEpochs:
        """Which epochs of this trial become the usable model (a checkpoint): from one that beats the best
        completed trial's score when the trial starts.

        A user may stop the search during a trial that takes minutes, so its epochs are kept once they
        beat every completed trial. Not for trials whose epochs take milliseconds (nothing in the
        backbone trains), nor when adapting, where the source guard, not the value, decides.
        """
        ctx = self.context
        earlier = best_completed(trial.study.get_trials(deepcopy=False))
        never = ctx.margin is not None or input_mode(params) == "pooled"
        floor = math.inf if never else -math.inf if earlier is None else earlier[0]
        return UsableEpochs(floor, self.objective, ctx.stores[params.backbone].labels("validation").numpy(), ctx.n_classes)

    def _finish(self, trial: optuna.Trial, params: TrialParams, state: str, score: float | None, reason: str | None = None) -> None:
        """Record how the trial ended; its checkpoint goes (a completed trial's weights are its own outcome's)."""
        self.context.run.write_record(trial.number, state, params.to_dict(), score, reason, trial.user_attrs)
        self.context.run.drop_checkpoint(trial.number)
        trials = trial.study.get_trials(deepcopy=False)  # every worker's; the finishing trial is still running in storage
        best = best_completed(trials)
        if state == "complete" and score is not None:
            best = max(best, (score, trial.number), key=earliest_best) if best is not None else (score, trial.number)
        done = 1 + sum(1 for t in trials if spends_budget(t))
        self.context.display.trial_finished(trial.number, describe(params.to_dict()), score, state, best, done)


def best_completed(trials: Sequence[FrozenTrial]) -> tuple[float, int] | None:
    """(objective value, trial number) of the best completed trial among ``trials`` (None before the first);
    of equal values, the earlier trial's: the one whose weights are kept, and the one selection calls the best."""
    return max(((t.value, t.number) for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
               key=earliest_best, default=None)


def earliest_best(best: tuple[float, int]) -> tuple[float, int]:
    """Sort key of (value, trial number): the higher value, then the earlier trial."""
    return best[0], -best[1]


def keep_best_weights(study: optuna.Study, run: RunDir, config: RunConfig) -> None:
    """Keep the weights of the best completed trial and of the trials still running, and the checkpoints
    of trials that ended without an outcome only while they beat it; nothing else.

    When adapting, the best among the trials the source guard lets through (`automl_tl.domains.eligible`):
    an adapted trial the guard rules out is never chosen, however high its validator's value.
    """
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    completed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    kept = eligible(completed, config)
    best = max(kept, key=lambda t: earliest_best((t.value or 0.0, t.number))) if kept else None
    run.prune_weights(running | ({best.number} if best else set()))
    for checkpoint in run.checkpoints():  # an interrupted trial's, once a completed trial beats it
        if best is not None and checkpoint["trial"] not in running and checkpoint["score"] <= (best.value or 0.0):
            run.drop_checkpoint(checkpoint["trial"])


def target_test(params: TrialParams, ctx: TrialContext, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A trial's scores on the labelled target test set, for evaluation only: recorded, never read to
    choose, so docs/adaptation.md can measure how well each validator tracks them. Per class too (no
    confusion matrix): the report compares the source-only trial's classes with the chosen model's,
    whose weights are the only ones a run keeps."""
    store = ctx.stores[params.backbone]
    tail = Tail.trained(store.backbone, params, ctx.n_classes, state)
    predicted = predict(tail, store, "target_test", input_mode(params), params, ctx.compute)
    found = detailed(store.labels("target_test").numpy(), predicted, list(store.class_index))
    return {key: value for key, value in found.items() if key != "confusion"}


def failure_reason(exc: BaseException) -> str:
    """One line for the leaderboard: what went wrong in a trial."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MemoryError) or "out of memory" in text.lower() or "can't allocate memory" in text.lower():
        return f"out of memory ({text[:120]})"
    if isinstance(exc, TrialFailed):
        return text
    return f"{type(exc).__name__}: {text[:160]}"
