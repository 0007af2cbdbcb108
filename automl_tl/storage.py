"""Opening a study's storage so that any number of workers can share it safely.

Torch-free, so a worker, a test or the leaderboard opens a study without loading a model.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import optuna
import sqlalchemy.event
import sqlalchemy.exc
from optuna.trial import FrozenTrial

from automl_tl.config import GRACE_BEATS
from automl_tl.errors import UserError

STORAGE_ATTEMPTS = 4
"""Tries at opening the study storage when the database answers with an error (about 3.5 s in all)."""


def open_storage(url: str, heartbeat: int, on_stale: Callable[[optuna.Study, FrozenTrial], None]) -> optuna.storages.RDBStorage:
    """The study storage at ``url`` with heartbeats; a `UserError` when it cannot be opened.

    Workers started together on a new database race to create its tables, and all but one fail
    on a duplicate; those try again after a moment, when the tables are there.

    SQLite needs one more thing for several workers: Python's driver starts a transaction only at
    the first write, so two processes can both read that a queued trial is waiting and both run it
    (docs/reliability.md has the measurement). Every transaction here begins
    with ``BEGIN IMMEDIATE`` instead, which takes the database's write lock up front: workers
    then take turns (waiting up to 60 s), as SQLAlchemy's documentation recommends for pysqlite.
    """
    sqlite = url.startswith("sqlite")
    attempt = 0
    while True:
        attempt += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs={"connect_args": {"timeout": 60, "isolation_level": None}} if sqlite else None,
                    heartbeat_interval=heartbeat,
                    grace_period=GRACE_BEATS * heartbeat,
                    heartbeat_stale_trial_callback=on_stale,
                )
            if sqlite:
                sqlalchemy.event.listen(storage.engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
            return storage
        except ImportError as exc:  # Optuna's, raised from the driver's
            missing = getattr(exc.__cause__, "name", None) or exc.name
            raise UserError(f"cannot open study storage {url}: the database driver {missing!r} is not installed",
                            hint="for PostgreSQL: pip install 'automl-tl[postgres]' and write postgresql+psycopg2://...") from None
        except Exception as exc:  # a bad URL, an unreachable server, a damaged or too new database
            if isinstance(exc, sqlalchemy.exc.DBAPIError) and attempt < STORAGE_ATTEMPTS:
                time.sleep(0.25 * 2**attempt)
                continue
            raise UserError(f"cannot open study storage {url}: {_first_line(exc)}", hint="check --storage") from None


def open_study(
    storage: optuna.storages.BaseStorage, name: str, sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner
) -> tuple[optuna.Study, bool]:
    """The study ``name`` (maximising), and whether this call created it.

    Workers started together on a new study must queue its first trials once, not once each:
    "are there no trials yet?" followed by a queue is a race that every worker can win. Creating
    a study is atomic (the database refuses a second study of the same name), so exactly one
    worker learns that it created the study, and only that one queues.
    """
    try:
        return optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner, direction="maximize"), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner), False


def load_study(url: str, name: str) -> optuna.Study:
    """An existing study, for reading (leaderboards, reports); a `UserError` when it cannot be had."""
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError:
        raise UserError(f"study {name!r} is not in {url}") from None
    except Exception as exc:  # a bad URL, an unreachable server, a damaged database
        raise UserError(f"cannot open study storage {url}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def delete_if_unstarted(study: optuna.Study) -> None:
    """Delete a study no trial of which ever started: what a fresh run's failed start leaves.

    Only trials that start queued may be in it then; once another worker has started one, the
    study is kept.
    """
    if all(t.state == optuna.trial.TrialState.WAITING for t in study.get_trials(deepcopy=False)):
        optuna.delete_study(study_name=study.study_name, storage=study._storage)
