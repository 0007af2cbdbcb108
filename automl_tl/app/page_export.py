"""Export: the run's report (`automl-tl report`) and its model bundle (`automl-tl export`), as downloads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from automl_tl.app.ui import App, error_line
from automl_tl.errors import UserError


def build(app: App, picker: gr.Dropdown) -> None:
    gr.Markdown("The same files as `automl-tl report RUN --out report.html` and `automl-tl export RUN --out DIR` "
                "(the bundle zipped). The export checks the exported network against PyTorch on the run's test examples.")
    with gr.Row():
        with gr.Column():
            make_report = gr.Button("Make the report", elem_id="make-report")
            report_file = gr.File(label="Report (HTML)", interactive=False, elem_id="report-file")
        with gr.Column():
            make_bundle = gr.Button("Export the model", elem_id="make-bundle")
            bundle_file = gr.File(label="Model bundle (ONNX, zipped)", interactive=False, elem_id="bundle-file")
    said = gr.Markdown(elem_id="export-message")

    def report(name: str | None) -> tuple[Any, str]:
        from automl_tl.report import write_report  # matplotlib's heavier parts load only when asked

        try:
            board = app.runs.board(name or "", importance=True)
            out = _fresh(app) / f"{name}-report.html"
            write_report([(str(app.runs.path(name or "")), board)], out, "html")
        except UserError as exc:
            return None, error_line(exc)
        return str(out), f"Report of {name}: {out.stat().st_size / 1024:.0f} KB."

    def bundle(name: str | None) -> tuple[Any, str]:
        from automl_tl.model.export import export_bundle  # torch and onnx load only when asked

        try:
            folder = _fresh(app) / f"{name}-model"
            made = export_bundle(app.runs.path(name or ""), folder)
        except UserError as exc:
            return None, error_line(exc)
        archive = shutil.make_archive(str(folder), "zip", folder)
        return archive, (f"Exported {name} as {made.format}: the exported network agrees with PyTorch to "
                         f"{made.max_delta:.1e} on {made.checked} test examples.")

    make_report.click(report, picker, [report_file, said])
    make_bundle.click(bundle, picker, [bundle_file, said])


def _fresh(app: App) -> Path:
    """A new folder among the app's own files (so Gradio may serve what is made there)."""
    return Path(tempfile.mkdtemp(dir=app.folder, prefix="export-"))
