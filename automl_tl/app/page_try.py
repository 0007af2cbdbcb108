"""Try it: a file, a recording, a webcam picture or a text → the run's top classes with probabilities.

Prediction goes through `automl_tl.load_model(run).predict`, the public Python API, and a dropped
file is read as `automl-tl predict` reads it (the plugin's `read_inputs`), so the app, the command
line and a script give the same answer. Which inputs show follows the run's plugin (`media`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import gradio as gr

from automl_tl.app.ui import App, error_line
from automl_tl.errors import UserError
from automl_tl.model.inputs import Unreadable, expand
from automl_tl.registry import get_plugin

TOP_K = 5


def build(app: App, picker: gr.Dropdown, blocks: gr.Blocks) -> None:
    """The inputs shown follow the picked run's plugin, found when the page loads (reading a board) and as it changes."""
    about = gr.Markdown(elem_id="try-about")
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="Drop a file (read as `automl-tl predict` reads it)", type="filepath", elem_id="try-file")
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Or record from the microphone",
                             visible=False, elem_id="try-audio")
            image = gr.Image(sources=["upload", "webcam"], type="filepath", label="Or take a webcam picture",
                             visible=False, elem_id="try-image")
            text = gr.Textbox(label="Or type a text (Enter predicts)", visible=False, elem_id="try-text")
            top_k = gr.Slider(1, 10, value=TOP_K, step=1, label="Top k")
        with gr.Column():
            said = gr.Markdown(elem_id="try-message")
            label = gr.Label(label="Prediction", elem_id="prediction")

    def inputs_for(name: str | None) -> tuple[Any, ...]:
        kind = _media(app, name)
        return (_about(app, name), gr.Audio(visible=kind == "audio"), gr.Image(visible=kind == "image"),
                gr.Textbox(visible=kind == "text"))

    gr.on([blocks.load, picker.change], inputs_for, picker, [about, audio, image, text], trigger_mode="always_last")

    def predict(name: str | None, source: str | None, k: float, as_text: bool = False) -> tuple[str, Any]:
        if not name or not source:
            return ("Pick a run above." if not name else ""), None
        try:
            model = app.models.model(app.runs.path(name))
            if as_text:
                items = [source]
            else:
                entries = expand([source], model.plugin, model.source.options, io.StringIO())
                bad = next((e for e in entries if isinstance(e, Unreadable)), None)
                if bad is not None or not entries:
                    raise UserError(f"cannot read {Path(source).name}: {bad.error if bad else 'nothing the plugin reads'}")
                items = [entries[0].item]
            top = model.predict(items, top_k=int(k))[0]
        except UserError as exc:
            return error_line(exc), None
        shown = f"{Path(source).name}: " if not as_text else ""
        return f"{shown}**{top[0]['label']}** ({top[0]['score']:.1%})", {p["label"]: p["score"] for p in top}

    upload.change(lambda n, f, k: predict(n, f, k), [picker, upload, top_k], [said, label])
    audio.change(lambda n, f, k: predict(n, f, k), [picker, audio, top_k], [said, label])
    image.change(lambda n, f, k: predict(n, f, k), [picker, image, top_k], [said, label])
    text.submit(lambda n, t, k: predict(n, t, k, as_text=True), [picker, text, top_k], [said, label])


def _media(app: App, name: str | None) -> str | None:
    try:
        return get_plugin(app.runs.board(name).run.get("modality", "")).media if name else None
    except UserError:
        return None


def _about(app: App, name: str | None) -> str:
    if not name:
        return "Pick a run above."
    try:
        board = app.runs.board(name)
    except UserError as exc:
        return error_line(exc)
    classes = board.run.get("data", {}).get("classes", [])
    return (f"The final model of **{name}** ({board.run.get('modality', '?')}, {len(classes)} classes), through "
            f"`automl_tl.load_model(\"{app.runs.path(name)}\").predict(...)`.")
