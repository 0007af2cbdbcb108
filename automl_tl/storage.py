"""Opening a study's storage so that any number of workers can share it safely, and naming it safely.

A storage URL may carry a database password (``postgresql+psycopg2://user:secret@host/db``). It is
never shown or stored as given: `redact` turns it into ``user:***@`` in every message, in the
run's ``config.json``, in the recorded command line and so in reports. The URL can come from
`STORAGE_ENV` instead of the command line; readers of a run whose stored URL was redacted take the
password from there too (`reader_url`).

Torch-free, so a worker, a test or the leaderboard opens a study without loading a model.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Sequence

import optuna
import sqlalchemy.event
import sqlalchemy.exc
from optuna.trial import FrozenTrial

from automl_tl.config import GRACE_BEATS
from automl_tl.errors import UserError

STORAGE_ATTEMPTS = 4
"""Tries at opening the study storage when the database answers with an error (about 3.5 s in all)."""
STORAGE_ENV = "AUTOML_TL_STORAGE"
"""Environment variable with the storage URL: a password in it stays off command lines and shell histories."""
HIDDEN = "***"
_PASSWORD = re.compile(r"(?P<user>[\w+.-]+://[^:/@\s]*):(?P<password>\S*)@")
"""``scheme://user:password@`` anywhere in a text (greedy up to the URL's last ``@``, as SQLAlchemy reads it)."""


def redact(text: str) -> str:
    """``text`` with the password of every URL in it shown as ``***``: what may be printed or stored.

    A pattern rather than SQLAlchemy's URL parser: it also finds URLs inside messages and
    ``--storage=URL`` arguments, and URLs the parser rejects (whose error message quotes them).
    """
    return _PASSWORD.sub(lambda m: f"{m['user']}:{HIDDEN}@", text)


def redact_all(args: Sequence[str]) -> list[str]:
    """A command line with its passwords hidden (see `redact`)."""
    return [redact(arg) for arg in args]


def reader_url(stored: str | None) -> str | None:
    """The storage URL a run's ``config.json`` names, for reading it, with its password put back.

    The stored URL has its password hidden, so a password-protected database is opened with the
    full URL from `STORAGE_ENV` (when it is that URL, redacted); otherwise `--storage` must name it.
    """
    match = _PASSWORD.search(stored or "")
    if stored is None or match is None or match["password"] != HIDDEN:
        return stored
    given = os.environ.get(STORAGE_ENV)
    if given and redact(given) == stored:
        return given
    raise UserError(f"the run's study lives in {stored}, whose password is not stored",
                    hint=f"set {STORAGE_ENV} to the full URL, or pass it with --storage")


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
            raise UserError(f"cannot open study storage {redact(url)}: the database driver {missing!r} is not installed",
                            hint="for PostgreSQL: pip install 'automl-tl[postgres]' and write postgresql+psycopg2://...") from None
        except Exception as exc:  # a bad URL, an unreachable server, a damaged or too new database
            if isinstance(exc, sqlalchemy.exc.DBAPIError) and attempt < STORAGE_ATTEMPTS:
                time.sleep(0.25 * 2**attempt)
                continue
            raise UserError(f"cannot open study storage {redact(url)}: {_first_line(exc)}", hint="check --storage") from None


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


def has_study(storage: optuna.storages.BaseStorage, name: str) -> bool:
    """Whether ``storage`` holds the study ``name`` (a run whose records name it must find it there)."""
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def silent_trial_ids(study: optuna.Study, grace: int) -> set[int]:
    """Storage ids of the study's running trials whose last heartbeat is older than ``grace`` seconds.

    Read only (Optuna's own check fails them as it finds them): for readers, such as leaderboards,
    that must show what happened without changing the study. Asks the storage as Optuna's check
    does, by the database's clock, through a view set to ``grace`` so the study's storage is untouched.
    The view shares the storage's engine: `copy.copy` would connect again and re-run Optuna's schema
    check (its ``__setstate__``), the bulk of a small run's read.
    """
    backend = getattr(study._storage, "_backend", study._storage)  # load_study wraps it in a cache
    if not isinstance(backend, optuna.storages.RDBStorage):
        return set()
    view = object.__new__(type(backend))
    view.__dict__.update(backend.__dict__, heartbeat_interval=grace, grace_period=grace)
    return set(view._get_stale_trial_ids(study._study_id))


_newest_schema: str | None = None
"""The schema revision this Optuna writes, found at the first `load_study`: finding it loads all of alembic's migration scripts."""


def load_study(url: str, name: str) -> optuna.Study:
    """An existing study, for reading (leaderboards, reports); a `UserError` when it cannot be had.

    Optuna's own schema check finds its newest schema again at every open, which was most of the
    time a reader takes for a small run (the app reads every run in the folder); here it is found
    once, and each database's own revision compared with it.
    """
    global _newest_schema
    try:
        storage = optuna.storages.RDBStorage(url, skip_compatibility_check=True)
        if _newest_schema is None:
            _newest_schema = storage.get_head_version()
        schema = storage.get_current_version()
        if schema == _newest_schema:
            return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise UserError(f"study {name!r} is not in {redact(url)}") from None
    except Exception as exc:  # a bad URL, an unreachable server, a damaged database
        raise UserError(f"cannot open study storage {redact(url)}: {_first_line(exc)}") from None
    raise UserError(f"the study storage {redact(url)} has a database schema Optuna {optuna.__version__} does not read "
                    f"({schema}; it reads {_newest_schema})",
                    hint=f"an older database: optuna storage upgrade --storage {redact(url)}; a newer one: a newer Optuna")


def _first_line(exc: BaseException) -> str:
    """The first line of an error, with any password in it hidden (SQLAlchemy quotes a URL it cannot parse)."""
    lines = str(exc).strip().splitlines()
    return redact(lines[0]) if lines else type(exc).__name__


def delete_if_unstarted(study: optuna.Study) -> None:
    """Delete a study no trial of which ever started: what a fresh run's failed start leaves.

    Only trials that start queued may be in it then; once another worker has started one, the
    study is kept.
    """
    if all(t.state == optuna.trial.TrialState.WAITING for t in study.get_trials(deepcopy=False)):
        optuna.delete_study(study_name=study.study_name, storage=study._storage)
