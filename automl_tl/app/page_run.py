"""Run: one run, live while it runs: leaderboard, progress, learning curves, what mattered, the test.

The page polls the storage (`POLL_SECONDS`), so a search started from a terminal updates here as
one started from the app does; it draws again only when a trial's state, score or epochs changed.
Then the test evaluation, and the test examples the final model got wrong, most confident first,
each shown as what it is (the plugin's `media`): a player, a picture or the text.

The leaderboard is what a reader comes for, so it is drawn first (`refresh`) and the figures
follow in a second step (`figures`). The hyperparameter importance is computed only when asked
for (`what_mattered`): it works over every completed trial, and was the slowest part of the page.
"""

from __future__ import annotations

import shlex
from typing import Any

import gradio as gr

from automl_tl.app.jobs import command_line
from automl_tl.app.runs import run_state
from automl_tl.app.ui import POLL_SECONDS, App, error_line
from automl_tl.errors import UserError
from automl_tl.leaderboard import Leaderboard
from automl_tl.registry import get_plugin
from automl_tl.report import html
from automl_tl.report.content import leaderboard_table, test_blocks
from automl_tl.report.document import Paragraph

MISTAKES_SHOWN = 24
"""The most confident mistakes shown; the count says how many there are in all."""


def version(board: Leaderboard, alive: bool) -> tuple[Any, ...]:
    """What the page draws from: when it is unchanged, nothing is drawn again."""
    return (run_state(board, alive), board.test is not None, board.interrupted,
            tuple((r.trial, r.state, r.score, len(r.history), r.reason) for r in board.rows))


def status_line(board: Leaderboard, state: str) -> str:
    c = board.counts
    parts = [f"**{state}**", f"{board.run.get('modality', '?')} · {board.run.get('data', {}).get('description', '')}",
             f"{len(board.rows)} trials: {c.get('complete', 0)} complete, {c.get('pruned', 0)} pruned, "
             f"{c.get('fail', 0)} failed" + (f", {c['running']} running" if c.get("running") else "")]
    if board.best is not None and board.best.score is not None:
        parts.append(f"best validation {board.objective} {board.best.score:.4f} (trial {board.best.trial})")
    return " — ".join(parts)


def recorded_command(board: Leaderboard) -> str:
    """The command the run's last search was started with, as a user would type it."""
    command = board.run.get("command") or []
    return "automl-tl " + shlex.join(command[1:]) if command else ""


def refresh(app: App, name: str | None, before: Any) -> tuple[Any, ...]:
    """The page's text and leaderboard; the last value is what they were drawn from (`version`), for `figures`."""
    if not name:
        return ("Pick a run above, or start one on New search.", "", gr.Textbox(visible=False), gr.Button(visible=False),
                gr.Button(visible=False), "", None)
    job = app.jobs.get(name)
    alive = job is not None and job.alive
    controls = (gr.Textbox(value=app.jobs.output(name), visible=job is not None), gr.Button(visible=alive),
                gr.Button(visible=job is not None and not alive))
    try:
        board = app.runs.board(name)
    except UserError as exc:
        said = ("**starting** — the search is reading its data" if alive else
                "**stopped** before the search wrote its run — what it printed is below" if job else error_line(exc))
        return (said, command_line(job.args) if job else "", *controls, "", None)
    now = (name, version(board, alive))
    state = run_state(board, alive)
    if now == before:
        return (status_line(board, state), gr.skip(), *controls, gr.skip(), before)
    app.allow_data(name)
    return (status_line(board, state), command_line(job.args) if job else recorded_command(board), *controls,
            html.fragment([leaderboard_table(board)]), now)


def figures(app: App, name: str | None, now: Any, drawn: Any) -> tuple[Any, ...]:
    """Progress and test evaluation, drawn after `refresh` (from the board it kept); ``drawn``: what they show now."""
    if now == drawn:
        return gr.skip(), gr.skip(), drawn
    if now is None or not name:
        return "", "", None
    from automl_tl.report import plots  # matplotlib loads with the first figure, not at start-up

    try:
        board = app.runs.board(name)
    except UserError:
        return "", "", None
    classes = board.run.get("data", {}).get("classes", [])
    return (html.fragment([plots.score_over_time(board), plots.epoch_curves(board)]),
            html.fragment(test_blocks(board, classes)), now)


def what_mattered(app: App, name: str | None) -> str:
    """The hyperparameter importance of the run as it is now, or why there is none."""
    if not name:
        return html.fragment([Paragraph("Pick a run first.", note=True)])
    from automl_tl.report import plots

    try:
        board = app.runs.board(name, importance=True)
    except UserError as exc:
        return html.fragment([Paragraph(f"Error: {exc.message}")])
    return html.fragment([plots.importance(board)])  # the figure, or the sentence saying why there is none


