"""`automl-tl plugins`: what is installed and which backbones work offline now; check a plugin; start one."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from automl_tl.cli.errors import handles_user_errors
from automl_tl.errors import UserError
from automl_tl.cli.search import plugin_flags
from automl_tl.contract import BackbonePlugin
from automl_tl.registry import PluginWarning, backbone_plugins, catalogue, discover, get_plugin, provenance

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
        rows = []
        for source in (plugin, *backbone_plugins(name)):
            added = f" [dim](from {escape(provenance(source).label())})[/]" if isinstance(source, BackbonePlugin) else ""
            try:
                rows += [(b, added) for b in catalogue(source)]
            except UserError as exc:
                warnings.warn(str(exc), PluginWarning, stacklevel=1)
                table.add_row(name, origin, f"[red]broken: {escape(exc.message)}[/]", "", "", "", end_section=True)
        for i, (b, added) in enumerate(rows):
            table.add_row(
                name if i == 0 else "",
                origin if i == 0 else "",
                escape(b.name) + (" (default)" if b.name == plugin.default_backbone else "") + added,
                b.size,
                b.source,
                "[green]yes[/]" if b.available_offline else "[dim]no[/]",
                end_section=i == len(rows) - 1,
            )
    console.print(table)


@app.command("check", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_user_errors
def check(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The modality plugin to check, e.g. vision."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data to load (default: the plugin's demo data)."),
    backbone: Optional[list[str]] = typer.Option(None, "--backbone", "-b", help="Backbone(s) to build; default: every one available offline."),
) -> None:
    """Check a plugin against the contract: types, layout, widths, masks, determinism, fingerprints, data, import cost.

    Any other --name VALUE sets the plugin's option `name`, as in `automl-tl search`. Exit code 1
    when a check fails.
    """
    from automl_tl.testing import check_plugin  # loads torch: only when a check runs

    if data is not None and not data.exists():
        raise UserError(f"data path {data} does not exist")
    plugin = get_plugin(name)
    report = check_plugin(plugin, data=data, backbones=backbone or None, options=plugin_flags(ctx.args), raise_on_failure=False)
    console = Console(highlight=False)
    for item in report.checks:
        console.print(("[green]ok[/]   " if item.ok else "[red]FAIL[/] ") + escape(item.name))
        for problem in item.problems:
            console.print(f"       [red]-[/] {escape(problem)}")
        for note in item.notes:
            console.print(f"       [dim]note: {escape(note)}[/]")
    if not report.ok:
        console.print(f"[red]{len(report.problems)} problem(s)[/] in plugin {name!r}")
        raise typer.Exit(1)
    console.print(f"plugin {name!r} passed every check")


@app.command("new")
@handles_user_errors
def new(
    name: str = typer.Argument(..., help="The modality's name, e.g. sensors (a lowercase identifier)."),
    modality_like: str = typer.Option("blank", "--modality-like", help="The template to start from (blank)."),
    into: Path = typer.Option(Path("."), "--into", help="Folder to write automl-tl-NAME/ in."),
) -> None:
    """Write an installable plugin package that passes `plugins check` and a search as generated."""
    from automl_tl.scaffold import write_plugin

    target = write_plugin(name, modality_like, into)
    Console(highlight=False).print(
        f"wrote {escape(str(target))}\nnext: pip install -e {escape(str(target))} && automl-tl plugins check {name}"
    )
