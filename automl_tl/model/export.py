"""`automl-tl export`: a run's final model as a self-contained bundle.

The bundle holds the whole network (backbone and trained tail, fp32) as ONNX or TorchScript, and
what a user of it needs besides: how to preprocess (``preprocessing.json``: the plugin, its
version and options, the preprocessor's fingerprint, the network's input names), the classes
(``labels.json``), the test scores (``metrics.json``) and a model card (``README.md``). It does
not need the run directory, the training data or the study's storage: only automl-tl and the plugin.

The network is traced on a padded batch (the shortest and the longest of the run's own test
examples), so the masking path is the one recorded, and axes that change with the input's length
are exported as dynamic. The exported network is then run against PyTorch on every test example
(or as many as the caller allows, spread over their lengths), each alone and in the padded batches
prediction makes; a bundle is written only when no probability differs by more than `TOLERANCE`.
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

from automl_tl import __version__
from automl_tl.errors import UserError
from automl_tl.model.card import model_card
from automl_tl.model.network import Positional
from automl_tl.model.predictor import BATCH_SIZE, Model, ProgressFn, Runner, load_model, onnx_runner, torchscript_runner
from automl_tl.model.source import BUNDLE_FORMAT, NETWORK_FILES
from automl_tl.registry import discover
from automl_tl.rundir import write_json
from automl_tl.threads import torch_threads

TOLERANCE = 1e-4
"""Largest difference in any class probability between the exported network and PyTorch."""
OPSET = 17

Status = Callable[[str], None]


@dataclass(frozen=True)
class ExportReport:
    out: Path
    format: str
    max_delta: float
    """Largest |probability difference| between the exported network and PyTorch on the checked examples."""
    checked: int
    """Test examples the exported network was checked on."""
    test_examples: int
    """Test examples the run has."""
    seconds: float


def export_bundle(run: Path, out: Path, format: str = "onnx", status: Status = lambda what: None,
                  progress: ProgressFn = lambda done, total: None, check_limit: int | None = None) -> ExportReport:
    """Write the bundle of ``run``'s final model to ``out`` (a new or empty folder).

    The exported network is checked on every test example of the run, or on ``check_limit`` of
    them spread over their lengths; ``progress(done, total)`` follows the check.
    """
    started = time.perf_counter()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder", hint="pass --out a new folder, or remove it")
    status("loading the model")
    model = load_model(run)
    if model.source.kind != "run" or model.network is None:
        raise UserError(f"{run} is already an exported bundle", hint="export from the run directory the search wrote")
    status("reading the run's test examples")
    raws, test_count = _check_examples(model, check_limit)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        status(f"exporting the network ({format})")
        keys = _write_network(model, raws, tmp / NETWORK_FILES[format], format)
        status("checking the exported network against PyTorch")
        exported = onnx_runner(tmp / NETWORK_FILES[format]) if format == "onnx" else torchscript_runner(tmp / NETWORK_FILES[format], keys)
        delta = _max_delta(model, exported, raws, progress)
        if delta > TOLERANCE:
            raise UserError(f"the exported network's probabilities differ from PyTorch's by up to {delta:.2e} "
                            f"(more than {TOLERANCE:g}); no bundle written", hint="try --format torch, or report it")
        _write_files(model, tmp, format, keys)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportReport(out, format, delta, len(raws), test_count, time.perf_counter() - started)


def _check_examples(model: Model, limit: int | None) -> tuple[list[Any], int]:
    """The run's test examples loaded, shortest first (at most ``limit``, spread over their lengths), and how many it has."""
    try:
        test = model.test_examples()
    except UserError as exc:
        raise UserError(f"cannot read the run's test examples, which the export is checked on: {exc.message}",
                        hint="run the export where the search's data is (set AUTOML_TL_DATA to its data home)") from None
    pre = model.preprocessor
    with torch_threads(1):  # per-example work, as in prediction
        raws = [pre.load(example.item) for example in test]
        order = sorted(range(len(raws)), key=lambda i: pre.length(raws[i]))
        n = len(order)
        count = n if limit is None else min(n, max(2, limit))  # the shortest and the longest trace the network
        picks = range(n) if count == n else sorted({round(i * (n - 1) / (count - 1)) for i in range(count)})
    return [raws[order[p]] for p in picks], n


def _write_network(model: Model, raws: Sequence[Any], path: Path, format: str) -> list[str]:
    """Trace the network on a padded batch (shortest and longest example) and save it; returns its input names."""
    assert model.network is not None
    pre = model.preprocessor
    shortest, longest = pre.transform(raws[0], False), pre.transform(raws[-1], False)
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


def _max_delta(model: Model, exported: Runner, raws: Sequence[Any], progress: ProgressFn) -> float:
    """Largest |Δ probability| between PyTorch and the exported network: each example in its padded batch, then alone.

    ``raws`` are sorted by length, so consecutive batches of `BATCH_SIZE` are the ones prediction makes.
    """
    pre = model.preprocessor

    def differ(batch: dict[str, Any]) -> float:
        return float(abs(exported(batch) - model.run_network(batch)).max())

    delta = 0.0
    for start in range(0, len(raws), BATCH_SIZE):
        with torch_threads(1):  # per-example work, and a batch of one is small tensors too
            chunk = [pre.transform(raw, False) for raw in raws[start : start + BATCH_SIZE]]
            delta = max(delta, *(differ(pre.collate([one])) for one in chunk))
        delta = max(delta, differ(pre.collate(chunk)))
        progress(start + len(chunk), len(raws))
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
