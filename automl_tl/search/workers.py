"""More workers on one machine: the same search in more processes on its one study, one torch thread each.

The networks a search trains on a CPU are small: two processes on two cores train more per minute
than one process with two threads (docs/performance.md). So a search with ``[search] workers = N``
(``--workers N``) starts N − 1 helpers once its own start is done — the run directory claimed, the
study made, the frozen pass cached on disk, which the helpers then read instead of computing — and
every process trains with one thread. A helper is an ordinary worker of the study (docs/guide.md,
"Many workers"): the budget, heartbeats, retries and interrupted trials are the study's.

After the trials the helpers stay for the cross-validation, if the choice needs one: its fold
models are shared out through `FoldShare`, files in the run directory, and the search that started
them chooses, tests and writes the final model. Then it stops them and finishes with every thread.
A search of one worker starts helpers for its cross-validation alone when the fold models are
worth it (`Helpers.start_for_folds`): each fold model is a whole training, so two processes on two
cores finish the folds sooner than one process with two threads, once a helper's start is paid.
A helper's output goes to ``workers/N.log`` in the run directory. It runs in its own session, so
Ctrl-C in the terminal reaches the search alone, which passes a SIGTERM on to each helper: each
marks its running trial interrupted, as a stopped search does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import torch

from automl_tl.datahome import ENV_VAR as DATA_HOME_ENV
from automl_tl.rundir import RunDir, atomic_write
from automl_tl.search.crossval import FoldModel
from automl_tl.search.inputs import SearchRequest
from automl_tl.storage import STORAGE_ENV
from automl_tl.threads import usable_cores

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CLEAN_EXITS = (0, 130, 143)
"""A helper that finished, or was stopped (Ctrl-C, SIGTERM)."""
STOP_GRACE = 60.0
"""Seconds a helper has, once told to stop, to mark its trial interrupted and end; then it is killed
(its trial is found abandoned by its heartbeat), so a stuck helper never holds up its search."""
FOLD_HELPERS_AFTER = 60.0
"""Seconds the fold models are expected to take in one process beyond which a one-worker search
starts helpers for them: a helper's start (reading the data and the cached frozen pass) costs seconds."""
POLL_SECONDS = 0.25
"""How often a process waiting for fold models, or for a plan of them, looks at the run directory."""

Job = tuple[int, int]
"""(trial number, fold number): one fold model to train."""
FOLDS_ONLY = "--folds"
"""A helper's flag: it trains fold models only (started after the trials), never a trial."""


