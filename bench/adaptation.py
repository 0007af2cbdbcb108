"""How well each validator tracks target accuracy, and what each adaptation method bought (issue #19).

Reads a finished domain-adaptation run (a search with ``--target-test``) and prints, as Markdown:

* Spearman's rank correlation, across the run's completed trials, between each validator's value
  (recorded for every trial, whichever one the search optimised) and the trial's target test
  accuracy (recorded for evaluation only);
* the target test accuracy of the best source-only trial (chosen by source validation), of each
  method's best trial (chosen by the run's validator), and of the model the search chose (refit,
  from test.json);
* with ``--per-group``, the chosen model's target test accuracy per group (per speaker on the
  speech pair: does the model fail some voices or accents more than others?). The run stores
  no per-example predictions, so its final model predicts the target test examples again
  (`load_model`, as `automl-tl predict` does; the run's data must still be where the search read
  it); the whole set's accuracy is printed beside test.json's, which it must equal;
* with ``--also LABEL=RUN`` (repeatable), another run's final model on the same examples, as a
  row and, with ``--per-group``, a column: e.g. the oracle, a model trained on labelled target
  data and tested on the same speakers. Its examples are its target test set, else its own test
  split; a run tested on other examples is refused, not set beside.

    .venv/bin/python bench/adaptation.py runs/text-amazon_cells_labelled
    .venv/bin/python bench/adaptation.py runs/speech-pair --per-group --also oracle=runs/speech-digits
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from automl_tl.contract import Example
from automl_tl.datahome import data_home
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


def group_scores(examples: Sequence[Example], predicted: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Per group, in name order, (correct, examples): examples without a group count under "(none)"."""
    scores: dict[str, tuple[int, int]] = {}
    for example, label in zip(examples, predicted, strict=True):
        group = example.group if example.group is not None else "(none)"
        right, n = scores.get(group, (0, 0))
        scores[group] = (right + (label == example.label), n + 1)
    return dict(sorted(scores.items()))


@dataclass
class Tested:
    """A run's final model on its test examples (the target test set when the run has one)."""

    examples: list[Example]
    groups: dict[str, tuple[int, int]]
    recorded: float
    """test.json's accuracy on those examples, which the predictions here must reproduce."""

    @property
    def accuracy(self) -> float:
        return sum(right for right, _ in self.groups.values()) / len(self.examples)

    def same_examples(self, other: Tested) -> bool:
        """The same items with the same labels (files compared where their links lead)."""
        def key(e: Example) -> tuple[str, str]:
            return (str(Path(e.item).resolve()) if isinstance(e.item, Path) else str(e.item), e.label)

        return sorted(map(key, self.examples)) == sorted(map(key, other.examples))


def tested(run: Path) -> Tested:
    from automl_tl.model.predictor import load_model  # torch loads only when predictions are asked for

    model = load_model(run)
    data = model.run_data()
    test = json.loads((run / "test.json").read_text())
    on_target = data.target is not None and bool(data.target.test)
    examples = data.target.test if on_target else data.splits.test
    predicted = [top[0]["label"] for top in model.predict([e.item for e in examples])]
    return Tested(examples, group_scores(examples, predicted), (test["target"] if on_target else test)["accuracy"])


def accents() -> dict[str, str]:
    """FSDD's speakers' accents (the data home's fsdd/speakers.json), to name beside the per-speaker rows."""
    path = data_home() / "fsdd" / "speakers.json"
    return {name: info.get("accent", "") for name, info in json.loads(path.read_text()).items()} if path.is_file() else {}


def print_per_group(models: dict[str, Tested]) -> None:
    first = next(iter(models.values()))
    known = accents()
    print("\n| group | accent | n | " + " | ".join(models) + " |\n|---|---|---|" + "---|" * len(models))
    for group, (_, n) in first.groups.items():
        cells = [f"{m.groups[group][0] / m.groups[group][1]:.4f}" if group in m.groups else "" for m in models.values()]
        print(f"| {group} | {known.get(group, '')} | {n} | " + " | ".join(cells) + " |")
    print(f"| all | | {len(first.examples)} | " + " | ".join(f"{m.accuracy:.4f}" for m in models.values()) + " |")
    print("\n(recomputed from predictions; test.json: " + ", ".join(f"{name} {m.recorded:.4f}" for name, m in models.items()) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--per-group", action="store_true", help="the chosen model's target test accuracy per group")
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=RUN",
                        help="another run's final model on the same test examples (e.g. oracle=runs/speech-digits)")
    args = parser.parse_args()
    also = [item.partition("=")[::2] for item in args.also]
    for label, run in also:
        if not label or not run or not (Path(run) / "test.json").is_file():
            parser.error(f"--also {label}={run}: give LABEL=RUN, RUN a run directory with a test.json")
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
    if not (also or args.per_group):
        return
    models = {"chosen": tested(args.run)}
    for label, run in also:
        other = tested(Path(run))
        if not other.same_examples(models["chosen"]):
            sys.exit(f"{run} was tested on other examples than {args.run}'s target test set: not comparable")
        models[label] = other
        print(f"| {label} ({run}) | | | {other.recorded:.4f} |")
    if args.per_group:
        print_per_group(models)


if __name__ == "__main__":
    main()
