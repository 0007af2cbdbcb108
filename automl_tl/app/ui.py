"""The app's pages, put together: one run picker on top, a tab per page below it.

Every page reads the same `Runs` (the storage, as the command line reads it), starts searches
through the same `Jobs` and uses models through the same `Models`, so two browser tabs, or a
page and a terminal, always agree.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from automl_tl.app.jobs import Jobs
from automl_tl.app.models import Models
from automl_tl.app.runs import Runs
from automl_tl.errors import UserError

POLL_SECONDS = 2.0
"""How often a page asks the storage what changed: a trial that starts or ends shows within this."""

CSS = """
.report table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
.report th, .report td { padding: 3px 7px; text-align: left; white-space: nowrap; border-bottom: 1px solid #d9d9d9; }
.report th { border-bottom: 2px solid currentColor; }
.report .num { text-align: right; }
.report .table-wrap { overflow-x: auto; }
.report tr.best { background: #dcebf7; color: #1a1a1a; font-weight: 700; }
.report tr.baseline { background: #fbefd9; color: #1a1a1a; }
.report tr.pruned, .report tr.fail, .report tr.running { opacity: 0.7; font-style: italic; }
.report .figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px 24px; }
.report figure { margin: 0; } .report figure img { max-width: 100%; height: auto; background: #fff; }
.report figcaption, .report p.note { color: #777; font-size: 13px; }
"""
"""The report's table and figure styles, scoped to the app's report fragments."""


@dataclass
class App:
    """What every page shares."""

    runs: Runs
    jobs: Jobs
    models: Models
    roots: list[str]
    """What the app may serve: the runs folder and the data of the runs shown. Gradio's own list, so it grows as runs appear."""
    folder: Path
    """The app's own files: search logs, reports and bundles to download."""

    def allow_data(self, name: str) -> None:
        """Let the pages show the examples of run ``name`` (its data folders), and nothing else besides."""
        try:
            found = self.runs.data_roots(name)
        except UserError:
            return
        self.roots.extend(str(p) for p in found if str(p) not in self.roots)


def build(runs: Runs, folder: Path) -> tuple[gr.Blocks, Any, str, list[str]]:
    """The app over ``runs``: (Blocks, theme, css, the list of servable roots it keeps up to date)."""
    from automl_tl.app import page_export, page_run, page_runs, page_search, page_try

    (folder / "logs").mkdir(parents=True, exist_ok=True)
    app = App(runs, Jobs(folder / "logs"), Models(), [str(runs.root)], folder)
    atexit.register(app.jobs.stop_all)  # Ctrl-C on the app stops its searches as Ctrl-C on a search would
    names = app.runs.names()
    with gr.Blocks(title="automl-tl", analytics_enabled=False) as blocks:
        with gr.Row(equal_height=True):
            gr.Markdown("## automl-tl")
            picker = gr.Dropdown(choices=names, value=names[0] if names else None, label="Run", elem_id="run-picker",
                                 scale=4, allow_custom_value=True)
        with gr.Tabs(selected="runs") as tabs:
            with gr.Tab("Runs", id="runs"):
                page_runs.build(app, picker, tabs, blocks)
            with gr.Tab("New search", id="search"):
                page_search.build(app, picker, tabs)
            with gr.Tab("Run", id="run") as run_tab:
                page_run.build(app, picker, run_tab)
            with gr.Tab("Try it", id="try"):
                page_try.build(app, picker, blocks)
            with gr.Tab("Export", id="export"):
                page_export.build(app, picker)
    # system fonts only: the default theme would fetch its fonts from the internet
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    return blocks, theme, CSS, app.roots


def error_line(exc: UserError) -> str:
    """A user mistake as the command line prints it, for a page (Markdown)."""
    hint = f" — {exc.hint}" if exc.hint else ""
    return f"**Error:** {_plain(exc.message + hint)}"


def _plain(text: str) -> str:
    """Text shown as is inside Markdown: no markup, no HTML from a path or a label."""
    return "".join("\\" + c if c in "\\`*_[]<>#|" else c for c in text)
