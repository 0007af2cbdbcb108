"""More workers on one machine: the same search in more processes on its one study, one torch thread each.

The networks a search trains on a CPU are small: a second intra-op thread on a second core makes a
trial only a little faster, while a second process there runs a second trial (docs/performance.md).
So a search with ``[search] workers = N`` (``--workers N``) starts N − 1 helpers once its own start
is done — the run directory claimed, the study made, the frozen pass cached on disk, which the
helpers then read instead of computing — and every process trains with one thread. A helper is an
ordinary worker of the study (docs/guide.md, "Many workers"): the budget, heartbeats, retries and
interrupted trials are the study's. It only leaves the test evaluation to the search that started
it, which waits for the helpers' last trials as any worker waits for others', then evaluates alone,
with every thread. A helper's output goes to ``workers/N.log`` in the run directory. It runs in its
own session, so Ctrl-C in the terminal reaches the search alone, which passes a SIGTERM on to each
helper: each marks its running trial interrupted, as a stopped search does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import torch

from automl_tl.datahome import ENV_VAR as DATA_HOME_ENV
from automl_tl.rundir import RunDir
from automl_tl.search.inputs import SearchRequest
from automl_tl.storage import STORAGE_ENV

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CLEAN_EXITS = (0, 130, 143)
"""A helper that finished, or was stopped (Ctrl-C, SIGTERM)."""


class Helpers:
    """A search's helper processes: started, stopped with it, waited for; a context manager around its trials."""

    def __init__(self, run: RunDir, request: SearchRequest, count: int) -> None:
        self.run = run
        self.request = request
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []
        self.problems: list[str] = []
        """One line per helper that ended otherwise than cleanly, naming its log (after the block)."""
        self.threads = torch.get_num_threads()

    @property
    def folder(self) -> Path:
        return self.run.root / "workers"

    def __enter__(self) -> Helpers:
        if self.count < 2:
            return self
        self.folder.mkdir(exist_ok=True)
        env = {**os.environ, **ONE_THREAD, DATA_HOME_ENV: str(self.request.data_home)}
        if self.request.storage:
            env[STORAGE_ENV] = self.request.storage  # the URL with its password, never on a command line
        for number in range(1, self.count):
            with open(self.folder / f"{number}.log", "wb") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "automl_tl.search.helper", str(self.run.root)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                ))
        torch.set_num_threads(1)  # this process's trials too, beside the helpers'
        return self

    def stop(self) -> None:
        """SIGTERM to each helper still running: it marks its trial interrupted and ends."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None:  # this search stopped or failed: so do its helpers
            self.stop()
        torch.set_num_threads(self.threads)  # the test evaluation runs alone
        for number, process in enumerate(self.processes, start=1):
            code = process.wait()
            if code not in CLEAN_EXITS:
                self.problems.append(f"helper {number} exited with code {code}; its output: {self.folder / f'{number}.log'}")

    @property
    def started(self) -> int:
        return len(self.processes)
