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
from automl_tl.leaderboard import TEXT_FORMATS, Leaderboard, test_line
from automl_tl.model.source import final_model_line

Format = Enum("Format", {name: name for name in ("table", *TEXT_FORMATS)}, type=str)  # type: ignore[misc]
"""``--format``: the terminal table, or any text rendering the leaderboard declares."""


def print_board(console: Console, board: Leaderboard, run_dir: Path | None = None) -> None:
    console.print(board.to_table())
    if board.test:
        if board.test.get("chosen"):
            console.print(f"chosen: {escape(board.test['chosen'])}")
        console.print(f"[bold]{escape(test_line(board))}[/]")
    elif board.best is None:
        console.print("no trial has completed yet")
    if run_dir is not None and (line := final_model_line(run_dir)) is not None:
        console.print(escape(line), highlight=False, soft_wrap=True)  # commands a user copies: no line breaks inside them


@handles_user_errors
def leaderboard(
    run: Path = typer.Argument(..., help="A run directory, e.g. runs/speech-default."),
    format: Format = typer.Option("table", "--format", "-f", help=f"table, {', '.join(TEXT_FORMATS)}."),  # type: ignore[valid-type]
    top: Optional[int] = typer.Option(None, "--top", "-k", min=1, help="Show only the best K trials."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Storage URL, if the run's study lives elsewhere."),
) -> None:
    """Show a run's leaderboard."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    board = Leaderboard.of_run(run, storage, importance=format.value == "json").top(top)
    if format.value == "table":
        print_board(Console(), board, run)
    else:
        text = TEXT_FORMATS[format.value](board)
        typer.echo(text, nl=not text.endswith("\n"))  # no blank last line: a CSV reader would see an empty row
