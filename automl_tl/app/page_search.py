"""New search: the form of `automl-tl search`, the exact command it runs, and Start.

The paths typed here are checked as the command line checks them, with its words; the search
itself is the command line's, run as a child process (`automl_tl.app.jobs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from automl_tl.app.jobs import SearchForm, check, command_line, search_args
from automl_tl.app.ui import App, error_line
from automl_tl.errors import UserError
from automl_tl.registry import catalogue, discover

UP = "../"
DEFAULT_OBJECTIVE = "the plugin's default"
BROWSED = 400
"""Entries listed per folder in the browser; the path box takes any path."""


def plugin_table(name: str | None) -> str:
    """The plugin's backbones, their size and whether they are on this machine (a Markdown table)."""
    entry = discover().get(name or "")
    if entry is None:
        return "No modality plugin is installed."
    try:
        plugin = entry.load()
        backbones = catalogue(plugin)
    except UserError as exc:
        return error_line(exc)
    lines = [f"{plugin.description}. Without data: {plugin.default_dataset}.", "",
             "| backbone | size | source | offline |", "|---|---|---|---|"]
    lines += [f"| {b.name}{' (default)' if b.name == plugin.default_backbone else ''} | {b.size} | {b.source} | "
              f"{'yes' if b.available_offline else 'no'} |" for b in backbones]
    return "\n".join(lines)


def listing(folder: Path) -> list[str]:
    """A folder's subfolders (with a trailing slash) and files, for the browser; ``../`` first."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: (not e.is_dir(), e.name.lower()))
    except OSError:
        return [UP]
    shown = [e.name + ("/" if e.is_dir() else "") for e in entries if not e.name.startswith(".")]
    return [UP, *shown[:BROWSED]]


def form_of(modality: str | None, data: str, test: str, recipe: str, n_trials: float | None, minutes: float | None,
            objective: str | None, name: str) -> SearchForm:
    return SearchForm(modality=modality or "", data=data or "", test=test or "", recipe=recipe or "",
                      n_trials=int(n_trials) if n_trials else None, minutes=float(minutes) if minutes else None,
                      objective="" if objective in (None, DEFAULT_OBJECTIVE) else objective, name=name or "")


def build(app: App, picker: gr.Dropdown, tabs: gr.Tabs) -> None:
    plugins = sorted(discover())
    with gr.Row():
        with gr.Column(scale=3):
            modality = gr.Dropdown(choices=plugins, value=plugins[0] if plugins else None, label="Modality", elem_id="modality")
            about = gr.Markdown(plugin_table(plugins[0] if plugins else None))
            data = gr.Textbox(label="Data (a folder or file; empty: the plugin's demo data)", elem_id="data-path")
            with gr.Row():
                browser = gr.Dropdown(choices=listing(Path.cwd()), label=f"Browse this machine: {Path.cwd()}",
                                      elem_id="browse", scale=4)
            test = gr.Textbox(label="Test data (optional: a separate test set)", elem_id="test-path")
        with gr.Column(scale=2):
            recipe = gr.Textbox(label="Recipe (optional: a TOML file, see recipes/)", elem_id="recipe")
            with gr.Row():
                n_trials = gr.Number(label="Trials (0: the recipe's or the plugin's)", precision=0, elem_id="n-trials")
                minutes = gr.Number(label="Minutes (0: no time limit)", elem_id="minutes")
            objective = gr.Dropdown(choices=[DEFAULT_OBJECTIVE, "accuracy", "macro_f1"], value=DEFAULT_OBJECTIVE,
                                    label="Objective")
            name = gr.Textbox(label="Run name (a folder in the runs folder; default <modality>-<data>)", elem_id="run-name")
    command = gr.Code(label="The same search from a terminal", language="shell", interactive=False, elem_id="search-command")
    start = gr.Button("Start", variant="primary", elem_id="start")
    said = gr.Markdown(elem_id="search-message")
    folder = gr.State(str(Path.cwd()))
    fields = [modality, data, test, recipe, n_trials, minutes, objective, name]

    def preview(*values: Any) -> str:
        form = form_of(*values)
        return command_line(search_args(form, app.runs.root)) if form.modality else ""

    gr.on([f.change for f in fields], preview, fields, command, show_progress="hidden")
    modality.change(plugin_table, modality, about)

    def browse(choice: str | None, current: str) -> tuple[Any, Any, str]:
        if not choice:
            return gr.skip(), gr.skip(), current
        target = (Path(current) / choice).resolve()
        if not target.is_dir():
            return gr.skip(), str(target), current
        return gr.Dropdown(choices=listing(target), value=None, label=f"Browse this machine: {target}"), str(target), str(target)

    browser.input(browse, [browser, folder], [browser, data, folder], show_progress="hidden")

    def begin(*values: Any) -> tuple[Any, Any, str]:
        form = form_of(*values)
        try:
            check(form)
            job = app.jobs.start(form.run_name(), search_args(form, app.runs.root))
        except UserError as exc:
            return gr.skip(), gr.skip(), error_line(exc)
        names = app.runs.names()
        return (gr.Dropdown(choices=names if job.name in names else [job.name, *names], value=job.name),
                gr.Tabs(selected="run"), f"Started `{command_line(job.args)}`")

    start.click(begin, fields, [picker, tabs, said])
