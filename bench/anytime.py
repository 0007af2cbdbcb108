"""Time to quality: when does a search first hold a model as good as the one it ends with? (issue #22)

    python bench/anytime.py --modality speech --json after.json          # the demo, `make demo`'s search
    python bench/anytime.py --recipe recipes/speech-digits.toml --json after.json

One search in this process, every trial's weights kept (a run normally keeps the best trial's
only). Afterwards each model that was the run's usable model (what `automl-tl predict` used then,
"usable model: ..." in the live view) is scored once on the test split, like the final model: each
trial from its completion on, while it was the best so far, and each epoch of a trial that became it
while the trial trained (a checkpoint; code without checkpoints has none). The figures are the times
(from the search's start) at which each appeared, with its test accuracy.

Two arms, e.g. the code of an earlier commit against this one, run one after the other or each
pinned to its own core, then put side by side:

    git worktree add /tmp/before COMMIT && cp bench/anytime.py /tmp/before/bench/   # its automl_tl and bench.common
    PYTHONPATH=/tmp/before/plugins/speech taskset -c 0 python /tmp/before/bench/anytime.py --modality speech --json before.json
    taskset -c 1 python bench/anytime.py --modality speech --json after.json
    python bench/anytime.py --combine before.json after.json

Code from before issue #22 (3c1f150, the commit it was filed on) held no usable model: it had no
`predict`, and a run's model was its final one. Such an arm is the command's own run, timed from
outside, then recorded from its run directory:

    start=$(date +%s.%N); PYTHONPATH=/tmp/before:/tmp/before/plugins/speech automl-tl search --modality speech --run-dir B
    python bench/anytime.py --finished B --final-at $(python -c "import os; print(os.path.getmtime('B/final/weights.pt') - $start)") --json before.json

The comparison prints, per arm, the first time it held a model whose test accuracy is within
`--within` (0.5 point) of what the *first* arm's search ended with, and the ratio to the first arm's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--recipe", type=Path)
    source.add_argument("--modality", help="the plugin's defaults alone, as `automl-tl search --modality M` runs them")
    source.add_argument("--combine", type=Path, nargs="+", metavar="JSON", help="run nothing: compare these --json files")
    source.add_argument("--finished", type=Path, metavar="RUN",
                        help="run nothing: record a finished run of code that held no usable model before its final one")
    parser.add_argument("--final-at", type=float, metavar="SECONDS", help="with --finished: when its final model was written")
    parser.add_argument("--seed", type=int, default=0, help="with --modality: the search's seed (a recipe has its own)")
    parser.add_argument("--within", type=float, default=0.005, help="how close to the first arm's final test accuracy counts")
    parser.add_argument("--keep", type=Path, help="run directory to keep (default: a temporary one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.combine:
        from bench.common import results_file

        arms = [(path.stem, results_file(parser, path, {"wall_s", "final_test_accuracy", "usable"}, "bench/anytime.py"))
                for path in args.combine]
        _compare(arms, args.within)
        return
    if args.finished:
        if args.final_at is None:
            parser.error("--finished needs --final-at: the seconds from the search's start to its final model")
        if not (args.finished / "test.json").is_file():
            parser.error(f"{args.finished} holds no test.json: not a finished run")
        result = finished(args.finished, args.final_at)
    else:
        result = _measured(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    _compare([("this run", result)], args.within)


def _measured(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="automl-tl-anytime-") as scratch:
        recipe = args.recipe
        if recipe is None:
            recipe = Path(scratch) / "defaults.toml"
            recipe.write_text(f'modality = "{args.modality}"\n[search]\nseed = {args.seed}\n', encoding="utf-8")
        result = anytime(recipe, args.keep or Path(scratch) / "run")
    result["source"] = str(args.recipe or f"--modality {args.modality}")
    return result


def finished(run_dir: Path, final_at: float) -> dict[str, Any]:
    """An arm whose only model is the final one, ``final_at`` seconds into its search (no usable models before).

    Its environment is the one the run recorded in its `config.json` (threads included), not this process's."""
    import optuna
    from optuna.trial import TrialState

    test = json.loads((run_dir / "test.json").read_text(encoding="utf-8"))
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    trials = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'study.db'}").get_trials(deepcopy=False)
    states = [t.state for t in trials]
    return {"environment": config["environment"], "source": f"finished run {run_dir}", "wall_s": final_at,
            "final_test_accuracy": test["accuracy"], "trials_completed": states.count(TrialState.COMPLETE),
            "trials_pruned": states.count(TrialState.PRUNED), "usable": [], "checkpoint_write_s": 0.0}


