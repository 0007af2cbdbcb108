"""`automl-tl plugins`: what modality plugins are installed and which backbones work offline now."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from automl_tl.cli.errors import handles_user_errors
from automl_tl.registry import discover

app = typer.Typer(help="Inspect modality plugins.", no_args_is_help=True)


@app.command("list")
@handles_user_errors
def list_plugins() -> None:
    """List every discovered modality plugin and its backbones (no model is loaded)."""
    console = Console()
    entries = discover()
    if not entries:
        console.print("no modality plugins installed; install one, e.g. `pip install -e plugins/speech`")
        return
    table = Table(title="modality plugins", header_style="bold")
    for column in ("modality", "version", "distribution", "backbones (✓ = available offline)", "status"):
        table.add_column(column, overflow="fold")
    for name, entry in entries.items():
        plugin = entry.try_load()
        if plugin is None:
            table.add_row(name, entry.version, entry.distribution, "", f"[red]broken: {entry.error}[/]")
            continue
        backbones = "\n".join(
            f"{'✓' if b.available_offline else '✗'} {b.name}{' (default)' if b.name == plugin.default_backbone else ''}"
            f" — {b.size}, {b.source}"
            for b in plugin.backbones()
        )
        status = "ok" if not entry.shadows else f"ok (shadows {', '.join(entry.shadows)})"
        table.add_row(name, entry.version, entry.distribution, backbones, status)
    console.print(table)
