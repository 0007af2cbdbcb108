"""Errors that reach the user as one line, never as a traceback.

Anything the user can fix (a path, a flag, a recipe, their data, a missing model package) raises
`UserError`; the CLI's single error formatter prints it and exits with code 2. Everything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import threading

DEBUG_VARIABLE = "AUTOML_TL_DEBUG"
"""Set to 1 (or pass ``--debug``) to see the full traceback behind a plugin's error."""


def debugging() -> bool:
    """Whether the user asked for tracebacks behind one-line errors (a plugin author's switch)."""
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


class UserError(Exception):
    """A mistake the user can fix: the message says what is wrong, `hint` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class DataError(UserError):
    """The user's data cannot be used as it is (unreadable file, one class, empty split...)."""


class TrialFailed(Exception):
    """A trial that cannot go on (NaN loss, a bad configuration): recorded as failed, search goes on."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, systemd, Docker, a job scheduler) stopped the search: handled exactly as Ctrl-C is."""


STOP_ASKED = threading.Event()
"""Set while a SIGTERM's stop is under way (`automl_tl.cli.search.TerminateAsInterrupt`). Its handler
raises `Terminated` at once, but an exception raised by a signal handler is lost when the signal
lands while Python runs a weakref callback or a ``__del__`` (it prints "Exception ignored" and goes
on): a search's helper then trained on, and the search waited for it. So training checks this
between batches (`stop_if_asked`)."""


def stop_if_asked() -> None:
    """Raise `Terminated` if a SIGTERM asked for a stop that has not happened."""
    if STOP_ASKED.is_set():
        raise Terminated()
