"""`automl-tl predict`: classify files, folders, manifests or standard input with a trained model.

A thin layer over the Python API (`automl_tl.load_model`): it expands the INPUT arguments, calls
`Model.classify` and writes one row per example. A bad example is a row with an ``error`` and the
rest go on; the exit code is then 1, so scripts notice without parsing the output.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Optional, TextIO

import typer
from rich.markup import escape

from automl_tl.cli.errors import handles_user_errors, stderr
from automl_tl.cli.feedback import feedback
from automl_tl.errors import UserError


class OutputFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


@handles_user_errors
def predict(
    run: Path = typer.Argument(..., help="A run directory (its final model) or a bundle from `automl-tl export`."),
    inputs: list[str] = typer.Argument(..., metavar="INPUT...",
                                       help="Files, folders, manifests (CSV/JSONL in the plugin's data format), or - for standard input."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the rows to this file instead of standard output."),
    format: OutputFormat = typer.Option(OutputFormat.jsonl, "--format", "-f", help="jsonl (one JSON object a line) or csv."),
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="How many of the most likely classes each row lists."),
    probs: bool = typer.Option(False, "--probs", help="Add every class's probability (one field or column per class)."),
) -> None:
    """Predict the class of each input; rows of input, label, score and the top K classes."""
    from automl_tl.model.inputs import Input, expand  # torch loads only when a model is used
    from automl_tl.model.predictor import load_model

    with feedback("loading the model") as shown:
        model = load_model(run)
        entries = expand(inputs, model.plugin, model.source.options, sys.stdin)
        if not entries:
            raise UserError(f"no inputs to predict in {', '.join(inputs)}",
                            hint=f"give files, folders or a manifest the {model.source.modality} plugin reads")
        items = [e.item for e in entries if isinstance(e, Input)]
        shown.status("predicting")
        predictions = iter(model.classify(items, min(top_k, len(model.labels)), probs, shown.progress))
    rows = [_row(e.name, next(predictions)) if isinstance(e, Input) else _failed(e.name, e.error) for e in entries]
    with _output(out) as stream:
        write = _write_jsonl if format is OutputFormat.jsonl else _write_csv
        write(stream, rows, top_k=min(top_k, len(model.labels)), classes=model.labels if probs else [])
    failed = [row for row in rows if row["error"]]
    summary = f"{len(rows) - len(failed)} of {len(rows)} input(s) predicted" + (f" (written to {out})" if out else "")
    if failed:
        first = failed[0]
        stderr.print(escape(f"{summary}; {len(failed)} failed, first {first['input'][:120]}: {first['error']}"),
                     emoji=False, soft_wrap=True)
        raise typer.Exit(1)
    stderr.print(escape(summary), emoji=False)


def _failed(name: str, error: str) -> dict[str, Any]:
    return {"input": name, "label": None, "score": None, "top_k": [], "error": error}


def _row(name: str, prediction: Any) -> dict[str, Any]:
    if prediction.error is not None:
        return _failed(name, prediction.error)
    row = {"input": name, "label": prediction.label, "score": prediction.score, "top_k": prediction.top}
    if prediction.probs is not None:
        row["probs"] = prediction.probs
    return {**row, "error": None}


def _write_jsonl(stream: TextIO, rows: Sequence[dict[str, Any]], top_k: int, classes: Sequence[str]) -> None:
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_csv(stream: TextIO, rows: Sequence[dict[str, Any]], top_k: int, classes: Sequence[str]) -> None:
    """input, label, score, then label_2, score_2... up to K, then one prob_<class> column per class, then error."""
    ranked = [f"{what}_{k}" for k in range(2, top_k + 1) for what in ("label", "score")]
    header = ["input", "label", "score", *ranked, *(f"prob_{c}" for c in classes), "error"]
    writer = csv.writer(stream)
    writer.writerow(header)
    for row in rows:
        cells: dict[str, Any] = {"input": row["input"], "error": row.get("error") or ""}
        for k, entry in enumerate(row.get("top_k", []), start=1):
            cells["label" if k == 1 else f"label_{k}"] = entry["label"]
            cells["score" if k == 1 else f"score_{k}"] = entry["score"]
        cells.update({f"prob_{c}": p for c, p in row.get("probs", {}).items()})
        writer.writerow([cells.get(column, "") for column in header])


@contextmanager
def _output(out: Path | None) -> Iterator[TextIO]:
    if out is None:
        yield sys.stdout
        return
    try:
        stream = out.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}", hint="pass --out a file in a writable folder") from None
    with stream:
        yield stream
