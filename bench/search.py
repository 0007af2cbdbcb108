"""What the search's reuse of frozen work is worth: floor, naive and automl-tl on one recipe, side by side.

    python bench/search.py --recipe recipes/speech-digits.toml --n-trials 20 --json bench/results/fsdd.json

Three arms, in one process on one machine:

1. **floor**: one batched no-grad pass of every example through the frozen backbone;
2. **naive**: the same search space, sampler seed and trial count with caching, pruning and bf16
   autocast off, which is what wiring Optuna to an fp32 training loop by hand gives;
3. **automl-tl**: the default search (disk-backed frozen-prefix cache, successive-halving pruning,
   a linear probe first, bf16 autocast where the CPU has it).

Prints wall time, best validation score, test scores and trials per arm, and the ratios
naive / automl-tl (the whole run, and the trial time of the leading trials both arms drew alike:
the same configurations, run each arm's way) and automl-tl / floor; ``--json`` writes the same figures, rewritten after
each arm so that a long run cut short keeps the arms it finished. It also prints what automl-tl's
run would have cost had its pruner known the winner in advance (every other trial stopped after its
first epoch): the ceiling on what any pruning could make of that run, and so of the ratio.

On a machine with a core per arm, the arms may run at the same time, each pinned to its own core,
and be put side by side afterwards (both then share the machine's memory bandwidth alike):

    taskset -c 0 python bench/search.py --recipe R --arms floor,automl-tl --json ours.json
    taskset -c 1 python bench/search.py --recipe R --arms naive --json naive.json
    python bench/search.py --combine ours.json naive.json --json fsdd.json
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import forward_floor, results_file, run_script, run_search  # noqa: E402

from automl_tl.search.inputs import environment  # noqa: E402

ARMS = ("floor", "naive", "automl-tl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path)
    parser.add_argument("--combine", type=Path, nargs="+", metavar="JSON",
                        help="run nothing: put side by side the arms these earlier --json files hold")
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--profile", type=Path, help="profile the automl-tl arm with cProfile into this file")
    parser.add_argument("--keep", type=Path, help="keep each arm's run directory under this folder (default: a temporary one)")
    args = parser.parse_args()
    if args.combine:
        results = _combined(parser, args)
        _write(args, results)
        _print(args, results, _ratios(results))
        return
    if args.recipe is None:
        parser.error("--recipe is required (or --combine)")
    arms = [a.strip() for a in args.arms.split(",")]
    if unknown := set(arms) - set(ARMS):
        parser.error(f"unknown arm(s): {', '.join(sorted(unknown))}")
    if args.keep and (kept := [arm for arm in arms if (args.keep / arm).exists()]):
        parser.error(f"{args.keep} already holds run(s) {', '.join(kept)}: a bench arm must search afresh, not resume")

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="automl-tl-bench-") as temporary:
        scratch = args.keep or Path(temporary)
        if "floor" in arms:
            results["floor"] = forward_floor(args.recipe)
            print(f"floor: {results['floor']}", file=sys.stderr)
            _write(args, results)
        for arm in ("automl-tl", "naive"):  # the short arm first: its figures are there early
            if arm not in arms:
                continue
            run_dir = scratch / arm  # fresh (checked above): an existing run would resume, not search
            profiler = cProfile.Profile() if args.profile and arm == "automl-tl" else None
            if profiler:
                profiler.enable()
            results[arm] = run_search(args.recipe, run_dir=run_dir, n_trials=args.n_trials, naive=arm == "naive")
            if profiler:
                profiler.disable()
                profiler.dump_stats(args.profile)
                results[arm]["profile_top"] = _top(profiler)
            print(f"{arm}: {results[arm]}", file=sys.stderr)
            _write(args, results)
            if results[arm]["stopped"]:
                print(f"{arm} was stopped: its figures cover the trials it finished; no further arm runs", file=sys.stderr)
                break
    _print(args, results, _ratios(results))


def _combined(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The arms of several earlier runs of one recipe and trial count; each arm may come from one file only."""
    results: dict[str, Any] = {}
    payloads = [(path, results_file(parser, path, {"recipe", "n_trials", "arms"}, "bench/search.py")) for path in args.combine]
    args.recipe, args.n_trials = Path(payloads[0][1]["recipe"]), payloads[0][1]["n_trials"]
    for path, payload in payloads:
        if Path(payload["recipe"]) != args.recipe or payload["n_trials"] != args.n_trials:
            parser.error(f"{path} benchmarks {payload['recipe']} with {payload['n_trials']} trials, not "
                         f"{args.recipe} with {args.n_trials}: only runs of one recipe and count compare")
        if twice := set(results) & set(payload["arms"]):
            parser.error(f"{path} holds arm(s) {', '.join(sorted(twice))} already read from another file")
        results.update(payload["arms"])
    return results


