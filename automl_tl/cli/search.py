"""`automl-tl search`: run (or resume) a transfer-learning search and show its leaderboard."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
import warnings
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import optuna
import typer
from rich.console import Console
from rich.markup import escape

from automl_tl.cli.errors import handles_user_errors, stderr
from automl_tl.cli.leaderboard import print_board
from automl_tl.config import drop_none, read_recipe, resolve
from automl_tl.datahome import data_home
from automl_tl.errors import STOP_ASKED, Terminated, UserError
from automl_tl.registry import get_plugin
from automl_tl.storage import STORAGE_ENV, redact_all
from automl_tl.threads import usable_cores

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C: 128 + SIGINT, as a shell reports it."""
EXIT_SIGTERM = 143
"""Exit code after SIGTERM: 128 + SIGTERM, so a job scheduler sees the job was terminated, not failed."""


@handles_user_errors
def search(
    ctx: typer.Context,
    modality: Optional[str] = typer.Option(None, "--modality", "-m", help="Modality plugin, e.g. speech, text, vision."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Your data (layout depends on the modality). Default: the plugin's demo data."),
    test: Optional[Path] = typer.Option(None, "--test", help="A separate test set, when your data ships one."),
    target: Optional[Path] = typer.Option(None, "--target", help="Data from the domain the model is for; its labels are dropped (domain adaptation)."),
    target_test: Optional[Path] = typer.Option(None, "--target-test", help="Labelled target data, evaluated once after the search."),
    target_labelled: Optional[int] = typer.Option(None, "--target-labelled", min=1, help="Labelled target examples per class kept for validation: trials are then chosen on them."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="A TOML recipe (see recipes/)."),
    backbone: Optional[list[str]] = typer.Option(None, "--backbone", "-b", help="Backbone(s) to search; repeat for several."),
    n_trials: Optional[int] = typer.Option(None, "--n-trials", "-n", min=1, help="Trials in total, counting a resumed run's."),
    timeout: Optional[float] = typer.Option(None, "--timeout", "-t", min=1, help="Seconds of search in total, counting a resumed run's."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for splits, sampler and training."),
    objective: Optional[str] = typer.Option(None, "--objective", help="macro_f1 (default) or accuracy."),
    split_by: Optional[str] = typer.Option(None, "--split-by", help="group (keep speakers/authors apart), stratified or auto."),
    skip_bad_files: Optional[bool] = typer.Option(None, "--skip-bad-files/--no-skip-bad-files", help="Skip unreadable files (counted and reported) instead of stopping."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Processes searching at once on this machine, one thread each (default 1)."),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="Reuse frozen-backbone outputs across trials and resumed runs (default on)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where the run lives (default runs/<study>)."),
    storage: Optional[str] = typer.Option(None, "--storage", envvar=STORAGE_ENV, show_envvar=True,
                                          help="Optuna storage URL (default: SQLite in the run directory); its password is never shown or stored."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default <modality>-<data>); same name resumes."),
    data_home_opt: Optional[Path] = typer.Option(None, "--data-home", help="Folder of named datasets (default $AUTOML_TL_DATA)."),
) -> None:
    """Search how to transfer a pretrained backbone to your data; re-run to resume.

    Any other --name VALUE sets the modality plugin's option `name` (as a recipe's [options]
    would), e.g. `--text-column message` for the text plugin.
    """
    recipe_values = read_recipe(recipe) if recipe else {}
    chosen = modality or recipe_values.get("modality")
    if not chosen:
        raise UserError("no modality given", hint="pass --modality (see `automl-tl plugins list`) or set modality in the recipe")
    plugin = get_plugin(chosen)
    flags = drop_none({
        "modality": chosen,
        "study": study,
        "data": {"path": data, "test_path": test, "split_by": split_by, "skip_bad_files": skip_bad_files,
                 "target_path": target, "target_test_path": target_test, "target_labelled": target_labelled},
        "search": {"n_trials": n_trials, "timeout": timeout, "seed": seed, "objective": objective, "cache": cache,
                   "workers": workers},
        "space": {"backbone": list(backbone) if backbone else None},
        "options": plugin_flags(ctx.args),
    })
    config = resolve(plugin, recipe_values, flags, str(recipe) if recipe else "settings")
    cores = usable_cores()
    if config.search.workers > cores:  # each worker trains on one core: more only share them, each with its own memory
        raise UserError(f"{config.search.workers} workers asked for, but this process may use {cores} CPU core(s)",
                        hint=f"pass --workers {cores} or fewer")

    console = Console()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the live display and the leaderboard say it all
    interrupted = True
    # the engine silences Optuna's experimental-feature notices; keep that local. The stop handlers come
    # first: loading torch takes seconds, and a stop then (the app's Stop, a search started with SIGINT
    # ignored) must not be lost
    with warnings.catch_warnings(), TerminateAsInterrupt() as sigterm:
        try:
            from automl_tl.search.engine import Interrupted, SearchRequest, SearchRun  # torch loads only when a search runs

            request = SearchRequest(config=config, data_home=data_home(data_home_opt), run_dir=run_dir, storage=storage,
                                    command=redact_all(sys.argv))
            try:
                board = SearchRun(request, plugin, console).run()
                interrupted = False
            except Interrupted as stop:  # Ctrl-C or SIGTERM during the trials
                board = stop.board
        except KeyboardInterrupt:  # while loading, caching or refitting: nothing is half-written, finished trials are kept
            board = None
    if board is not None:
        print_board(console, board, run_dir or Path("runs") / board.study)
    if interrupted:
        args = redact_all(sys.argv[1:])
        secret = f" (with the password where *** stands, or with the URL in ${STORAGE_ENV} instead)" if args != sys.argv[1:] else ""
        console.print(f"[yellow]{'Stopped by SIGTERM' if sigterm.received else 'Interrupted'}.[/] Finished trials are saved and "
                      "the running one is marked interrupted (it will be retried). To resume, run the same command again"
                      f"{escape(secret)}:\n  automl-tl {escape(shlex.join(args))}")
        raise typer.Exit(EXIT_SIGTERM if sigterm.received else EXIT_INTERRUPTED)
    if board is not None and board.best is None and not board.counts.get("running"):
        # a search that found nothing must not pass for one that did (scripts check the exit code)
        outcomes = Counter({"fail": "failed"}.get(row.state, row.state) + (f": {row.reason}" if row.reason else "") for row in board.rows)
        said = "; ".join(f"{n} {outcome}" for outcome, n in outcomes.most_common(3)) or "none ran"
        stderr.print(f"[bold red]Error:[/] no trial completed: {escape(said)}", emoji=False)
        raise typer.Exit(1)


class TerminateAsInterrupt:
    """SIGTERM, for the time of a search, stops it as Ctrl-C does.

    SIGTERM is what ``kill``, systemd, Docker and job schedulers send to stop a process; left to
    its default it ended the search at once, silently, with its trial still running in the
    storage. Here it raises `Terminated` (a `KeyboardInterrupt`) in the main thread, so the running
    trial is marked interrupted and queued again, the leaderboard so far is shown and the exit
    code is the conventional 128 + 15. A second SIGTERM while that happens is ignored: it takes a
    moment, and SIGKILL still stops the process at once. Outside the main thread (where signals
    cannot be handled) nothing changes.

    SIGINT is made Ctrl-C's again too: a process started in the background by a non-interactive
    shell (``automl-tl app &`` in a script) inherits SIGINT ignored, and so would every search the
    app starts, whose Stop button is a SIGINT. Both handlers record the stop in `STOP_ASKED`, which
    training checks between batches, since a handler's exception can be lost (see `StopAsked`).
    """

    def __enter__(self) -> TerminateAsInterrupt:
        self.received = False
        STOP_ASKED.clear()
        self.previous: Any = None
        self.previous_int: Any = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._stop)
            self.previous_int = signal.signal(signal.SIGINT, self._interrupt)
        return self

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.received:
            self.received = True
            STOP_ASKED.ask(Terminated)
            raise Terminated()

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        if STOP_ASKED.asked() is None:  # a SIGTERM's stop under way stays one
            STOP_ASKED.ask(KeyboardInterrupt)
        raise KeyboardInterrupt()

    def __exit__(self, *exc: object) -> None:
        STOP_ASKED.clear()
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        if self.previous_int is not None:
            signal.signal(signal.SIGINT, self.previous_int)


def plugin_flags(args: list[str]) -> dict[str, str | bool]:
    """``--text-column message --header`` → ``{"text_column": "message", "header": True}``.

    Flags the core does not know belong to the plugin; their values are checked and converted
    against the plugin's options dataclass like a recipe's ``[options]``.
    """
    options: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise UserError(f"unexpected argument {arg!r}", hint="see `automl-tl search --help`")
        name, _, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        if value or "=" in arg:
            options[key] = value
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            options[key] = args[i + 1]
            i += 1
        elif key.startswith("no_"):
            options[key[3:]] = False
        else:
            options[key] = True
        i += 1
    return options

