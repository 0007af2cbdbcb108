"""`automl-tl export`: a run's final model as a bundle that needs neither the run nor its data."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from automl_tl.cli.errors import handles_user_errors
from automl_tl.cli.feedback import feedback


class ExportFormat(str, Enum):
    onnx = "onnx"
    torch = "torch"


@handles_user_errors
def export(
    run: Path = typer.Argument(..., help="A run directory, e.g. runs/speech-default."),
    out: Path = typer.Option(..., "--out", "-o", help="The bundle's folder (new, or empty)."),
    format: ExportFormat = typer.Option(ExportFormat.onnx, "--format", "-f",
                                        help="onnx (runs in onnxruntime) or torch (TorchScript)."),
    check_examples: Optional[int] = typer.Option(
        None, "--check-examples", min=2, metavar="N",
        help="Check the exported network against PyTorch on N of the run's test examples, spread over their lengths "
             "(default: every one)."),
) -> None:
    """Write the final model (network, preprocessing settings, labels, test metrics, model card) to a folder."""
    from automl_tl.model.export import TOLERANCE, export_bundle  # torch loads only when a model is exported

    network_format = "onnx" if format is ExportFormat.onnx else "torchscript"
    with feedback("exporting") as shown:
        report = export_bundle(run, out, network_format, shown.status, shown.progress, check_examples)
    Console().print(
        f"wrote {report.out} ({report.format}) in {report.seconds:.1f} s; checked against PyTorch on {report.checked} "
        f"of {report.test_examples} test example(s): max |Δ probability| {report.max_delta:.2e} (limit {TOLERANCE:g})\n"
        f"predict with: automl-tl predict {report.out} INPUT...", highlight=False, soft_wrap=True)
