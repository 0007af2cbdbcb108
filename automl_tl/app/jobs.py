"""Searches the app starts: the very `automl-tl search` command, run as a child process.

A child rather than a thread: the app stays responsive while torch trains, a crash in training
cannot take the app down, and the run is the command line's own, so it resumes from either side.
Stop is the command line's Ctrl-C (SIGINT: the running trial is marked interrupted, nothing is
lost) and Resume runs the same command again, as a user would in a terminal.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from automl_tl.config import drop_none, read_recipe, resolve
from automl_tl.datahome import data_home, existing_path
from automl_tl.errors import UserError
from automl_tl.registry import get_plugin

STOP_WAIT = 20.0
"""Seconds the app waits, when it closes, for its searches to record their interrupted trials."""


@dataclass(frozen=True)
class SearchForm:
    """What the New search page asks for; empty strings and None leave the plugin's defaults."""

    modality: str
    data: str = ""
    test: str = ""
    recipe: str = ""
    n_trials: int | None = None
    minutes: float | None = None
    objective: str = ""
    name: str = ""

    def run_name(self) -> str:
        """The run folder: as given, else ``<modality>-<data>`` as the command line names a study."""
        return self.name.strip() or f"{self.modality}-{Path(self.data.strip()).stem or 'default'}"


def check(form: SearchForm) -> None:
    """Refuse, with the command line's own one-line errors, what `automl-tl search` would refuse before loading data."""
    if not form.modality:
        raise UserError("no modality given", hint="pick one of the installed plugins")
    name = form.run_name()
    if name in (".", "..") or "/" in name or "\\" in name:
        raise UserError(f"run name {name!r} is not a folder name", hint="use letters, digits, '-' or '_'")
    plugin = get_plugin(form.modality)
    recipe = Path(form.recipe.strip()) if form.recipe.strip() else None
    flags = drop_none({
        "modality": form.modality,
        "data": {"path": Path(form.data.strip()) if form.data.strip() else None,
                 "test_path": Path(form.test.strip()) if form.test.strip() else None},
        "search": {"n_trials": form.n_trials, "timeout": form.minutes * 60 if form.minutes else None,
                   "objective": form.objective or None},
    })
    config = resolve(plugin, read_recipe(recipe) if recipe else {}, flags, str(recipe) if recipe else "settings")
    home = data_home()
    for path, what in ((config.data.path, "data path"), (config.data.test_path, "test path")):
        if path is not None:
            existing_path(path, home, what)


def search_args(form: SearchForm, runs: Path) -> list[str]:
    """The arguments of `automl-tl search` for ``form``, its run folder under ``runs``."""
    args = ["search", "--modality", form.modality]
    for flag, value in (("--data", form.data), ("--test", form.test), ("--recipe", form.recipe), ("--objective", form.objective)):
        if value.strip():
            args += [flag, value.strip()]
    if form.n_trials:
        args += ["--n-trials", str(int(form.n_trials))]
    if form.minutes:
        args += ["--timeout", f"{form.minutes * 60:g}"]
    return [*args, "--run-dir", _shown(runs / form.run_name())]


def command_line(args: list[str]) -> str:
    """The command a user would type for ``args``."""
    return "automl-tl " + shlex.join(args)


@dataclass
class Job:
    name: str
    args: list[str]
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class Jobs:
    """The searches this app started, by run name; their output goes to a log file each."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, name: str, args: list[str]) -> Job:
        with self._lock:
            if (job := self._jobs.get(name)) is not None and job.alive:
                raise UserError(f"a search of run {name} is already running", hint="stop it first, or wait for it")
            log = self.log_dir / f"{name}.log"
            with log.open("ab") as out:
                # the same interpreter, so the child sees the plugins this app sees; unbuffered, so the log is live
                # its own session: Ctrl-C in the app's terminal reaches the app only, which then stops each search once
                process = subprocess.Popen([sys.executable, "-m", "automl_tl", *args], stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"},
                                           start_new_session=True)
            self._jobs[name] = job = Job(name, args, process, log)
            return job

    def get(self, name: str) -> Job | None:
        with self._lock:
            return self._jobs.get(name)

    def alive(self) -> list[str]:
        with self._lock:
            return [name for name, job in self._jobs.items() if job.alive]

    def stop(self, name: str) -> bool:
        """Ctrl-C the run's search; False when the app has no running search of it."""
        job = self.get(name)
        if job is None or not job.alive:
            return False
        job.process.send_signal(signal.SIGINT)
        return True

    def resume(self, name: str) -> Job:
        """Run a stopped search's command again: the search resumes where its storage says it is."""
        job = self.get(name)
        if job is None:
            raise UserError(f"the app did not start run {name}",
                            hint="resume it with the command it was started with (the Run page shows it)")
        return self.start(name, job.args)

    def output(self, name: str, lines: int = 12) -> str:
        """The last lines the run's search printed."""
        job = self.get(name)
        if job is None:
            return ""
        text = job.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop_all(self) -> None:
        """Interrupt every running search and wait for each to record its state (the app is closing)."""
        running = [job for job in list(self._jobs.values()) if job.alive]
        for job in running:
            job.process.send_signal(signal.SIGINT)
        for job in running:
            try:
                job.process.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                job.process.kill()


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when under it (shorter, and what a user types), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())
