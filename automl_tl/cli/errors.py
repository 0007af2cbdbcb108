"""The CLI's single error formatter.

A `UserError` becomes one line on stderr and exit code 2; plugin warnings become one line each.
With ``AUTOML_TL_DEBUG=1`` (or ``--debug``) the traceback of what a plugin raised comes first.
So do failures of the machine rather than of the code: a full disk or a read-only folder, a study
storage whose server went away. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import traceback
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from optuna.exceptions import StorageInternalError
from rich.console import Console
from rich.markup import escape

from automl_tl.errors import UserError, debugging
from automl_tl.registry import PluginWarning
from automl_tl.rundir import UNWRITABLE

F = TypeVar("F", bound=Callable[..., Any])

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(exc: UserError) -> None:
    cause = exc.__cause__
    if cause is not None and debugging():
        stderr.print("".join(traceback.format_exception(cause)), markup=False, highlight=False, emoji=False)
    # escaped: messages quote user input, and rich would swallow "[low, high]" as a markup tag
    hint = f" — {exc.hint}" if exc.hint else ""
    stderr.print(f"[bold red]Error:[/] {escape(exc.message + hint)}", markup=True, emoji=False)


def environment_failure(exc: Exception) -> UserError | None:
    """A failure of the machine rather than of the code, as a `UserError`; None for anything else."""
    if isinstance(exc, OSError) and exc.errno in UNWRITABLE:
        where = f" {exc.filename}" if exc.filename else ""
        return UserError(f"cannot write{where}: {exc.strerror}", hint="free some disk space, or pass --run-dir on a writable disk")
    if isinstance(exc, StorageInternalError):
        cause = str(exc.__cause__ or exc).strip().splitlines()
        return UserError(f"the study storage failed: {cause[0] if cause else type(exc).__name__}",
                         hint="check the database server, or the disk that holds the run directory; then run the same command to resume")
    return None


def handles_user_errors(command: F) -> F:
    """Wrap a command so user mistakes end in one clear line and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        failure: UserError | None = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PluginWarning)
            try:
                result = command(*args, **kwargs)
            except UserError as exc:
                failure = exc
            except (OSError, StorageInternalError) as exc:
                failure = environment_failure(exc)
                if failure is None:
                    raise
        # re-emitted only now: inside the block, showwarning would append to `caught` itself
        for warning in caught:
            if issubclass(warning.category, PluginWarning):
                stderr.print(f"[yellow]Warning:[/] {escape(str(warning.message))}", emoji=False)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        if failure is not None:
            print_error(failure)
            raise typer.Exit(2)
        return result

    return wrapper  # type: ignore[return-value]
