"""Shared by the benchmark scripts in bench/: a recipe resolved as the search resolves it, and its results.

Baselines are only comparable with the search when they see exactly its data, so every script
gets its splits through the plugin and `automl_tl.search.inputs.load_data`, from the same
recipe the search runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from automl_tl.backbone import Backbone
from automl_tl.config import RunConfig, plugin_options, read_recipe, resolve
from automl_tl.contract import Example, ModalityPlugin
from automl_tl.datahome import data_home
from automl_tl.errors import UserError
from automl_tl.registry import get_plugin
from automl_tl.search.inputs import SearchRequest, environment, load_data
from automl_tl.search.features import FeatureStore
from automl_tl.splits import Splits

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
PROBE_MAX_ITER = 2000
"""Enough L-BFGS iterations for standardised features of a few thousand examples to converge."""


# --- baselines (bench/text.py, bench/vision.py): recipe → splits, probes, one results table ---


@dataclass
class Bench:
    """A recipe resolved as `automl-tl search --recipe` resolves it, with the very splits the search uses.

    The plugin instance is kept because loading data configures it (the text plugin fits its
    ``max_length`` to the training texts it read), so backbones must come from the same instance.
    """

    recipe: Path
    plugin: ModalityPlugin
    config: RunConfig
    splits: Splits

    @property
    def options(self) -> Any:
        """The plugin's options object, as the search hands it to the plugin."""
        return plugin_options(self.plugin, self.config.options)


@dataclass
class Result:
    """One row of a benchmark table: a method's test scores and what it cost."""

    method: str
    accuracy: float
    macro_f1: float
    wall_s: float
    details: dict[str, Any] = field(default_factory=dict)


def recipe_config(recipe: Path) -> tuple[ModalityPlugin, RunConfig]:
    """The plugin and `RunConfig` of ``automl-tl search --recipe RECIPE`` with no other flags.

    Same precedence as the command (plugin defaults, then the recipe), so the splits and options
    (e.g. the vision resolution) are the ones the search runs with.
    """
    values = read_recipe(recipe)
    if "modality" not in values:
        raise UserError(f"recipe {recipe} names no modality")
    plugin = get_plugin(values["modality"])
    return plugin, resolve(plugin, values, {}, str(recipe))


def load_bench(recipe: Path, limit: int | None = None) -> Bench:
    """The recipe's plugin, configuration and splits; ``limit`` keeps that many examples per class per split."""
    plugin, config = recipe_config(recipe)
    splits = load_data(plugin, SearchRequest(config=config, data_home=data_home())).splits
    return Bench(recipe, plugin, config, splits if limit is None else limit_splits(splits, limit))


def limit_splits(splits: Splits, per_class: int) -> Splits:
    """The first ``per_class`` examples of each class in every split: a smoke run that still sees every class."""
    return replace(
        splits,
        train=first_per_class(splits.train, per_class),
        validation=first_per_class(splits.validation, per_class),
        test=first_per_class(splits.test, per_class),
        description=f"{splits.description}; limited to {per_class} per class per split",
    )


def first_per_class(examples: Sequence[Example], per_class: int) -> list[Example]:
    seen: Counter[str] = Counter()
    kept = []
    for example in examples:
        if seen[example.label] < per_class:
            seen[example.label] += 1
            kept.append(example)
    return kept


def fit_examples(splits: Splits) -> list[Example]:
    """Train + validation: baselines choose nothing on validation, so, like the search's refit, they train on both."""
    return splits.train + splits.validation


def label_array(examples: Sequence[Example]) -> np.ndarray:
    return np.array([e.label for e in examples])


def scored(method: str, examples: Sequence[Example], predicted: Sequence[str], wall_s: float, **details: Any) -> Result:
    """A `Result` from test predictions; macro-F1 weighs every class equally, as the search's objective does."""
    truth = label_array(examples)
    return Result(
        method=method,
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(f1_score(truth, predicted, average="macro")),
        wall_s=wall_s,
        details=details,
    )


