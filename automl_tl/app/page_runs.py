"""Runs: every run under the runs folder, its state and scores, and two runs side by side."""

from __future__ import annotations

from typing import Any

import gradio as gr

from automl_tl.app.runs import HEADER, rows
from automl_tl.app.ui import POLL_SECONDS, App
from automl_tl.errors import UserError
from automl_tl.report import html
from automl_tl.report.document import Paragraph

WIDTHS = ["14%", "9%", "8%", "27%", "13%", "13%", "6%", "10%"]
"""The data column holds a sentence with a path in it: left to size itself it pushes test, trials
and when out of a laptop-wide window."""


def build(app: App, picker: gr.Dropdown, tabs: gr.Tabs, blocks: gr.Blocks) -> None:
    """The table starts from the boards the starting page read (`automl_tl.app.server.Starting`); a poll keeps it current."""
    gr.Markdown(f"Every run in `{app.runs.root}`, newest first, as `automl-tl leaderboard` reads it "
                "(searches started from a terminal show too). Click a run to open it.")
    listed = rows(app.runs.summaries(app.jobs.alive()))
    table = gr.Dataframe(value=listed, headers=HEADER, interactive=False, elem_id="runs-table", wrap=True,
                         column_widths=WIDTHS)
    shown = gr.State(listed)  # what the page shows: a poll that finds the same draws nothing (an open list stays open)
    with gr.Accordion("Compare two runs", open=False):
        with gr.Row():
            first = gr.Dropdown(choices=app.runs.names(), label="Run A", elem_id="compare-a")
            second = gr.Dropdown(choices=app.runs.names(), label="Run B", elem_id="compare-b")
        compared = gr.HTML(elem_classes=["report"], elem_id="comparison")

    def refresh(before: list[list[Any]] | None) -> tuple[Any, ...]:
        now = rows(app.runs.summaries(app.jobs.alive()))
        if now == before:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), before
        names = [r[0] for r in now]
        return (gr.Dataframe(value=now), gr.Dropdown(choices=names), gr.Dropdown(choices=names),
                gr.Dropdown(choices=names), now)

    gr.on([blocks.load, gr.Timer(POLL_SECONDS).tick], refresh, shown, [table, picker, first, second, shown], show_progress="hidden")

    def open_run(event: gr.SelectData) -> tuple[Any, Any]:
        row = event.row_value if event.row_value else None
        if not row:
            return gr.skip(), gr.skip()
        return gr.Dropdown(value=row[0]), gr.Tabs(selected="run")

    table.select(open_run, None, [picker, tabs])

    def compare(a: str | None, b: str | None) -> str:
        if not a or not b:
            return "<p class=\"note\">Pick two runs.</p>"
        try:
            boards = [(name, app.runs.board(name)) for name in (a, b)]
        except UserError as exc:
            return html.fragment([Paragraph(f"Error: {exc.message}")])
        from automl_tl.report import plots  # matplotlib loads with the first figure, not at start-up
        from automl_tl.report.content import comparison

        curves = [plots.score_over_time(board) for _, board in boards]
        return html.fragment([comparison(boards), *curves])

    gr.on([first.change, second.change], compare, [first, second], compared)
