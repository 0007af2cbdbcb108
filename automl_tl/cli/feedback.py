"""What a long command shows on stderr while it works, when stderr is a terminal.

One line: what it is doing now, and a bar with a count and the time left once the step can count
(predicting N inputs, checking an export on N test examples). Nothing when stderr is a pipe or a
file, so logs and scripts see only the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from automl_tl.cli.errors import stderr


class Feedback:
    """``status(what)`` names the current step; ``progress(done, total)`` counts through it."""

    def __init__(self, bar: Progress | None, task: TaskID | None) -> None:
        self._bar = bar
        self._task = task

    def status(self, what: str) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=what, total=None, completed=0, count="")

    def progress(self, done: int, total: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=total, completed=done, count=f"{done}/{total}")


@contextmanager
def feedback(what: str) -> Iterator[Feedback]:
    """A `Feedback` whose line starts as ``what`` and goes away when the block ends."""
    if not stderr.is_terminal:
        yield Feedback(None, None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        yield Feedback(bar, bar.add_task(what, total=None, count=""))