def logistic_probe(fit_x: np.ndarray, fit_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Standardised features + logistic regression: the usual linear probe of frozen features."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER))
    return probe.fit(fit_x, fit_y).predict(test_x)


def frozen_pooled(backbone: Backbone, splits: Splits) -> dict[str, tuple[list[Tensor], Tensor]]:
    """Every block's mean-pooled output and the backbone's own pooling per split, through the search's own
    `FeatureStore` (one batched no-grad pass in eval mode), so probes see exactly the search's features."""
    store = FeatureStore(backbone, {"train": splits.train, "validation": splits.validation, "test": splits.test}, splits.classes)
    return {split: store.pooled(split) for split in ("train", "validation", "test")}


def fit_and_test(features: Mapping[str, Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """(train + validation rows, test rows) of per-split features, as float64 arrays for scikit-learn."""
    fit = torch.cat([features["train"], features["validation"]]).double().numpy()
    return fit, features["test"].double().numpy()


def maybe_search(args: argparse.Namespace, recipe: Path) -> tuple[Result | None, dict[str, Any] | None]:
    """The default search on the recipe, unless ``--skip-search``: a table row and `run_search`'s whole answer.

    It runs first, so that its wall time can size other arms' budgets, and in a fresh run
    directory by default: an existing one would resume the old search instead of timing a new one.
    """
    if args.skip_search:
        return None, None
    outcome = run_search(recipe, run_dir=args.run_dir or fresh_run_dir(recipe), n_trials=args.n_trials, timeout=args.timeout)
    row = Result(
        method="automl-tl search (default)",
        accuracy=_score(outcome["test"]["accuracy"]),
        macro_f1=_score(outcome["test"]["macro_f1"]),
        wall_s=float(outcome["wall_s"]),
        details={key: outcome[key] for key in ("trials_completed", "trials_pruned", "trials_failed", "best_validation")},
    )
    return row, outcome


def _score(value: float | None) -> float:
    """A search stopped before its test evaluation has no test score: NaN keeps its row (and its wall time) in the table."""
    return float("nan") if value is None else float(value)


def fresh_run_dir(recipe: Path) -> Path:
    return REPO / "runs" / "bench" / f"{recipe.stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def baseline_parser(description: str) -> argparse.ArgumentParser:
    """The flags every baseline script shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--limit", type=int, metavar="N", help="keep N examples per class in each split (smoke runs; baselines only)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    parser.add_argument("--skip-search", action="store_true", help="run the baselines only")
    parser.add_argument("--run-dir", type=Path, help="the search's run directory (default: a fresh runs/bench/<recipe>-<time>)")
    parser.add_argument("--n-trials", type=int, metavar="N", help="the search's trial budget (default: the recipe's)")
    parser.add_argument("--timeout", type=float, metavar="S", help="the search's time budget in seconds, as `automl-tl search --timeout`")
    return parser


def check_baseline_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A limited run compares nothing: the search always runs on the full recipe, so refuse to mix them."""
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be 1 or more")
    if args.limit is not None and not args.skip_search:
        parser.error("--limit only applies to the baselines (the search always uses the whole recipe): add --skip-search")


def finish(
    args: argparse.Namespace,
    title: str,
    bench: Bench,
    baselines: Sequence[Result],
    search: tuple[Result | None, dict[str, Any] | None],
    **extra: Any,
) -> None:
    """Print the table (baselines, then the search) and write the JSON when ``--json`` asks for it."""
    row, outcome = search
    results = [*baselines, *([row] if row is not None else [])]
    print_table(title, bench, results)
    if args.json:
        write_results(args.json, title, bench, results, limit=args.limit, search=outcome, **extra)


def print_table(title: str, bench: Bench, results: Sequence[Result]) -> None:
    sizes = bench.splits.sizes()
    print(f"\n{title}")
    print(f"splits: {sizes['train']} train / {sizes['validation']} validation / {sizes['test']} test, "
          f"{len(bench.splits.classes)} classes ({bench.splits.description})")
    width = max(len("method"), *(len(r.method) for r in results))
    print(f"{'method':<{width}}  {'test acc':>8}  {'macro-F1':>8}  {'wall s':>8}")
    for r in results:
        print(f"{r.method:<{width}}  {r.accuracy:>8.4f}  {r.macro_f1:>8.4f}  {r.wall_s:>8.1f}")


def write_results(path: Path, benchmark: str, bench: Bench, results: Sequence[Result], **extra: Any) -> None:
    """The table as JSON, with the splits and the machine, so figures can be traced to how they were made."""
    payload = {
        "benchmark": benchmark,
        "recipe": str(bench.recipe.relative_to(REPO) if bench.recipe.is_relative_to(REPO) else bench.recipe),
        "splits": {**bench.splits.sizes(), "classes": len(bench.splits.classes), "description": bench.splits.description},
        "environment": environment(),
        "results": [asdict(r) for r in results],
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results written to {path}")


# --- the search itself (bench/search.py, and the search row of the baseline scripts) ---


def run_search(
    recipe: Path,
    *,
    run_dir: Path,
    n_trials: int | None = None,
    timeout: float | None = None,
    naive: bool = False,
) -> dict[str, Any]:
    """Run ``automl-tl search --recipe RECIPE`` in this process and summarise it.

    ``n_trials`` alone replaces the recipe's whole budget (no time limit), so two arms given the
    same count run the same trials. ``naive`` turns caching, pruning and bf16 autocast off: the
    same space, sampler seed and trials, as a hand-wired fp32 Optuna loop would run them.
    Ctrl-C ends the search but not the summary: it covers the trials so far, with ``stopped`` set.
    """
    from rich.console import Console

    from automl_tl.search.engine import Interrupted, SearchRun

    plugin, config = recipe_config(recipe)
    if n_trials is not None:
        config.search.n_trials, config.search.timeout = n_trials, timeout
    elif timeout is not None:
        config.search.timeout = timeout
    if naive:
        config.search.cache, config.search.pruner, config.search.precision = False, "none", "fp32"
    request = SearchRequest(config=config, data_home=data_home(), run_dir=run_dir, command=["bench", str(recipe)])
    started = time.perf_counter()
    try:
        board, stopped = SearchRun(request, plugin, Console(stderr=True)).run(), False
    except Interrupted as exc:  # a long arm stopped by hand still reports what it measured
        board, stopped = exc.board, True
    wall = time.perf_counter() - started
    best = board.best
    return {
        "wall_s": wall,
        "stopped": stopped,
        "trials_completed": board.counts.get("complete", 0),
        "trials_pruned": board.counts.get("pruned", 0),
        "trials_failed": board.counts.get("fail", 0),
        "best_validation": best.score if best else None,
        "best_trial": best.params if best else None,
        "best_number": best.trial if best else None,
        "test": {key: (board.test or {}).get(key) for key in ("accuracy", "macro_f1")},
        "run_dir": str(run_dir),
        "trials": [{"number": r.trial, "state": r.state, "strategy": r.strategy, "seconds": r.seconds, "params": r.params,
                    "epoch_seconds": [h.get("seconds") for h in r.history]}
                   for r in sorted(board.rows, key=lambda r: r.trial)],
    }


def forward_floor(recipe: Path) -> dict[str, float]:
    """Seconds of one batched, no-grad pass of every example through the frozen backbone.

    Decoding the files is timed apart: the search pays it once too, before any trial.
    """
    bench = load_bench(recipe)
    chosen = bench.config.space.get("backbone") or bench.plugin.default_backbone
    backbone = bench.plugin.build_backbone(chosen[0] if isinstance(chosen, list) else chosen, bench.options)
    splits = {"train": bench.splits.train, "validation": bench.splits.validation, "test": bench.splits.test}
    store = FeatureStore(backbone, splits, bench.splits.classes)
    started = time.perf_counter()
    for split in splits:
        store.inputs(split)
    decoded = time.perf_counter()
    for split in splits:
        store.pooled(split)
    return {"decode_s": decoded - started, "forward_s": time.perf_counter() - decoded, "examples": sum(map(len, splits.values()))}


def results_file(parser: argparse.ArgumentParser, path: Path, keys: set[str], script: str) -> dict[str, Any]:
    """An earlier run's ``--json`` file holding ``keys``; anything else is the user's mistake, said in one line."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {path}: {exc}")
    if not isinstance(payload, dict) or not keys <= payload.keys():
        parser.error(f"{path} is not a file written by {script} --json (no {', '.join(sorted(keys))})")
    return payload


def run_script(main: Callable[[], None]) -> None:
    """A benchmark script's entry: a user mistake (a missing recipe, no data home) ends in the CLI's one line and exit 2."""
    from automl_tl.cli.errors import print_error

    try:
        main()
    except UserError as exc:
        print_error(exc)
        sys.exit(2)