def build(app: App, picker: gr.Dropdown, tab: gr.Tab) -> None:
    status = gr.Markdown(elem_id="run-status")
    with gr.Row():
        stop = gr.Button("Stop (Ctrl-C)", variant="stop", visible=False, elem_id="stop", scale=0)
        resume = gr.Button("Resume", visible=False, elem_id="resume", scale=0)
        command = gr.Code(label="The equivalent command", language="shell", interactive=False, elem_id="run-command", scale=4)
    log = gr.Textbox(label="What the search printed (last lines)", lines=6, max_lines=12, visible=False, elem_id="run-log")
    gr.Markdown("### Leaderboard\nThe rows and columns of `automl-tl leaderboard`.")
    board_html = gr.HTML(elem_classes=["report"], elem_id="leaderboard")
    gr.Markdown("### Progress")
    progress_html = gr.HTML(elem_classes=["report"], elem_id="progress")
    gr.Markdown("### What mattered")
    with gr.Row():
        weigh = gr.Button("Compute the hyperparameter importance", elem_id="weigh", scale=0)
        gr.Markdown("PED-ANOVA over the completed trials so far; computed when asked for, as it takes a moment.")
    importance_html = gr.HTML(elem_classes=["report"], elem_id="importance")
    gr.Markdown("### Test evaluation")
    test_html = gr.HTML(elem_classes=["report"], elem_id="test")
    with gr.Row():
        find = gr.Button("Show the test examples it got wrong", elem_id="find-mistakes", scale=0)
        mistakes_note = gr.Markdown(elem_id="mistakes-note")
    mistakes = gr.State([])
    seen = gr.State(None)  # what the text and leaderboard were drawn from
    drawn = gr.State(None)  # what the figures were drawn from

    def draw(triggers: list[Any], trigger_mode: str) -> None:
        gr.on(triggers, lambda name, before: refresh(app, name, before), [picker, seen],
              [status, command, log, stop, resume, board_html, seen], show_progress="hidden", trigger_mode=trigger_mode,
              ).then(lambda name, now, before: figures(app, name, now, before), [picker, seen, drawn],
                     [progress_html, test_html, drawn], show_progress="hidden")

    # a poll still drawing when the next is due skips it; a pick (or the tab's opening, which draws at
    # once rather than at its timer's first tick) made while one is drawing is drawn after it
    draw([gr.Timer(POLL_SECONDS).tick], "once")
    draw([picker.change, tab.select], "always_last")
    weigh.click(lambda name: what_mattered(app, name), picker, importance_html)

    def do_stop(name: str | None) -> str:
        return ("Stopping: the running trial is being marked interrupted." if name and app.jobs.stop(name)
                else "The app has no running search of this run.")

    def do_resume(name: str | None) -> str:
        if not name:
            return "Pick a run first."
        try:
            job = app.jobs.resume(name)
        except UserError as exc:
            return error_line(exc)
        return f"Resumed: `{command_line(job.args)}`"

    stop.click(do_stop, picker, mistakes_note)
    resume.click(do_resume, picker, mistakes_note)

    def find_mistakes(name: str | None) -> tuple[str, list[dict[str, Any]]]:
        if not name:
            return "Pick a run first.", []
        try:
            run = app.runs.path(name)
            found = app.models.mistakes(run)
            media = get_plugin(app.runs.board(name).run.get("modality", "")).media
        except UserError as exc:
            return error_line(exc), []
        app.allow_data(name)
        shown = found.wrong[:MISTAKES_SHOWN]
        note = (f"{len(found.wrong)} of {found.tested} test examples are wrong"
                + (f"; the {len(shown)} the model was surest of are shown" if len(shown) < len(found.wrong) else "")
                + ", most confident first.")
        return note, [{"item": m.item, "label": m.label, "predicted": m.predicted, "confidence": m.confidence, "media": media}
                      for m in shown]

    find.click(find_mistakes, picker, [mistakes_note, mistakes])

    @gr.render(inputs=mistakes)
    def gallery(shown: list[dict[str, Any]]) -> None:
        with gr.Row(elem_id="mistakes", equal_height=False):
            for i, m in enumerate(shown):
                caption = f"true {m['label']} · predicted {m['predicted']} ({m['confidence']:.0%})"
                with gr.Column(min_width=240, elem_classes=["mistake"]):
                    media_view(m["media"], m["item"], f"#{i + 1}: {caption}")

    # they were of the run before; clearing is instant, so no timer is drawn in them while it waits its turn
    picker.change(lambda: ("", [], ""), None, [mistakes_note, mistakes, importance_html], show_progress="hidden")


def media_view(media: str | None, item: Any, label: str) -> gr.Component:
    """An example as what it is: audio plays, an image shows, a text reads; anything else as its text."""
    if media == "audio":
        return gr.Audio(value=str(item), label=label, interactive=False)
    if media == "image":
        return gr.Image(value=str(item), label=label, interactive=False, height=180)
    return gr.Textbox(value=str(item)[:2000], label=label, interactive=False, lines=3, max_lines=6)
