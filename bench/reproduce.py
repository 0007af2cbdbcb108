"""Does `automl-tl predict` give exactly the predictions behind a run's test.json? (issue #18)

Reads the run's own test split again (as the search split it), hands those examples to the
`automl-tl predict` command (paths as arguments; texts one a line on standard input), once for the
run directory and, with ``--bundle``, once for an exported bundle, and scores each output against
the examples' labels with the search's own metrics. Prints each score beside test.json's, and how
many labels the two ways disagree on.

    python bench/reproduce.py runs/sms --bundle /tmp/sms-bundle
    python bench/reproduce.py runs/sms --bundle /tmp/sms-bundle --export   # write the bundle first
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from automl_tl.model.predictor import load_model
from automl_tl.search.metrics import score_of

METRICS = ("accuracy", "macro_f1")


def predict_rows(model_path: Path, items: list[Any], texts: bool) -> tuple[list[dict[str, Any]], float]:
    """`automl-tl predict` over ``items`` in the order given: its rows and its wall time."""
    command = [str(Path(sys.executable).with_name("automl-tl")), "predict", str(model_path)]
    if texts:
        command.append("-")
        feed = "".join(f"{item}\n" for item in items)
    else:
        command += [str(item) for item in items]
        feed = ""
    started = time.perf_counter()
    done = subprocess.run(command, input=feed, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"predict failed ({done.returncode}): {done.stderr[-2000:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if len(rows) != len(items):
        raise SystemExit(f"predict gave {len(rows)} rows for {len(items)} examples")
    return rows, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="A run directory with a test evaluation (test.json).")
    parser.add_argument("--bundle", type=Path, help="An exported bundle of that run, predicted the same way.")
    parser.add_argument("--export", action="store_true", help="Write the bundle first (`automl-tl export RUN --out BUNDLE`).")
    options = parser.parse_args()

    test = json.loads((options.run / "test.json").read_text())
    model = load_model(options.run)
    examples = model.test_examples()
    texts = bool(model.plugin.stdin_examples)
    if texts and any("\n" in str(e.item) for e in examples):
        raise SystemExit("a test text holds a line break: it cannot go one a line on standard input")
    index = {label: i for i, label in enumerate(model.labels)}
    truth = np.array([index[e.label] for e in examples])
    print(f"{options.run}: {len(examples)} test examples; test.json: "
          + ", ".join(f"{m} {test[m]:.4f}" for m in METRICS) + f" on n={test['n']}")

    ways = {"run directory": options.run}
    if options.bundle:
        if options.export:
            started = time.perf_counter()
            subprocess.run([str(Path(sys.executable).with_name("automl-tl")), "export", str(options.run),
                            "--out", str(options.bundle)], check=True)
            print(f"export: {time.perf_counter() - started:.1f} s")
        ways["bundle"] = options.bundle
    labels: dict[str, list[str]] = {}
    for way, path in ways.items():
        rows, wall = predict_rows(path, [e.item for e in examples], texts)
        failed = sum(1 for row in rows if row["error"])
        labels[way] = [row["label"] for row in rows]
        predicted = np.array([index.get(label, -1) for label in labels[way]])
        scores = {m: score_of(truth, predicted, len(model.labels), m) for m in METRICS}
        confusion = np.zeros((len(model.labels),) * 2, dtype=int)
        np.add.at(confusion, (truth, predicted), 1)
        same = confusion.tolist() == test["confusion"]
        print(f"{way:>14}: " + ", ".join(f"{m} {scores[m]:.4f}" for m in METRICS)
              + f"; confusion matrix {'= test.json' if same else '!= test.json'}; {failed} failed; {wall:.1f} s wall")
        if not same:
            print(f"{'':>14}  this confusion: {confusion.tolist()}")
    if len(labels) == 2:
        first, second = labels.values()
        print(f"labels that differ between the two ways: {sum(a != b for a, b in zip(first, second))} of {len(first)}")


if __name__ == "__main__":
    main()