class Helpers:
    """A search's helper processes: started, stopped with it, waited for; a context manager around its trials and test."""

    def __init__(self, run: RunDir, request: SearchRequest, count: int) -> None:
        self.run = run
        self.request = request
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []
        self.problems: list[str] = []
        """One line per helper that ended otherwise than cleanly, naming its log (once they are stopped)."""
        self.threads = torch.get_num_threads()

    @property
    def folder(self) -> Path:
        return self.run.root / "workers"

    def start(self) -> int:
        """Start the helpers, and train with one thread here too; how many were started."""
        return self._spawn(self.count - 1)

    def start_for_folds(self, folds: int, expected_seconds: float) -> int:
        """Helpers for a one-worker search's fold models when they are expected to take longer than
        `FOLD_HELPERS_AFTER` here alone: one per further usable core, and no more processes than ``folds``
        (each candidate trains one model per fold; further processes would only share the cheap ones, each
        holding its own copy of the backbone and the features). How many were started (none when helpers run)."""
        if self.processes or expected_seconds <= FOLD_HELPERS_AFTER:
            return 0
        return self._spawn(min(usable_cores(), folds) - 1, FOLDS_ONLY)

    def _spawn(self, count: int, *flags: str) -> int:
        if count < 1:
            return 0
        self.folder.mkdir(exist_ok=True)
        env = {**os.environ, **ONE_THREAD, DATA_HOME_ENV: str(self.request.data_home)}
        if self.request.storage:
            env[STORAGE_ENV] = self.request.storage  # the URL with its password, never on a command line
        for number in range(1, count + 1):
            with open(self.folder / f"{number}.log", "wb") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "automl_tl.search.helper", str(self.run.root), *flags],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                ))
        torch.set_num_threads(1)
        return len(self.processes)

    def share(self) -> FoldShare | None:
        """Where fold models are shared out while helpers are still running; None when none is."""
        if not any(process.poll() is None for process in self.processes):
            return None
        return FoldShare(self.run, os.getpid(), self.alive)

    def alive(self, pid: int) -> bool:
        """Whether process ``pid`` (this one, or one of its helpers) still runs."""
        return pid == os.getpid() or any(p.pid == pid and p.poll() is None for p in self.processes)

    def stop(self) -> None:
        """SIGTERM to each helper still running: it marks its trial interrupted, if it runs one, and ends."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def finish(self) -> None:
        """Stop the helpers and wait for them; from here on this process has every thread again."""
        self.stop()
        for number, process in enumerate(self.processes, start=1):
            try:
                code = process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code not in CLEAN_EXITS:
                self.problems.append(f"helper {number} exited with code {code}; its output: {self.folder / f'{number}.log'}")
        self.processes = []
        torch.set_num_threads(self.threads)

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.finish()


class FoldShare:
    """Fold models shared out among a search and its helpers, through files in the run directory.

    The search publishes the jobs (``plan.json``, naming its process); every process claims a job
    by creating its claim file, which only one can, trains it and writes the result. The search
    takes over a job whose claimer has ended without a result.
    """

    def __init__(self, run: RunDir, owner: int, alive: Callable[[int], bool] = lambda pid: True) -> None:
        self.folder = run.root / "final" / "folds"
        self.owner = owner
        """The search's process id: a helper takes jobs only from the search that started it, never a stale plan."""
        self.alive = alive
        """Whether a claimer still runs (asked by the search, which knows its helpers)."""

    def publish(self, jobs: Sequence[Job]) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        atomic_write(self.folder / "plan.json", lambda f: f.write(json.dumps({"owner": self.owner, "jobs": list(jobs)})))

    def plan(self) -> list[Job] | None:
        """The published jobs, when the owner has published some."""
        try:
            plan = json.loads((self.folder / "plan.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return [(int(t), int(f)) for t, f in plan["jobs"]] if plan.get("owner") == self.owner else None

    def work(self, jobs: Sequence[Job], train: Callable[[Job], FoldModel], progress: Callable[[int], None] | None = None) -> None:
        """Claim and train every job no other process has claimed; ``progress`` hears how many of ``jobs`` are done
        (by any process) after each."""
        for job in jobs:
            mine = self.folder / f".claim-{os.getpid()}-{job[0]}-{job[1]}"
            mine.write_text(str(os.getpid()))
            try:
                os.link(mine, self._claim(job))  # a claim appears whole, naming its claimer, or not at all
            except FileExistsError:
                continue
            finally:
                mine.unlink()
            result = train(job)
            atomic_write(self._result(job), lambda f: torch.save({"predictions": torch.from_numpy(result[0]), "state": result[1]}, f),
                         mode="wb")
            if progress is not None:
                progress(sum(self._result(each).exists() for each in jobs))

    def collect(self, jobs: Sequence[Job], train: Callable[[Job], FoldModel],
                progress: Callable[[int], None] | None = None) -> dict[Job, FoldModel]:
        """Every job's result, waiting for the helpers' and training any a helper left unfinished; ``progress`` as in `work`."""
        while missing := [job for job in jobs if not self._result(job).exists()]:
            if progress is not None:
                progress(len(jobs) - len(missing))
            abandoned = [job for job in missing if not self.alive(self._claimer(job))]
            for job in abandoned:  # its claimer ended without a result: this process trains it
                self._claim(job).unlink(missing_ok=True)
            self.work(abandoned, train, progress)
            time.sleep(POLL_SECONDS)
        if progress is not None:
            progress(len(jobs))
        found = {job: torch.load(self._result(job), weights_only=True) for job in jobs}
        for job in jobs:  # the weights live on in the final model; the claims stay, a record of who trained what
            self._result(job).unlink()
        return {job: (result["predictions"].numpy(), result["state"]) for job, result in found.items()}

    def _claimer(self, job: Job) -> int:
        """The process that claimed ``job`` (0 when the claim is gone: nobody's)."""
        try:
            return int(self._claim(job).read_text() or 0)
        except (OSError, ValueError):
            return 0

    def _claim(self, job: Job) -> Path:
        return self.folder / f"claim-{job[0]}-{job[1]}"

    def _result(self, job: Job) -> Path:
        return self.folder / f"{job[0]}-{job[1]}.pt"
