"""`automl-tl report`: a report of one or more runs that stakeholders can open, read and keep."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import optuna
import typer
from rich.console import Console

from automl_tl.cli.errors import handles_user_errors
from automl_tl.leaderboard import Leaderboard


class ReportFormat(str, Enum):
    html = "html"
    markdown = "markdown"


@handles_user_errors
def report(
    runs: list[Path] = typer.Argument(..., metavar="RUN", help="One or more run directories, e.g. runs/speech-fsdd; several add a comparison."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="File to write (default report.html, or report.md for markdown)."),
    format: Optional[ReportFormat] = typer.Option(
        None, "--format", "-f",
        help="html (one self-contained file) or markdown (a .md with its figures as PNG files beside it); "
             "default: markdown for an --out ending in .md, else html.",
    ),
) -> None:
    """Write a report of a run: headline, leaderboard, plots, test scores, how to reproduce it."""
    from automl_tl.report import write_report  # matplotlib loads only when a report is made

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if format is None:
        format = ReportFormat.markdown if out is not None and out.suffix.lower() in (".md", ".markdown") else ReportFormat.html
    out = out or Path("report.md" if format is ReportFormat.markdown else "report.html")
    boards = [(str(run), Leaderboard.of_run(run, importance=True)) for run in runs]
    with Console(stderr=True).status("writing the report") as progress:
        written = write_report(boards, out, format.value, status=lambda what: progress.update(f"report: {what}"))
    images = f" and {len(written) - 1} image(s) beside it" if len(written) > 1 else ""
    typer.echo(f"wrote {written[0]} ({written[0].stat().st_size / 1024:.0f} KB){images}")
