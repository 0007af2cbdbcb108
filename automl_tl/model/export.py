"""`automl-tl export`: a run's final model as a self-contained bundle.

The bundle holds the whole network (backbone and trained tail, fp32) as ONNX or TorchScript, and
what a user of it needs besides: how to preprocess (``preprocessing.json``: the plugin, its
version and options, the preprocessor's fingerprint, the network's input names), the classes
(``labels.json``), the test scores (``metrics.json``) and a model card (``README.md``). It does
not need the run directory, the training data or the study's storage: only automl-tl and the plugin.

The network is traced on a padded batch (the shortest and the longest of the run's own test
examples), so the masking path is the one recorded, and axes that change with the input's length
are exported as dynamic. The exported network is then run against PyTorch on a sample of the
test examples; a bundle is written only when no probability differs by more than `TOLERANCE`.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from automl_tl import __version__
from automl_tl.errors import UserError
from automl_tl.model.card import model_card
from automl_tl.model.network import Positional
from automl_tl.model.predictor import Model, Runner, load_model, onnx_runner, torchscript_runner
from automl_tl.model.source import BUNDLE_FORMAT, NETWORK_FILES
from automl_tl.registry import discover
from automl_tl.rundir import write_json

TOLERANCE = 1e-4
"""Largest difference in any class probability between the exported network and PyTorch."""
CHECK_EXAMPLES = 64
"""Test examples the exported network is checked on (spread over their lengths)."""
OPSET = 17

Status = Callable[[str], None]


@dataclass(frozen=True)
class ExportReport:
    out: Path
    format: str
    max_delta: float
    """Largest |probability difference| between the exported network and PyTorch on the checked examples."""
    checked: int
    seconds: float


def export_bundle(run: Path, out: Path, format: str = "onnx", status: Status = lambda what: None) -> ExportReport:
    """Write the bundle of ``run``'s final model to ``out`` (a new or empty folder)."""
    started = time.perf_counter()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder", hint="pass --out a new folder, or remove it")
    status("loading the model")
    model = load_model(run)
    if model.source.kind != "run" or model.network is None:
        raise UserError(f"{run} is already an exported bundle", hint="export from the run directory the search wrote")
    status("reading the run's test examples")
    inputs = _check_inputs(model)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        status(f"exporting the network ({format})")
        keys = _write_network(model, inputs, tmp / NETWORK_FILES[format], format)
        status("checking the exported network against PyTorch")
        exported = onnx_runner(tmp / NETWORK_FILES[format]) if format == "onnx" else torchscript_runner(tmp / NETWORK_FILES[format], keys)
        delta = _max_delta(model, exported, inputs)
        if delta > TOLERANCE:
            raise UserError(f"the exported network's probabilities differ from PyTorch's by up to {delta:.2e} "
                            f"(more than {TOLERANCE:g}); no bundle written", hint="try --format torch, or report it")
        _write_files(model, tmp, format, keys)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportReport(out, format, delta, len(inputs), time.perf_counter() - started)


def _check_inputs(model: Model) -> list[dict[str, Tensor]]:
    """Preprocessed test examples of the run, at most `CHECK_EXAMPLES`, spread over their lengths, shortest first."""
    try:
        test = model.test_examples()
    except UserError as exc:
        raise UserError(f"cannot read the run's test examples, which the export is checked on: {exc.message}",
                        hint="run the export where the search's data is (set AUTOML_TL_DATA to its data home)") from None
    pre = model.preprocessor
    raws = [pre.load(example.item) for example in test]
    order = sorted(range(len(raws)), key=lambda i: pre.length(raws[i]))
    step = max(1.0, len(order) / CHECK_EXAMPLES)
    picks = sorted({min(len(order) - 1, int(i * step)) for i in range(min(CHECK_EXAMPLES, len(order)))} | {len(order) - 1})
    return [pre.transform(raws[order[p]], False) for p in picks]


def _write_network(model: Model, inputs: Sequence[dict[str, Tensor]], path: Path, format: str) -> list[str]:
    """Trace the network on a padded batch (shortest and longest example) and save it; returns its input names."""
    assert model.network is not None
    pre = model.preprocessor
    shortest, longest = inputs[0], inputs[-1]
    batch = pre.collate([shortest, longest])
    alone = pre.collate([shortest])
    keys = list(batch)
    axes = {key: {0: "batch", **{d: "length" for d in range(1, batch[key].dim()) if batch[key].shape[d] != alone[key].shape[d]}}
            for key in keys}
    wrapper = Positional(model.network, keys).eval()
    args = tuple(batch[key] for key in keys)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it records as constants
        if format == "onnx":
            torch.onnx.export(wrapper, args, str(path), input_names=keys, output_names=["probabilities"],
                              dynamic_axes={**axes, "probabilities": {0: "batch"}}, opset_version=OPSET, dynamo=False)
        else:
            torch.jit.save(torch.jit.trace(wrapper, args, check_trace=False), str(path))
    return keys


def _max_delta(model: Model, exported: Runner, inputs: Sequence[dict[str, Tensor]]) -> float:
    """Largest |Δ probability| between PyTorch and the exported network, one by one and in padded batches.

    ``inputs`` are sorted by length, so consecutive batches are the ones prediction makes.
    """
    delta = 0.0
    for size in (1, 16):
        for start in range(0, len(inputs), size):
            batch = model.preprocessor.collate(list(inputs[start : start + size]))
            delta = max(delta, float(abs(exported(batch) - model.run_network(batch)).max()))
    return delta


def _write_files(model: Model, folder: Path, format: str, keys: list[str]) -> None:
    source = model.source
    entry = discover().get(source.modality)
    distribution = entry.distribution if entry is not None else source.modality
    write_json(folder / "preprocessing.json", {
        "bundle_format": BUNDLE_FORMAT,
        "format": format,
        "plugin": source.modality,
        "plugin_distribution": distribution,
        "plugin_version": entry.version if entry is not None else None,
        "automl_tl_version": __version__,
        "backbone": source.backbone,
        "options": source.options,
        "preprocessor": model.preprocessor.fingerprint,
        "inputs": keys,
        "output": "probabilities",
    })
    write_json(folder / "labels.json", source.classes)
    metrics: dict[str, Any] = {**source.card, "configuration": source.params}
    write_json(folder / "metrics.json", metrics)
    readme = model_card(source, model.plugin.pipeline_tag, distribution, entry.version if entry else None, NETWORK_FILES[format])
    (folder / "README.md").write_text(readme, encoding="utf-8")
