"""The app's data layer: the runs under a folder, read exactly as the command line reads them.

Every view reads `Leaderboard.of_run`, the storage's own account of a run, so a search started
from a terminal shows in the app as one started from the app does, and the app writes nothing to a
run. Boards are kept while the files of the run stay unchanged, which is what lets the pages poll
every couple of seconds; a board with a running trial is always read again, because whether its
worker is still alive is a question of time, not of files.

Reading a board opens its storage, which is most of what the first page costs: the app reads them
while Gradio has not even been imported (`automl_tl.app.server.Starting`). One run's board is read by one
thread at a time: a page asking for a board being read waits for it rather than reading it again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from automl_tl.datahome import data_home, existing_path
from automl_tl.errors import UserError
from automl_tl.leaderboard import Leaderboard
from automl_tl.rundir import RunDir

HEADER = ["run", "state", "modality", "data", "best validation", "test", "trials", "when"]
"""The Runs table's columns, on the starting page and the Runs page alike."""
STAMPED = ("config.json", "test.json", "study.db", "study.db-wal", "study.db-journal")
"""The files whose change means a run's board must be read again (SQLite storage in the run)."""


@dataclass(frozen=True)
class RunSummary:
    """One line of the Runs page."""

    name: str
    """The run's folder, relative to the runs folder: how every page names it."""
    path: Path
    state: str
    """running, finished, interrupted (stopped before its test evaluation) or unreadable."""
    modality: str
    data: str
    objective: str
    best: float | None
    """The best validation score so far."""
    test: float | None
    """The chosen model's one test score, on the objective."""
    trials: int
    when: str
    """When the run last changed (local time), for sorting the newest first."""
    problem: str | None = None


def run_state(board: Leaderboard, alive: bool) -> str:
    """``alive``: a search the app started for this run is still running (it may be loading or refitting)."""
    if alive or board.counts.get("running"):
        return "running"
    return "finished" if board.test else "interrupted"


class Runs:
    """The runs under ``root`` and their boards, shared by every page and every browser tab."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._boards: dict[tuple[Path, bool], tuple[tuple[float, ...], Leaderboard]] = {}
        self._reading: dict[tuple[Path, bool], threading.Lock] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every run directory directly under the root (a folder holding ``config.json``), newest first."""
        found = [p.parent for p in self.root.glob("*/config.json")]
        found.sort(key=lambda p: (-_stamp(p), p.name))
        return [p.name for p in found]

    def path(self, name: str) -> Path:
        """The run folder ``name``; a `UserError` for anything that is not a run directly under the root."""
        path = (self.root / name).resolve()
        if path.parent != self.root or not (path / "config.json").is_file():
            raise UserError(f"{name} is not a run in {self.root}", hint="pick a run from the Runs page")
        return path

    def board(self, name: str, importance: bool = False) -> Leaderboard:
        """The run's leaderboard, as `automl-tl leaderboard` reads it."""
        path = self.path(name)
        stamps = tuple(_mtime(path / f) for f in STAMPED)
        key = (path, importance)
        with self._lock:
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:
            with self._lock:
                kept = self._boards.get(key)
            if kept is not None and kept[0] == stamps:
                return kept[1]
            board = Leaderboard.of_run(path, importance=importance)
            stored_in_run = stamps[2] > 0  # a study in a database elsewhere has no file to watch
            if stored_in_run and not board.counts.get("running"):
                with self._lock:
                    self._boards[key] = (stamps, board)
            return board

    def summaries(self, alive: Iterable[str] = ()) -> list[RunSummary]:
        """A `RunSummary` per run; a run that cannot be read is listed with its problem, not dropped."""
        running = set(alive)
        return [self.summary(name, name in running) for name in self.names()]

    def summary(self, name: str, alive: bool = False) -> RunSummary:
        path = self.root / name
        when = _when(path)
        try:
            board = self.board(name)
        except UserError as exc:
            return RunSummary(name, path, "unreadable", "", "", "", None, None, 0, when, exc.message)
        data = board.run.get("data", {})
        test = (board.test or {}).get(board.objective)
        return RunSummary(
            name=name, path=path, state=run_state(board, alive), modality=board.run.get("modality", ""),
            data=data.get("description") or data.get("name", ""), objective=board.objective,
            best=board.best.score if board.best else None, test=test, trials=len(board.rows), when=when,
        )

    def data_roots(self, name: str) -> list[Path]:
        """The data a run references (its data and test paths, or its named dataset): what the app may serve besides the run."""
        saved = RunDir(self.path(name)).load_config() or {}
        data = saved.get("config", {}).get("data", {})
        home = data_home()
        given = [Path(p) for p in (data.get("path"), data.get("test_path")) if p]
        if data.get("dataset"):
            given.append(home / data["dataset"])
        roots = []
        for path in given:
            try:
                roots.append(existing_path(path, home, "data").resolve())
            except UserError:
                continue  # gone since the search: nothing there to serve
        return roots


def rows(summaries: list[RunSummary]) -> list[list[Any]]:
    """The Runs table (`HEADER`): a score with its objective, a run that cannot be read with its problem."""

    def score(value: float | None, objective: str) -> str:
        return "" if value is None else f"{value:.4f} {objective}"

    return [[s.name, s.state, s.modality, s.problem or s.data, score(s.best, s.objective), score(s.test, s.objective), s.trials, s.when]
            for s in summaries]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _stamp(run: Path) -> float:
    """When a run last changed: its newest stamped file."""
    return max(_mtime(run / f) for f in STAMPED)


def _when(run: Path) -> str:
    return datetime.fromtimestamp(_stamp(run)).strftime("%Y-%m-%d %H:%M")
