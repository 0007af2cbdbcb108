"""`automl-tl leaderboard`: re-render any run, finished, interrupted or still running."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import optuna
import typer
from rich.console import Console

from automl_tl.cli.errors import handles_user_errors
from automl_tl.leaderboard import Leaderboard, test_line


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


def print_board(console: Console, board: Leaderboard) -> None:
    console.print(board.to_table())
    if board.test:
        console.print(f"[bold]{test_line(board)}[/]")
    elif board.best is None:
        console.print("no trial has completed yet")


@handles_user_errors
def leaderboard(
    run: Path = typer.Argument(..., help="A run directory, e.g. runs/speech-default."),
    format: Format = typer.Option(Format.table, "--format", "-f", help="table, csv, json or markdown."),
    top: Optional[int] = typer.Option(None, "--top", "-k", min=1, help="Show only the best K trials."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Storage URL, if the run's study lives elsewhere."),
) -> None:
    """Show a run's leaderboard."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    board = Leaderboard.of_run(run, storage, importance=format is Format.json).top(top)
    if format is Format.table:
        print_board(Console(), board)
    else:
        text = {"csv": board.to_csv, "json": board.to_json, "markdown": board.to_markdown}[format.value]()
        typer.echo(text, nl=not text.endswith("\n"))  # no blank last line: a CSV reader would see an empty row
