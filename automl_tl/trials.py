"""What a trial's end means for the budget: one definition for the engine, resumes and leaderboards.

A trial that ran to its own end (completed, pruned, or failed by its own error such as a NaN
loss) spends the budget. A trial that was *interrupted* spends nothing: its process was killed,
the user pressed Ctrl-C, its worker stopped beating, or it never started because other workers
had already taken the last of the budget. Such a trial stays in the study as failed, with a
reason that starts with ``interrupted`` (or with no reason at all when Optuna's heartbeat check
failed it: the storage refuses attributes on a finished trial), and is queued once more with the
same parameters. So a crash never costs a trial of the budget and never counts one twice.

Finding such trials is here too (`reap`): a worker on any machine that stopped beating, a process
on this machine that is gone, a trial that never named its worker.

No torch here: the leaderboard (and so ``automl-tl leaderboard``) reads this too.
"""

from __future__ import annotations

import copy
import os
import socket
from datetime import datetime, timedelta

import optuna
from optuna.trial import FrozenTrial, TrialState

from automl_tl.config import GRACE_BEATS
from automl_tl.rundir import RunDir
from automl_tl.storage import silent_trial_ids

INTERRUPTED = "interrupted"
"""Start of the ``fail_reason`` of every trial that did not end by itself."""
STALE_REASON = f"{INTERRUPTED} (its worker stopped responding)"
"""Shown for trials failed by the heartbeat check, which carry no reason of their own."""
RETRY_OF = "retry_of"
"""User attribute of a re-queued trial: the number of the interrupted trial it repeats."""
STARTING_POINT = "starting_point"
"""User attribute of a trial queued from a plugin's starting points (the plugin's name); never pruned."""
KEPT_ON_RETRY = ("baseline", STARTING_POINT)
"""User attributes a trial was queued with (not ones its run wrote), carried over to its retry."""
STOPPED = "stopped"
"""User attribute of a completed trial that the time budget cut short: why, in words (the leaderboard shows it)."""
PRUNED_AFTER = "pruned_after"
"""User attribute of a pruned trial: after how much training, in words ("epoch 3", "0.25 of epoch 1")."""


def seconds(trial: FrozenTrial) -> float | None:
    """How long a finished trial ran, start to end; None before it ends."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def is_interrupted(trial: FrozenTrial) -> bool:
    """A failed trial that did not fail by itself: it spends no budget."""
    if trial.state != TrialState.FAIL:
        return False
    reason = trial.user_attrs.get("fail_reason")
    return reason is None or str(reason).startswith(INTERRUPTED)


def spends_budget(trial: FrozenTrial) -> bool:
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and not is_interrupted(trial)
    )


def fail_reason(trial: FrozenTrial) -> str | None:
    """Why a failed trial failed, in one line (None for trials that did not fail)."""
    if trial.state != TrialState.FAIL:
        return None
    return str(trial.user_attrs.get("fail_reason") or STALE_REASON)


def drew_configuration(trial: FrozenTrial) -> bool:
    """Whether the trial drew its whole configuration (the engine records it once all is sampled).

    Optuna stores each parameter as it is drawn, so a trial killed while sampling holds only the
    first few: queued again, the missing ones would be drawn anew and the retry would not repeat it.
    """
    return "params" in trial.user_attrs


def retry_due(trial: FrozenTrial, trials: list[FrozenTrial]) -> bool:
    """Whether an interrupted trial still has to be queued again.

    Once only: a retry that is interrupted in turn is not retried again, so a configuration that
    kills its worker (say, by running out of memory) cannot stall the search. A trial interrupted
    before it drew its whole configuration has nothing to repeat.
    """
    return (
        is_interrupted(trial)
        and RETRY_OF not in trial.user_attrs
        and drew_configuration(trial)
        and not any(t.user_attrs.get(RETRY_OF) == trial.number for t in trials)
    )


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue an interrupted trial once more with its parameters, unless that is done or not due.

    Safe to repeat: a worker killed between failing a trial and queueing it again leaves the
    queueing to the next worker that looks, a grace period later (`retry_due` says whether it is
    still to do).
    """
    if not retry_due(trial, study.get_trials(deepcopy=False)):
        return
    kept = {key: trial.user_attrs[key] for key in KEPT_ON_RETRY if key in trial.user_attrs}
    study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number, **kept})


def record_interrupted(study: optuna.Study, run: RunDir, trial: FrozenTrial) -> None:
    """Record an interrupted trial as failed (over any record it wrote before its end was stored) and queue it again."""
    run.write_record(trial.number, "fail", trial.user_attrs.get("params", {}), None, fail_reason(trial), trial.user_attrs)
    requeue(study, trial)


def reap(study: optuna.Study, run: RunDir, heartbeat: int) -> None:
    """Fail the running trials whose worker is gone, and record and re-queue each.

    Optuna's heartbeat check finds a worker on any machine once it has been silent for the
    grace period (the storage's callback is `record_interrupted`); `abandoned` finds the trials
    that need no such wait, or that the heartbeat check would never see.
    """
    optuna.storages.fail_stale_trials(study)
    grace = timedelta(seconds=GRACE_BEATS * heartbeat)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = abandoned(trial, grace)
        if reason is None:
            continue
        # the record first: a kill before the storage says FAIL repeats all of this next time
        run.write_record(trial.number, "fail", trial.user_attrs.get("params", {}), None, reason, trial.user_attrs)
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first, and queues its retry
        requeue(study, study._storage.get_trial(trial._trial_id))
    # The worker that fails a trial queues its retry at once. One still missing a grace period
    # later means that worker was killed in between: queue it now. (Sooner would race with it.)
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if retry_due(trial, trials) and trial.datetime_complete and datetime.now() - trial.datetime_complete > grace:
            requeue(study, trial)


def abandoned(trial: FrozenTrial, grace: timedelta) -> str | None:
    """Why a running trial is known to be abandoned without asking its heartbeat, or None.

    A trial of a process on this machine that is no longer alive; a trial that never said which
    worker runs it (killed as it was created, before its first heartbeat) once ``grace`` has passed.
    """
    worker = trial.user_attrs.get("worker", "")
    worker_host, _, pid = worker.rpartition(":")
    if worker_host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return f"{INTERRUPTED} (its process ended)"
    if not worker and trial.datetime_start is not None and datetime.now() - trial.datetime_start > grace:
        return f"{INTERRUPTED} (its worker stopped before it began)"
    return None


def as_read(study: optuna.Study, heartbeat: int) -> list[FrozenTrial]:
    """The study's trials as a reader shows them: a running trial whose worker is gone reads as interrupted.

    Only a search fails such a trial in the storage (the next one to start), so a leaderboard or
    report of a search nobody resumes would show it running forever. Readers write nothing (they
    may not own the run): the trial is shown as the next search will record it. Gone means silent
    for the heartbeat grace, or, on this machine, a process that has ended.
    """
    grace = GRACE_BEATS * heartbeat
    every = study.get_trials(deepcopy=False)
    silent = silent_trial_ids(study, grace) if any(t.state == TrialState.RUNNING for t in every) else set()
    shown = []
    for trial in every:
        reason = None
        if trial.state == TrialState.RUNNING:
            reason = abandoned(trial, timedelta(seconds=grace)) or (STALE_REASON if trial._trial_id in silent else None)
        if reason is not None:
            trial = copy.copy(trial)
            trial.state = TrialState.FAIL
            trial.user_attrs = {**trial.user_attrs, "fail_reason": reason}
        shown.append(trial)
    return shown


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
