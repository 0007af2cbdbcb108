"""How well each validator tracks target accuracy, and what each adaptation method bought (issue #19).

Reads a finished domain-adaptation run (a search with ``--target-test``) and prints, as Markdown:

* Spearman's rank correlation, across the run's completed trials, between each validator's value
  (recorded for every trial, whichever one the search optimised) and the trial's target test
  accuracy (recorded for evaluation only);
* the target test accuracy of the best source-only trial (chosen by source validation), of each
  method's best trial (chosen by the run's validator), and of the model the search chose (refit,
  from test.json).

    .venv/bin/python bench/adaptation.py runs/text-amazon_cells_labelled
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from automl_tl.leaderboard import Leaderboard, Row
from automl_tl.vocabulary.adaptations import ADAPTATIONS, VALIDATORS


def ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share their mean rank)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float:
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx = sum((a - mx) ** 2 for a in rx) ** 0.5
    sy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (sx * sy) if sx and sy else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    board = Leaderboard.of_run(args.run)
    metric = board.run.get("selection", {}).get("source_metric", "accuracy")
    rows = [r for r in board.rows if r.state == "complete" and r.target_test]
    if not rows:
        sys.exit("no completed trial with a target test score: run the search with --target-test")
    truth = [r.target_test["accuracy"] for r in rows]
    print(f"{len(rows)} completed trials of {board.study}; selection by {board.objective}\n")
    print("| validator | Spearman ρ with target test accuracy |\n|---|---|")
    for name in VALIDATORS:
        key = metric if name == "source" else name
        values = [r.scores.get(key) for r in rows]
        if all(v is not None for v in values):
            print(f"| {name} ({VALIDATORS[name].label}) | {spearman(values, truth):+.2f} |")

    def best(candidates: list[Row], key: str) -> Row | None:
        return max(candidates, key=lambda r: r.scores.get(key, float("-inf")), default=None)

    print("\n| model | trial | source val | target test accuracy |\n|---|---|---|---|")
    source_only = [r for r in rows if r.params.get("adaptation", "none") == "none"]
    for label, row in [("source only (best source validation)", best(source_only, metric))] + [
        (f"{ADAPTATIONS[name].label} (best {board.objective})", best([r for r in rows if r.params.get("adaptation") == name],
                                                                   board.objective))
        for name in ADAPTATIONS
    ]:
        if row is not None:
            print(f"| {label} | {row.trial} | {row.scores.get(metric, float('nan')):.4f} | {row.target_test['accuracy']:.4f} |")
    test = json.loads((args.run / "test.json").read_text()) if (args.run / "test.json").exists() else {}
    if test.get("target"):
        print(f"| the search's choice, refit on train+validation | {test['trial']} | | {test['target']['accuracy']:.4f} |")


if __name__ == "__main__":
    main()