def anytime(recipe: Path, run_dir: Path) -> dict[str, Any]:
    """Run the search with every trial's weights kept, then score each usable model on the test split."""
    import optuna
    from optuna.trial import TrialState

    from automl_tl.rundir import RunDir
    from automl_tl.search.inputs import environment
    from bench.common import run_search

    RunDir.prune_weights = lambda self, keep: None  # type: ignore[method-assign]  # the bench scores them all afterwards
    checkpoints: list[dict[str, Any]] = []
    written: list[float] = []
    write_checkpoint = getattr(RunDir, "write_checkpoint", None)  # None: an earlier commit's code, run as the before arm

    def keep_every_checkpoint(self: RunDir, number: int, write: Any, about: dict[str, Any]) -> None:
        assert write_checkpoint is not None
        began = time.perf_counter()
        write_checkpoint(self, number, write, about)  # a trial's epoch that became the usable model: kept under its own name
        written.append(time.perf_counter() - began)  # what checkpoints cost the search (the copy below is the bench's)
        kept = self.trial_dir(number) / f"checkpoint-epoch{about['epoch']}.pt"
        shutil.copyfile(self.checkpoint_paths(number)[0], kept)
        checkpoints.append({"trial": number, "epoch": about["epoch"], "at_s": time.time() - started,
                            "validation": about["score"], "weights": str(kept)})

    if write_checkpoint is not None:
        RunDir.write_checkpoint = keep_every_checkpoint  # type: ignore[method-assign]
    started = time.time()
    summary = run_search(recipe, run_dir=run_dir)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'study.db'}")
    completed = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.datetime_complete)
    usable, best = [], None
    for trial in completed:
        if best is None or (trial.value or 0.0) > best:  # of equal values the earlier, as `predict` and the live view
            best = trial.value or 0.0
            usable.append({"trial": trial.number, "at_s": trial.datetime_complete.timestamp() - started,
                           "validation": trial.value, "weights": str(RunDir(run_dir).weights_path(trial.number))})
    usable = sorted(usable + checkpoints, key=lambda entry: entry["at_s"])
    for entry, score in zip(usable, _test_accuracy(run_dir, [(u["trial"], Path(u.pop("weights"))) for u in usable]), strict=True):
        entry["test_accuracy"] = score
    return {"environment": environment(), "wall_s": summary["wall_s"], "final_test_accuracy": summary["test"]["accuracy"],
            "trials_completed": summary["trials_completed"], "trials_pruned": summary["trials_pruned"], "usable": usable,
            "checkpoint_write_s": sum(written)}


def _test_accuracy(run_dir: Path, models: list[tuple[int, Path]]) -> list[float]:
    """Each (trial, weights) scored on the run's test split, as the final evaluation scores a model."""
    import torch

    from automl_tl.model.predictor import load_model
    from automl_tl.rundir import RunDir
    from automl_tl.search.features import FeatureStore
    from automl_tl.search.final import DELIVERED
    from automl_tl.search.model import Tail
    from automl_tl.search.train import input_mode, predict
    from automl_tl.vocabulary import TrialParams

    run = RunDir(run_dir)
    model = load_model(run_dir)
    splits = model.run_data().splits
    store = FeatureStore(model.backbone, {"test": splits.test}, model.labels)
    truth = store.labels("test").numpy()
    scores = []
    for number, weights in models:
        record = json.loads((run.trial_dir(number) / "record.json").read_text(encoding="utf-8"))
        params = TrialParams(**record["params"])
        tail = Tail.trained(model.backbone, params, len(model.labels), torch.load(weights, weights_only=True))
        scores.append(float((predict(tail, store, "test", input_mode(params), params, DELIVERED) == truth).mean()))
    return scores


def time_to_quality(arm: dict[str, Any], bar: float, epochs: bool = True) -> float | None:
    """Seconds until the arm first held a model testing at ``bar`` or above: a usable model, or the final one at the end.

    ``epochs=False`` counts completed trials only: the usable models of code without checkpoints, whose
    search draws and trains the same trials (a checkpoint only writes a file), so one run gives both."""
    reached = [e["at_s"] for e in arm["usable"] if e["test_accuracy"] >= bar and (epochs or "epoch" not in e)]
    if arm["final_test_accuracy"] >= bar:
        reached.append(arm["wall_s"])
    return min(reached) if reached else None


def _compare(arms: list[tuple[str, dict[str, Any]]], within: float) -> None:
    reference = arms[0][1]["final_test_accuracy"]
    print(f"reference: the first arm's final test accuracy {reference:.4f}; a model counts from {reference - within:.4f} on")
    first: float | None = None
    for name, arm in arms:
        print(f"\n{name}: {arm.get('source', '')}; search {arm['wall_s']:.0f} s, final test {arm['final_test_accuracy']:.4f} "
              f"({arm['trials_completed']} complete, {arm['trials_pruned']} pruned)")
        for entry in arm["usable"]:
            epoch = f" epoch {entry['epoch']:>2}" if "epoch" in entry else " " * 9  # a trial's epoch while it trained
            print(f"  {entry['at_s']:6.0f} s  usable model: trial {entry['trial']:>3}{epoch}  val {entry['validation']:.4f}  "
                  f"test {entry['test_accuracy']:.4f}")
        print(f"  {arm['wall_s']:6.0f} s  final model                            test {arm['final_test_accuracy']:.4f}")
        at = time_to_quality(arm, reference - within)
        first = at if first is None else first
        ratio = f" ({at / first:.2f}x the first arm's)" if at is not None and first else ""
        print(f"  time to quality: {_seconds(at)}{ratio}")
        if any("epoch" in entry for entry in arm["usable"]):
            alone = time_to_quality(arm, reference - within, epochs=False)
            versus = f" ({at / alone:.2f}x that)" if at is not None and alone else ""
            print(f"  the same run, completed trials only (no checkpoints): {_seconds(alone)}; with checkpoints "
                  f"{_seconds(at)}{versus}; writing them took {arm.get('checkpoint_write_s', 0.0):.1f} s of the search")


def _seconds(at: float | None) -> str:
    return "not reached" if at is None else f"{at:.0f} s"


if __name__ == "__main__":
    from bench.common import run_script

    run_script(main)
