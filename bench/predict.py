"""How fast a trained model predicts: from the run directory, from its ONNX bundle, and the floor.

The floor is the bare PyTorch network over the same length-sorted batches, already preprocessed:
what is left once decoding and preprocessing cost nothing. Start-up is the wall and CPU time of
``automl-tl predict`` on one file in a fresh process (imports, plugin, backbone or preprocessor,
network), the least of three runs. With labelled inputs (``--label-from-name``: FSDD names
``{label}_{speaker}_{n}.wav``) it also prints each way's accuracy, to compare with the run's
``test.json``.

    .venv/bin/python bench/predict.py runs/speech-4 --bundle /tmp/speech-4-onnx \\
        --inputs /work/shared/data/fsdd/recordings --glob '*_george_*.wav' --glob '*_theo_*.wav' --label-from-name
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from automl_tl import load_model
from automl_tl.model.export import export_bundle
from automl_tl.search.features import length_batches
from automl_tl.model.predictor import BATCH_SIZE

STARTUP_RUNS = 3
"""Start-up is timed this many times and the least kept: other processes only ever add to it."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--bundle", type=Path, help="the run's ONNX bundle (exported there first when missing)")
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--glob", action="append", default=None, help="file patterns under --inputs (repeatable)")
    parser.add_argument("--label-from-name", action="store_true", help="the label is the file name up to its first _")
    args = parser.parse_args()
    files = sorted({p for pattern in args.glob or ["*"] for p in args.inputs.glob(pattern)})
    bundle = args.bundle or args.run.parent / f"{args.run.name}-onnx"
    if not bundle.exists():
        report = export_bundle(args.run, bundle)
        print(f"export: {report.seconds:.1f} s, max |Δ probability| {report.max_delta:.2e} on {report.checked} test examples")
    result: dict[str, object] = {"inputs": len(files), "torch_threads": torch.get_num_threads()}
    for name, source in (("run", args.run), ("onnx", bundle)):
        model = load_model(source)
        started = time.perf_counter()
        predictions = model.classify([str(f) for f in files])
        seconds = time.perf_counter() - started
        result[f"{name}_examples_per_s"] = round(len(files) / seconds, 1)
        if args.label_from_name:
            correct = sum(p.label == f.name.split("_")[0] for p, f in zip(predictions, files, strict=True))
            result[f"{name}_accuracy"] = correct / len(files)
        if name == "run":
            result["floor_examples_per_s"] = round(floor(model, files), 1)
        wall, cpu = startup(source, files[0])
        result[f"{name}_startup_s"], result[f"{name}_startup_cpu_s"] = round(wall, 2), round(cpu, 2)
    test = args.run / "test.json"
    if test.exists():
        result["test_json_accuracy"] = json.loads(test.read_text())["accuracy"]
    print(json.dumps(result, indent=2))


def floor(model, files: list[Path]) -> float:
    """Examples per second of the bare network over the length-sorted batches, inputs preprocessed beforehand."""
    pre = model.preprocessor
    raws = [pre.load(f) for f in files]
    batches = [pre.collate([pre.transform(raws[i], False) for i in batch])
               for batch in length_batches([pre.length(r) for r in raws], BATCH_SIZE)]
    assert model.network is not None
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            model.network(batch)
    return len(files) / (time.perf_counter() - started)


def startup(source: Path, file: Path, runs: int = STARTUP_RUNS) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of ``automl-tl predict SOURCE FILE`` in a new process, the least of ``runs``.

    On a shared machine the wall time waits for cores that others hold; the CPU time is the work itself.
    """
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "automl-tl"), "predict", str(source), str(file)],
                       check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), min(cpus)


if __name__ == "__main__":
    main()