def _write(args: argparse.Namespace, results: dict[str, Any]) -> None:
    if not args.json:
        return
    payload = {"recipe": str(args.recipe), "n_trials": args.n_trials, "environment": environment(),
               "arms": results, "ratios": _ratios(results)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def _ratios(results: dict[str, Any]) -> dict[str, float]:
    ratios = {}
    if "naive" in results and "automl-tl" in results:
        # an arm stopped by hand bounds the ratio from one side only
        naive, ours = results["naive"], results["automl-tl"]
        name = "naive / automl-tl"
        if naive.get("stopped") and not ours.get("stopped"):
            name = f"naive (stopped after {_finished(naive)} trials) / automl-tl, at least"
        elif ours.get("stopped"):
            name = f"naive / automl-tl (stopped after {_finished(ours)} trials), {'unknown' if naive.get('stopped') else 'at most'}"
        ratios[name] = naive["wall_s"] / ours["wall_s"]
        if same := _same_configurations(results["automl-tl"]["trials"], results["naive"]["trials"]):
            ratios[f"naive / automl-tl, trial time of the {same[0]} trials both arms drew alike"] = same[2] / same[1]
        if not naive.get("stopped") and not ours.get("stopped") and (hindsight := _hindsight_s(ours)):
            ratios["naive / automl-tl had its pruner known the winner in advance, at most"] = naive["wall_s"] / hindsight
    if "floor" in results and "automl-tl" in results:
        ratios["automl-tl / floor"] = results["automl-tl"]["wall_s"] / results["floor"]["forward_s"]
    return ratios


def _hindsight_s(arm: dict[str, Any]) -> float | None:
    """The arm's wall time had its pruner known the winner: every other trial stopped after its first epoch.

    No pruner can judge a trial before its first score, so on this arm's sequence of trials no
    pruning does better: the ratio against it is the most that pruning could have made of the
    run. None when an epoch was not timed (trials recorded before per-epoch times were kept).
    """
    saved = 0.0
    for trial in arm["trials"]:
        epochs = trial.get("epoch_seconds")
        if epochs is None or None in epochs:
            return None
        if trial["number"] != arm.get("best_number"):
            saved += sum(epochs[1:])
    return arm["wall_s"] - saved


def _finished(arm: dict[str, Any]) -> int:
    """Trials that ran to their end (an interrupted one has no time)."""
    return sum(t["seconds"] is not None for t in arm["trials"])


def _same_configurations(ours: list[dict[str, Any]], naive: list[dict[str, Any]]) -> tuple[int, float, float] | None:
    """(count, automl-tl seconds, naive seconds) over the leading trials with identical parameters.

    The arms share the sampler seed, so TPE's random start-up trials are the same configurations in
    both; after them each arm's sampler learns from its own (pruned or not) scores and they part.
    The first trial's time includes the frozen pass automl-tl makes for the cache.
    """
    count, mine, theirs = 0, 0.0, 0.0
    for a, b in zip(ours, naive):
        if a["params"] != b["params"] or a["seconds"] is None or b["seconds"] is None:
            break
        count, mine, theirs = count + 1, mine + a["seconds"], theirs + b["seconds"]
    return (count, mine, theirs) if count and mine > 0 else None


def _print(args: argparse.Namespace, results: dict[str, Any], ratios: dict[str, float]) -> None:
    print(f"\n{args.recipe} — {args.n_trials} trials per search arm")
    print(f"{'arm':<10} {'wall s':>8} {'complete':>8} {'pruned':>6} {'failed':>6} {'best val':>8} {'test acc':>8} {'test F1':>8}")
    if floor := results.get("floor"):
        print(f"{'floor':<10} {floor['forward_s']:>8.1f}   (one pass of {floor['examples']} examples; decoding {floor['decode_s']:.1f} s)")
    for arm in ("naive", "automl-tl"):
        if r := results.get(arm):
            test = r["test"]
            print(f"{arm:<10} {r['wall_s']:>8.1f} {r['trials_completed']:>8} {r['trials_pruned']:>6} {r['trials_failed']:>6} "
                  f"{_num(r['best_validation'])} {_num(test['accuracy'])} {_num(test['macro_f1'])}")
    if (ours := results.get("automl-tl")) and (hindsight := _hindsight_s(ours)):
        print(f"automl-tl had its pruner known the winner (every other trial stopped after its first epoch): {hindsight:.1f} s")
    for name, value in ratios.items():
        print(f"{name}: {value:.1f}x")
    if top := results.get("automl-tl", {}).get("profile_top"):
        print("\nautoml-tl arm, top functions by own time:\n" + top)


def _num(value: float | None) -> str:
    return f"{value:>8.4f}" if value is not None else f"{'-':>8}"


def _top(profiler: cProfile.Profile, n: int = 15) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(n)
    return out.getvalue()


if __name__ == "__main__":
    run_script(main)
