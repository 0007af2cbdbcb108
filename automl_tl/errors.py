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
