"""Entry point of the `automl-tl` command."""

from __future__ import annotations

import typer

import os

from automl_tl import __version__
from automl_tl.cli import app_command, export, leaderboard, plugins, predict, report, search
from automl_tl.errors import DEBUG_VARIABLE

app = typer.Typer(
    name="automl-tl",
    help="Search how to transfer a pretrained backbone to your small labelled dataset.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.add_typer(plugins.app, name="plugins")
app.command("search", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(search.search)
app.command("leaderboard")(leaderboard.leaderboard)
app.command("report")(report.report)
app.command("predict")(predict.predict)
app.command("export")(export.export)
app.command("app")(app_command.app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"automl-tl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    debug: bool = typer.Option(False, "--debug", help=f"Show the traceback behind a plugin's error (as {DEBUG_VARIABLE}=1 does)."),
) -> None:
    """automl-tl: plugin-based transfer-learning AutoML."""
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"


def main() -> None:
    app()
