"""What `check_plugin` found: one named check after another, each with its problems and notes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from automl_tl.errors import UserError


@dataclass
class Check:
    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Not problems: what the plugin said about a fallback it took, a check it could not run."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class CheckReport:
    """Every check run on one plugin; `raise_if_failed` turns it into a test failure."""

    plugin: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[str]:
        """``"<check>: <problem>"`` for every problem, in the order found."""
        return [f"{check.name}: {problem}" for check in self.checks for problem in check.problems]

    @contextmanager
    def check(self, name: str) -> Iterator[Check]:
        """A named check; whatever the plugin raises inside it becomes one of its problems."""
        from automl_tl.registry import where

        current = Check(name)
        self.checks.append(current)
        try:
            yield current
        except UserError as exc:
            current.problems.append(str(exc))
        except Exception as exc:  # the plugin's bug is the finding, not a crash of the kit
            current.problems.append(f"raised {where(exc)}")

    def __str__(self) -> str:
        lines = [f"plugin {self.plugin!r}: " + ("every check passed" if self.ok else f"{len(self.problems)} problem(s)")]
        for check in self.checks:
            lines.append(f"  {'ok ' if check.ok else 'FAIL'} {check.name}")
            lines += [f"       - {problem}" for problem in check.problems]
            lines += [f"       note: {note}" for note in check.notes]
        return "\n".join(lines)

    def raise_if_failed(self) -> CheckReport:
        if not self.ok:
            raise PluginCheckFailed(self)
        return self


class PluginCheckFailed(AssertionError):
    """Raised by `check_plugin` (an AssertionError, so pytest shows the report as the failure)."""

    def __init__(self, report: CheckReport) -> None:
        super().__init__(str(report))
        self.report = report
