"""Would a transferability score of the frozen features have told the search where to look? (issue #22)

For each finished run: the run's own training split goes once through each backbone its trials
used (the search's `FeatureStore`, so these are exactly the features the cache holds); LogME
(You et al., ICML 2021: the log marginal evidence of a Bayesian linear model on the features, per
class, averaged) is computed on every block's mean-pooled output and on the backbone's own pooling.
Each completed or pruned trial (by the best validation score it reached) is then paired with the
score of the features it starts from (the output of its deepest frozen block; the backbone's
pooling for feature extraction with the default pooling), and the Spearman rank correlation
between that score and the trials' validation values is printed: a high one would let the search
try the best-scored depth first, a low one says the score cannot order this search.

    python bench/transferability.py runs/fsdd runs/sms --json bench/results/transferability.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from scipy.stats import spearmanr

from automl_tl.config import RunConfig, plugin_options
from automl_tl.datahome import data_home
from automl_tl.registry import backbone_builder, get_plugin
from automl_tl.search.features import FeatureStore
from automl_tl.search.inputs import SearchRequest, load_data

MAX_ITERATIONS = 11
"""LogME's fixed-point iterations, as in the authors' reference code (it converges in a few)."""


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of ``features`` (N, D) for integer ``labels``: mean over classes of the evidence per example.

    Each class is a one-vs-rest regression target y; the prior precision alpha and the noise
    precision beta of the Bayesian linear model y = f w + noise are found by MacKay's fixed point,
    on the eigen-decomposition of f^T f, so the cost is one D x D decomposition for all classes.
    """
    f = features.astype(np.float64)
    n, d = f.shape
    sigma, v = np.linalg.eigh(f.T @ f)
    sigma = np.clip(sigma, 0.0, None)
    evidences = []
    for k in np.unique(labels):
        y = (labels == k).astype(np.float64)
        projected = v.T @ (f.T @ y)
        alpha, beta = 1.0, 1.0
        for _ in range(MAX_ITERATIONS):
            ratio = alpha / beta
            gamma = float((sigma / (sigma + ratio)).sum())
            m = v @ (projected * beta / (alpha + beta * sigma))
            m2 = float(m @ m)
            residual = float(((y - f @ m) ** 2).sum())
            alpha, beta = gamma / (m2 + 1e-5), (n - gamma) / (residual + 1e-5)
            if abs(alpha / beta - ratio) / ratio < 0.01:
                break
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * float(np.log(alpha + beta * sigma).sum())
                    - beta / 2 * residual - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def trial_depth(params: dict[str, Any], depth: int) -> int | str:
    """Which features a trial starts from: its deepest frozen block, or the backbone's own pooling."""
    if params["strategy"] == "feature_extraction":
        return "pooling" if params.get("pooling") == "default" else depth
    return int(params.get("freeze_depth") or 0)


def value_of(trial: optuna.trial.FrozenTrial) -> float:
    """A completed trial's value; a pruned one's best validation score before it was stopped."""
    return float(trial.value) if trial.value is not None else max(trial.intermediate_values.values())


def measure(run: Path) -> dict[str, Any]:
    """Per backbone, LogME of each depth's training features; per trial, its score and its value; their correlation."""
    saved = json.loads((run / "config.json").read_text())
    config = RunConfig.model_validate(saved["config"])
    plugin = get_plugin(config.modality)
    splits = load_data(plugin, SearchRequest(config=config, data_home=data_home())).splits
    study = optuna.load_study(study_name=saved["study"], storage=f"sqlite:///{run / 'study.db'}")
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
              if "params" in t.user_attrs and (t.value is not None or t.intermediate_values)]
    labels = np.array([splits.classes.index(e.label) for e in splits.train])
    scores: dict[str, dict[int | str, float]] = {}
    started = time.perf_counter()
    for name in sorted({t.user_attrs["params"]["backbone"] for t in trials}):
        builder = backbone_builder(plugin, name)
        backbone = builder.build_backbone(name, plugin_options(plugin, config.options))
        pooled, default = FeatureStore(backbone, {"train": splits.train}, splits.classes).pooled("train")
        scores[name] = {depth + 1: logme(block.float().numpy(), labels) for depth, block in enumerate(pooled)}
        scores[name]["pooling"] = logme(default.float().numpy(), labels)
        scores[name][0] = float("nan")  # nothing frozen: the score of the stem alone is not computed
        depth_of = len(pooled)
    seconds = time.perf_counter() - started
    rows = []
    for t in trials:
        params = t.user_attrs["params"]
        where = trial_depth(params, depth_of)
        rows.append({"trial": t.number, "strategy": params["strategy"], "depth": where,
                     "logme": scores[params["backbone"]].get(where, float("nan")), "value": value_of(t),
                     "pruned": t.state == TrialState.PRUNED})
    usable = [r for r in rows if not math.isnan(r["logme"])]
    rho = spearmanr([r["logme"] for r in usable], [r["value"] for r in usable]).statistic if len(usable) > 2 else float("nan")
    return {"run": str(run), "data": splits.description, "train_examples": len(splits.train), "seconds": seconds,
            "logme": {b: {str(k): v for k, v in s.items()} for b, s in scores.items()}, "trials": rows,
            "spearman": float(rho), "trials_scored": len(usable)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="Finished run directories (config.json, study.db).")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    options = parser.parse_args()
    results = []
    for run in options.runs:
        result = measure(run)
        results.append(result)
        print(f"\n{run}: {result['train_examples']} training examples; LogME in {result['seconds']:.1f} s")
        for backbone, by_depth in result["logme"].items():
            print(f"  {backbone}: " + ", ".join(f"{k} {v:.3f}" for k, v in by_depth.items() if not math.isnan(v)))
        for row in sorted(result["trials"], key=lambda r: -r["value"]):
            print(f"  trial {row['trial']:>3} {row['strategy']:<18} from {row['depth']!s:<8} LogME {row['logme']:>7.3f}  value {row['value']:.4f}{' (pruned)' if row['pruned'] else ''}")
        print(f"  Spearman(LogME, validation value) over {result['trials_scored']} trials: {result['spearman']:.2f}")
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), platform.processor())
        options.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
