"""`automl-tl plugins`: what modality plugins are installed and which backbones work offline now."""

from __future__ import annotations

import warnings

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from automl_tl.cli.errors import handles_user_errors
from automl_tl.errors import UserError
from automl_tl.registry import PluginWarning, catalogue, discover

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
    for column in ("modality", "plugin", "backbone", "size", "source", "offline"):
        table.add_column(column, overflow="fold")
    for name, entry in entries.items():
        origin = f"{entry.distribution} {entry.version}" + (f" (shadows {', '.join(entry.shadows)})" if entry.shadows else "")
        plugin = entry.try_load()
        if plugin is None:
            table.add_row(name, origin, f"[red]broken: {escape(entry.error or '')}[/]", "", "", "", end_section=True)
            continue
        try:
            backbones = catalogue(plugin)
        except UserError as exc:
            warnings.warn(str(exc), PluginWarning, stacklevel=1)
            table.add_row(name, origin, f"[red]broken: {escape(exc.message)}[/]", "", "", "", end_section=True)
            continue
        for i, b in enumerate(backbones):
            table.add_row(
                name if i == 0 else "",
                origin if i == 0 else "",
                b.name + (" (default)" if b.name == plugin.default_backbone else ""),
                b.size,
                b.source,
                "[green]yes[/]" if b.available_offline else "[dim]no[/]",
                end_section=i == len(backbones) - 1,
            )
    console.print(table)
