"""`automl-tl leaderboard`: re-render any run, finished, interrupted or still running."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import optuna
import typer
from rich.console import Console
from rich.markup import escape

from automl_tl.cli.errors import handles_user_errors
from automl_tl.errors import UserError
from automl_tl.leaderboard import Leaderboard, test_line
from automl_tl.model.source import final_model_line
from automl_tl.rundir import RunDir


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


def load_board(run_dir: Path, storage: str | None = None, importance: bool = False) -> Leaderboard:
    """The leaderboard of a run directory (its storage may be elsewhere, e.g. PostgreSQL).

    ``importance`` adds hyperparameter importances: the JSON and the report show them, the table does not.
    """
    run = RunDir(run_dir)
    saved = run.load_config()
    if saved is None:
        raise UserError(f"{run_dir} is not a run directory (no config.json)", hint="pass the folder a search wrote, e.g. runs/speech-default")
    url = storage or saved.get("storage") or run.default_storage
    try:
        study = optuna.load_study(study_name=saved["study"], storage=url)
    except KeyError:
        raise UserError(f"study {saved['study']!r} is not in {url}") from None
    except Exception as exc:
        raise UserError(f"cannot open study storage {url}: {exc}") from None
    return Leaderboard.from_study(study, importance=importance)


def print_board(console: Console, board: Leaderboard, run_dir: Path | None = None) -> None:
    console.print(board.to_table())
    if board.test:
        console.print(f"[bold]{test_line(board)}[/]")
    elif board.best is None:
        console.print("no trial has completed yet")
    if run_dir is not None and (line := final_model_line(run_dir)) is not None:
        console.print(escape(line), highlight=False)


@handles_user_errors
def leaderboard(
    run: Path = typer.Argument(..., help="A run directory, e.g. runs/speech-default."),
    format: Format = typer.Option(Format.table, "--format", "-f", help="table, csv, json or markdown."),
    top: Optional[int] = typer.Option(None, "--top", "-k", min=1, help="Show only the best K trials."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Storage URL, if the run's study lives elsewhere."),
) -> None:
    """Show a run's leaderboard."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    board = load_board(run, storage, importance=format is Format.json).top(top)
    if format is Format.table:
        print_board(Console(), board, run)
    else:
        text = {"csv": board.to_csv, "json": board.to_json, "markdown": board.to_markdown}[format.value]()
        typer.echo(text, nl=not text.endswith("\n"))  # no blank last line: a CSV reader would see an empty row
