"""How much does the training seed move a run's final model, made as one refit or as fold models averaged? (issue #24)

    python bench/final_model.py RUN --seeds 0 1 2 --json bench/results/final-model-fsdd.json

RUN is a finished run directory. Its tested configuration is made into a final model again for each
seed, both ways the search's last step makes one (`automl_tl.search.final`): one refit on train +
validation, and one model per cross-validation fold (train + validation less that fold) with their
class probabilities averaged; where the run kept the trial's own weights, the refit averaged with them
too (what a search delivers when it chose on validation alone). A seed makes exactly what a search with
that seed would deliver for this configuration: for the run's own seed the validation fold's model is
the trial itself where the search would take it (`crossval.validation_fold`), for any other seed that
fold is trained like the others, as the trial would have been with that seed. The refits of all the
seeds, averaged the same way, are another way to make one. Each model is scored once on the run's test split, as delivered (fp32, from the
examples); the spread over seeds is what two runs that chose the same configuration differ by.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WAYS = ("refit", "refit_and_own", "averaged")
"""The ways a seed makes a final model, as the rows name them."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trial", type=int, help="this trial's configuration instead of the tested one (another choice)")
    parser.add_argument("--no-folds", dest="folds", action="store_false", help="refits only: no fold models")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = final_models(args.run, args.seeds, args.trial, args.folds)
    print(f"{args.run}: trial {result['trial']}'s configuration, {result['test_examples']} test examples")
    own = "own" in result
    print("seed  refit   " + ("refit+own  " if own else "") + "fold models averaged  (each fold model)")
    for row in result["seeds"]:
        with_own = f"{row['refit_and_own']:.4f}     " if own else ""
        folds = f"{row['averaged']:.4f}                ({', '.join(f'{a:.3f}' for a in row['folds'])})" if args.folds else "-"
        print(f"{row['seed']:>4}  {row['refit']:.4f}  {with_own}{folds}")
    for way in WAYS:
        if way in result:
            print(f"{way:>13}: mean {result[way]['mean']:.4f}, spread {100 * result[way]['spread']:.1f} points")
    if own:
        print(f"the trial's own weights alone: {result['own']:.4f}")
    print(f"every seed's refit averaged into one model: {result['refits_averaged']:.4f}")
    if args.json:
        from automl_tl.search.inputs import environment

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": environment(), "run": str(args.run), **result}, indent=2) + "\n",
                             encoding="utf-8")


def final_models(run_dir: Path, seeds: list[int], number: int | None = None, folds: bool = True) -> dict[str, Any]:
    """Per seed, the test accuracy of the refit, of the refit with the trial's own weights (where the run kept
    them), of each fold model and of the folds averaged; mean and spread of each way; and of all the seeds'
    refits averaged (an ensemble over training seeds). ``number``: a trial other than the tested one;
    without ``folds``, refits only."""
    import torch

    import numpy as np
    import optuna

    from automl_tl.config import RunConfig
    from automl_tl.errors import UserError
    from automl_tl.model.predictor import load_model
    from automl_tl.rundir import RunDir, read_json
    from automl_tl.search import crossval
    from automl_tl.search.compute import Compute, resolve_bf16
    from automl_tl.search.features import FeatureStore
    from automl_tl.search.final import averaged, refit
    from automl_tl.search.model import Tail
    from automl_tl.search.train import input_mode
    from automl_tl.vocabulary import TrialParams

    run = RunDir(run_dir)
    if not run.test_path.is_file():
        raise UserError(f"{run_dir} has no test.json: the search has not chosen a configuration yet",
                        hint="let `automl-tl search` finish, then run this again")
    number = read_json(run.test_path)["trial"] if number is None else number
    trials = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'study.db'}").trials
    if not 0 <= number < len(trials) or trials[number].state != optuna.trial.TrialState.COMPLETE:
        raise UserError(f"trial {number} of {run_dir} did not complete", hint="pass a completed trial's number (the leaderboard lists them)")
    trial = trials[number]
    model = load_model(run_dir)
    splits = model.run_data().splits
    settings = RunConfig.model_validate(model.source.config["config"]).search
    compute = Compute(cached=settings.cache, bf16=resolve_bf16(settings.precision))
    params = TrialParams(**trial.user_attrs["params"])
    assert model.backbone is not None  # a run directory's model
    store = FeatureStore(model.backbone, {"train": splits.train, "validation": splits.validation, "test": splits.test}, model.labels)
    if input_mode(params) != "live":
        store.cached_depths = {params.freeze_depth}
    merged = store.merged(["train", "validation"])
    truth = store.labels("test").numpy()
    n_classes = len(model.labels)

    def accuracy(states: list[Any]) -> float:
        tails = [Tail.trained(model.backbone, params, n_classes, state) for state in states]
        return float((averaged(tails, store, "test", params) == truth).mean())

    own = [torch.load(run.weights_path(number), weights_only=True)] if run.weights_path(number).is_file() else []
    its_trial = crossval.validation_fold(trial, run.weights_path(number), run.last_weights_path(number))
    rows, refits = [], []
    for seed in seeds:
        indices = crossval.fold_indices(merged.examples["train"], len(splits.validation), crossval.FOLDS, seed) if folds else []
        first = its_trial if seed == settings.seed and its_trial is not None and splits.validation else None
        states = [first if k == 0 and first is not None else
                  crossval.fold_model(trial, merged, indices, k, n_classes, settings.objective, seed, compute)[1]
                  for k in range(len(indices))]
        refits.append(refit(trial, store, n_classes, settings.objective, seed, compute))
        rows.append({"seed": seed, "refit": accuracy(refits[-1:]), **({"refit_and_own": accuracy(refits[-1:] + own)} if own else {}),
                     **({"folds": [accuracy([state]) for state in states], "averaged": accuracy(states),
                         "validation_fold_model": "its trial" if first is not None else "trained"} if folds else {})})
        print(f"seed {seed}: {rows[-1]}", file=sys.stderr, flush=True)

    def summary(way: str) -> dict[str, float]:
        values = [row[way] for row in rows]
        return {"mean": statistics.fmean(values), "spread": float(np.ptp(values))}

    return {"trial": number, "params": trial.user_attrs["params"], "test_examples": len(truth), "seeds": rows,
            **{way: summary(way) for way in WAYS if way in rows[0]}, "refits_averaged": accuracy(refits),
            **({"own": accuracy(own)} if own else {})}


if __name__ == "__main__":
    from bench.common import run_script

    run_script(main)
