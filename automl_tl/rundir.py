"""A run directory: the study's storage, the resolved configuration and per-trial records.

Layout (``runs/<study>/`` by default)::

    config.json             resolved configuration and data summary (format version inside)
    backbones.json          per backbone: the options that rebuild it without the data, its preprocessor
    .lock                   held while a search claims the directory (see `RunDir.claim`)
    study.db                Optuna storage, unless --storage points elsewhere
    trials/<n>/record.json  one trial: parameters, per-epoch scores, state, reason, wall time
    trials/<n>/weights.pt   the tail weights of the best trial so far (others are removed), at its best epoch
    trials/<n>/last.pt      beside them, its last epoch's, where that is not the best (a fold model: crossval)
    trials/<n>/checkpoint.* a trial's best epoch so far, while it beats every completed trial: weights
                            (.pt) and what they are (.json); the usable model until the trial ends,
                            kept if it never ends (Ctrl-C, a kill)
    final/weights.pt        the best configuration refit on train + validation
    test.json               the final model's one evaluation on the test split
    cache/<key>/            frozen-backbone outputs reused across trials and resumed runs

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written file where a reader expects a whole one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from automl_tl.errors import UserError

FORMAT_VERSION = 1
"""Bumped when the layout or the records change incompatibly."""

UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
"""Why a run file cannot be written that the user, not the code, has to fix: a full disk, a read-only folder."""


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_UMASK = _umask()
"""Read once at import: changing the umask is process-wide, so not something to do per write."""


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write through ``write(file)`` into a temporary file beside ``path``, then rename it over ``path``.

    A process killed at any point leaves either the old file or the new one, never half of one
    (at worst a stray hidden ``.tmp`` file). A full disk or a read-only folder is a `UserError`.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600: run files are as readable as any other file
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in UNWRITABLE:
            raise UserError(f"cannot write {path}: {exc.strerror}",
                            hint="free some disk space, or pass --run-dir on a writable disk") from None
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=2, default=str))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class RunDir:
    """Paths and checks for one run directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def default_storage(self) -> str:
        return f"sqlite:///{(self.root / 'study.db').resolve()}"

    def trial_dir(self, number: int) -> Path:
        return self.root / "trials" / f"{number:04d}"

    def weights_path(self, number: int) -> Path:
        return self.trial_dir(number) / "weights.pt"

    def last_weights_path(self, number: int) -> Path:
        """A kept trial's weights after its last epoch, written only where that is not its best epoch."""
        return self.trial_dir(number) / "last.pt"

    def checkpoint_paths(self, number: int) -> tuple[Path, Path]:
        """A trial's checkpoint: its weights and what they are (``checkpoint.pt``, ``checkpoint.json``)."""
        return self.trial_dir(number) / "checkpoint.pt", self.trial_dir(number) / "checkpoint.json"

    def write_checkpoint(self, number: int, write: Callable[[Any], None], about: dict[str, Any]) -> None:
        """Keep a running trial's epoch as the usable model: the weights first, so ``.json`` always names whole ones."""
        weights, described = self.checkpoint_paths(number)
        atomic_write(weights, write, mode="wb")
        write_json(described, about)

    def drop_checkpoint(self, number: int) -> None:
        """Remove a trial's checkpoint, the description first (a reader then never finds one without weights)."""
        for path in reversed(self.checkpoint_paths(number)):
            path.unlink(missing_ok=True)

    def checkpoints(self) -> list[dict[str, Any]]:
        """Every whole checkpoint's description (``trial``, ``epoch``, ``score``, ``params``), each with its ``weights`` path."""
        found = []
        for described in (self.root / "trials").glob("*/checkpoint.json"):
            try:
                about = read_json(described)
            except (OSError, ValueError):
                continue  # removed while read, or not ours
            weights = described.with_suffix(".pt")
            if isinstance(about, dict) and isinstance(about.get("score"), int | float) and weights.exists():
                found.append({**about, "weights": weights})
        return found

    @property
    def final_weights_path(self) -> Path:
        """The refit model's weights (best configuration trained on train + validation)."""
        return self.root / "final" / "weights.pt"

    @property
    def backbones_path(self) -> Path:
        """What rebuilds each searched backbone for prediction (see `automl_tl.model.source.record_backbones`)."""
        return self.root / "backbones.json"

    @property
    def test_path(self) -> Path:
        return self.root / "test.json"

    @property
    def cache_dir(self) -> Path:
        """Frozen-backbone outputs (see `automl_tl.search.cache`): safe to delete, rebuilt when missing."""
        return self.root / "cache"

    def create(self) -> None:
        """Make the directory, or a `UserError` when it cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root) as probe:  # a private name: workers may share the folder
                probe.write(b"ok")
        except OSError as exc:
            raise UserError(f"cannot write to run directory {self.root}: {exc.strerror or exc}",
                            hint="pass --run-dir to a writable folder") from None

    def load_config(self) -> dict[str, Any] | None:
        """The saved configuration, or None for a new run; `UserError` for a foreign or damaged one."""
        if not self.config_path.exists():
            return None
        try:
            saved = read_json(self.config_path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.config_path} is unreadable ({exc})", hint="use a new --run-dir") from None
        version = saved.get("format_version") if isinstance(saved, dict) else None
        if version != FORMAT_VERSION:
            raise UserError(
                f"run directory {self.root} was made by an incompatible automl-tl (format {version!r}, "
                f"this version reads {FORMAT_VERSION})",
                hint="use a new --run-dir or --study",
            )
        return saved

    def claim(self, config: dict[str, Any], check: Callable[[dict[str, Any]], None]) -> bool:
        """Write ``config`` as the run's ``config.json``; True when one was there (a resume or a fellow worker).

        An existing configuration is passed to ``check`` first, which raises when this search may
        not take the directory (other data or settings). The read, the check and the write hold an
        exclusive lock on ``.lock``: of two searches started at once on a new directory, the second
        reads what the first wrote, so different searches cannot both take it (and overwrite each
        other's records and weights), while workers of the same search, whose check passes, share it.
        """
        lock = self.root / ".lock"
        try:
            handle = open(lock, "a")
        except OSError as exc:
            raise UserError(f"cannot write to run directory {self.root}: {exc.strerror or exc}",
                            hint="pass --run-dir to a writable folder") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            saved = self.load_config()
            if saved is not None:
                check(saved)
            write_json(self.config_path, config)
        return saved is not None

    def recorded_trials(self) -> int:
        """How many trial records the run directory holds."""
        return sum(1 for _ in (self.root / "trials").glob("*/record.json"))

    def write_record(
        self, number: int, state: str, params: dict[str, Any], score: float | None, reason: str | None,
        user_attrs: dict[str, Any],
    ) -> None:
        """A trial's record (``trials/<n>/record.json``), written whenever the trial ends, however it ends."""
        record = {"trial": number, "state": state, "params": params, "score": score, "reason": reason,
                  "user_attrs": user_attrs, "finished_at": time.time()}
        write_json(self.trial_dir(number) / "record.json", record)

    def prune_weights(self, keep: Collection[int]) -> None:
        """Remove every trial's weights but those of the trials in ``keep``.

        The engine keeps the best completed trial's and those of trials still running: a trial
        saves its weights before the storage records it as complete, so the earlier best's are
        removed only once the storage agrees that a better one exists.
        """
        kept = {f"{number:04d}" for number in keep}
        for path in [*(self.root / "trials").glob("*/weights.pt"), *(self.root / "trials").glob("*/last.pt")]:
            if path.parent.name not in kept:
                path.unlink(missing_ok=True)
