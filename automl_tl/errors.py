"""Errors that reach the user as one line, never as a traceback.

Anything the user can fix (a path, a flag, a recipe, their data, a missing model package) raises
`UserError`; the CLI's single error formatter prints it and exits with code 2. Everything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import os

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


class StopAsked:
    """A stop a signal asked for, kept until the search ends (`automl_tl.cli.search.TerminateAsInterrupt`).

    The signal handlers raise `Terminated` (SIGTERM) or `KeyboardInterrupt` (SIGINT: Ctrl-C, the
    app's Stop) at once, but an exception raised by a signal handler is lost when the signal lands
    while Python runs a weakref callback or a ``__del__`` (it prints "Exception ignored" and goes
    on): a search's helper then trained on, and the search waited for it. So the handlers also
    record the stop here, and training checks it between batches (`stop_if_asked`).
    """

    # No lock: the handlers run in the main thread between two bytecodes, possibly while it reads
    # this, and a lock taken there would deadlock; one attribute's assignment is atomic.

    def __init__(self) -> None:
        self._exception: type[KeyboardInterrupt] | None = None

    def ask(self, exception: type[KeyboardInterrupt]) -> None:
        self._exception = exception

    def clear(self) -> None:
        self._exception = None

    def asked(self) -> type[KeyboardInterrupt] | None:
        """The exception the stop raises, or None while nobody asked."""
        return self._exception


STOP_ASKED = StopAsked()


def stop_if_asked() -> None:
    """Raise the stop a signal asked for (`Terminated` or `KeyboardInterrupt`) if it has not happened."""
    exception = STOP_ASKED.asked()
    if exception is not None:
        raise exception()
