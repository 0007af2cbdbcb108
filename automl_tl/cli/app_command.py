"""`automl-tl app`: a local web app over the same runs as the command line."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import typer

from automl_tl.cli.errors import handles_user_errors
from automl_tl.errors import UserError


@handles_user_errors
def app(
    runs: Path = typer.Option(Path("runs"), "--runs", help="The runs folder: every run directory in it is listed."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs --token."),
    token: Optional[str] = typer.Option(None, "--token", envvar="AUTOML_TL_APP_TOKEN",
                                        help="Secret every request must carry (required off loopback); 'auto' makes one and prints it once."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open the default browser."),
) -> None:
    """Start the local app: runs, new searches, live runs, try a model, export; needs no network."""
    from automl_tl.app.server import app_token, serve

    needed = app_token(host, token)  # before anything loads: a refusal is instant
    if importlib.util.find_spec("gradio") is None:  # the optional extra; imported once the port is open
        raise UserError("the app needs Gradio, which is not installed", hint="pip install 'automl-tl[app]'")
    if runs.exists() and not runs.is_dir():
        raise UserError(f"--runs {runs} is not a folder", hint="pass the folder that holds your run directories")
    serve(host, port, needed, runs, open_browser=not no_browser)
