"""Live terminal progress for a search: trials, the current trial's epochs and batches, the best so far;
and `counted`, a bar for work after the trials (fold models) that other processes may share."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table


class SearchDisplay:
    """What the user watches during `automl-tl search`; every method is cheap and safe to call often."""

    def __init__(self, console: Console, n_trials: int | None, timeout: float | None, done: int, objective: str,
                 run_dir: str = "RUN") -> None:
        self.console = console
        self.run_dir = run_dir
        self.usable: str | None = None
        """What the run directory holds as its best model so far (usable before the search ends): a trial, or
        the epoch of a trial still training (`automl_tl.search.objective.Objective`'s checkpoint)."""
        self.objective = objective
        self.timeout = timeout
        self.started = time.monotonic()
        self.best: float | None = None
        self.recent: deque[tuple[int, str, str, str]] = deque(maxlen=5)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.trials = self.progress.add_task("trials", total=n_trials, completed=done)
        self.work = self.progress.add_task("preparing", total=None)
        self._live = Live(self, console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> SearchDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def __rich__(self) -> RenderableType:
        best = "—" if self.best is None else f"{self.best:.4f}"
        budget = f"{time.monotonic() - self.started:.0f} s elapsed"
        if self.timeout:
            budget += f" (trials may use {self.timeout:.0f} s in all)"
        header = f"best {self.objective} so far: [bold green]{best}[/]   {budget}"
        if self.usable is not None:  # the search may be stopped at any moment: say what it leaves
            header += f"\nusable model: {self.usable} (automl-tl predict {escape(self.run_dir)} FILE...)"
        table = Table(box=None, show_header=True, header_style="dim", pad_edge=False)
        for column in ("trial", "configuration", "val", "state"):
            table.add_column(column)
        for row in self.recent:
            table.add_row(str(row[0]), row[1], row[2], row[3])
        return Group(self.progress, header, table)

    def stage(self, what: str, done: int, total: int) -> None:
        self.progress.update(self.work, description=what, completed=done, total=total)

    def trial_started(self, number: int, summary: str) -> None:
        self.current = f"trial {number}: {summary}"
        self.progress.update(self.work, description=self.current, completed=0, total=None)

    def epoch(self, epoch: int, epochs: int) -> None:
        self.progress.update(self.work, description=f"{self.current} — epoch {epoch}/{epochs}")

    def checkpoint(self, number: int, epoch: int) -> None:
        self.usable = f"trial {number} at epoch {epoch}, still training"

    def batch(self, done: int, total: int) -> None:
        self.progress.update(self.work, completed=done, total=total)

    def trial_finished(self, number: int, summary: str, score: float | None, state: str,
                       best: tuple[float, int] | None, done: int) -> None:
        """``best`` (value, trial) and ``done`` (trials that spent the budget) are the study's: other workers' count too."""
        if best is not None:
            self.best, self.usable = best[0], f"trial {best[1]}"
        shown = "" if score is None else f"{score:.4f}"
        self.recent.appendleft((number, summary, shown, state))
        self.progress.update(self.trials, completed=done)
        if not self.console.is_terminal:  # logs and CI get one line per trial instead of a live view
            self.console.print(f"trial {number} {state} {shown} — {summary}", highlight=False)


LOG_LINES = 10
"""At most about this many progress lines in a log for one piece of work after the trials."""
SPEED_FROM_ALL = 24 * 3600.0
"""Seconds of history the remaining time is estimated from: all of it, since a fold model can take minutes
(rich's default half minute would see no step at all and estimate nothing)."""


class Count(Protocol):
    """How much of a piece of work is done, and of how much where that is first known now."""

    def __call__(self, done: int, total: int | None = None) -> None: ...


@contextmanager
def counted(console: Console, what: str, unit: str, total: int | None = None) -> Iterator[Count]:
    """Say ``what`` once, then show how many of ``total`` ``unit`` are done, given the count so far (which
    may include work other processes did); a total not known at the start comes with a count (a refit
    knows its batches once it trains). A console that is no terminal (a log, CI) gets a line each time
    the count grows by a tenth of the total or more (so a refit's hundreds of batches make ten lines),
    and at the end."""
    console.print(what, highlight=False)
    if console.is_terminal:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=console, transient=True, speed_estimate_period=SPEED_FROM_ALL)
        task = progress.add_task(unit, total=total)

        def bar(done: int, of: int | None = None) -> None:
            progress.update(task, completed=done, **({"total": of} if of is not None else {}))

        with progress:
            yield bar
        return
    shown, known = 0, total

    def line(done: int, of: int | None = None) -> None:
        nonlocal shown, known
        known = of if of is not None else known
        if known is None:
            return
        if done >= shown + max(1, math.ceil(known / LOG_LINES)) or shown < done == known:
            shown = done
            console.print(f"{unit} {done}/{known}", highlight=False)

    yield line
