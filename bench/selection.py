"""Does the default search beat the plain linear probe on data it was never tuned on? (issue #24)

For each seed, the same `automl-tl search` twice, side by side on the same splits: the default
search, and the linear probe alone (the search's own baseline configuration: frozen backbone, its
own pooling, a linear head, then the same refit on train + validation). Each prints its one test
score with its 95 % bootstrap interval; the verdict says whether the default search is below the
probe by more than the probe's interval (the issue's bar), and the spread over seeds.

    python bench/selection.py --recipe recipes/speech-digits.toml --seeds 0 1 2 --json bench/results/selection-fsdd.json
    python bench/selection.py -- --modality vision --data /path/to/photos --test /path/to/test --timeout 480

Arguments after ``--`` go to `automl-tl search` as they are (instead of, or beside, ``--recipe``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

PROBE_SPACE = {"strategy": "feature_extraction", "head": "linear", "pooling": "default"}
"""The search's own baseline: a linear head on the frozen backbone's own pooling."""
BUDGET_FLAGS = {"--n-trials", "-n", "--timeout", "-t"}


def search(args: list[str], run_dir: Path, seed: int) -> dict[str, Any]:
    """One `automl-tl search` in a fresh run directory: its test.json and wall time."""
    command = [str(Path(sys.executable).with_name("automl-tl")), "search", *args, "--seed", str(seed), "--run-dir", str(run_dir)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0 or not (run_dir / "test.json").is_file():
        raise SystemExit(f"search failed ({done.returncode}, no test evaluation): {' '.join(command)}\n{done.stderr[-2000:]}")
    return {"wall_s": wall, "test": json.loads((run_dir / "test.json").read_text())}


def probe_args(args: list[str], recipe: Path | None, work: Path) -> list[str]:
    """The same search narrowed to the probe, one trial: its recipe is the given one with the probe's space."""
    table = tomllib.loads(recipe.read_text()) if recipe else {}
    table["space"] = {**table.get("space", {}), **PROBE_SPACE}
    table["search"] = {**table.get("search", {}), "n_trials": 1}
    table["search"].pop("timeout", None)
    path = work / "probe.toml"
    path.write_text(_toml(table))
    kept, skip = [], False
    for arg in args:  # the probe's budget is its one trial
        if skip:
            skip = False
        elif arg in BUDGET_FLAGS:
            skip = True
        elif arg.split("=", 1)[0] not in BUDGET_FLAGS | {"--recipe"}:
            kept.append(arg)
    return [*kept, "--recipe", str(path)]


def row(name: str, result: dict[str, Any], metric: str) -> str:
    test = result["test"]
    spread = test.get("intervals", {}).get(metric, {})
    return (f"{name:<18} {test[metric]:.4f}  [{spread.get('low', float('nan')):.4f}, {spread.get('high', float('nan')):.4f}]"
            f"  {result['wall_s']:7.0f} s  trial {test['trial']}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ours, passed = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, help="A recipe for both searches (the probe narrows its space).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--metric", default="accuracy", choices=["accuracy", "macro_f1"])
    parser.add_argument("--work", type=Path, default=Path("runs/bench/selection"), help="Where the run directories go.")
    parser.add_argument("--json", type=Path, help="Write the figures here (bench/results/...).")
    options = parser.parse_args(ours)
    args = (["--recipe", str(options.recipe)] if options.recipe else []) + passed
    if not args:
        parser.error("give --recipe, or the search's arguments after --")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = []
    for seed in options.seeds:
        work = options.work / f"{stamp}-seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        default = search(args, work / "default", seed)
        probe = search(probe_args(args, options.recipe, work), work / "probe", seed)
        score, base = default["test"][options.metric], probe["test"][options.metric]
        spread = probe["test"]["intervals"][options.metric]
        below = score < spread["low"]  # under the probe's own 95 % interval
        verdict = "below the probe by more than its interval" if below else "not below the probe beyond its interval"
        print(f"seed {seed}: test {options.metric} [95 % interval], wall time, tested trial")
        print(row("  default search", default, options.metric))
        print(row("  linear probe", probe, options.metric))
        print(f"  default - probe {score - base:+.4f}: {verdict}; chosen: {default['test'].get('chosen')}")
        results.append({"seed": seed, "default": default, "probe": probe, "below_probe": below})
    scores = [r["default"]["test"][options.metric] for r in results]
    if len(scores) > 1:
        print(f"default search over {len(scores)} seeds: mean {statistics.mean(scores):.4f}, spread {max(scores) - min(scores):.4f}")
    if options.json:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
        options.json.write_text(json.dumps({"args": args, "metric": options.metric, "date": time.strftime("%Y-%m-%d"),
                                            "cpu": model, "avx512_bf16": "avx512_bf16" in cpu, "runs": results}, indent=2))


def _toml(table: dict[str, Any]) -> str:
    """A recipe back to TOML (scalars, lists and one level of tables, as recipes are)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in table.items() if not isinstance(value, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]", *(f"{k} = {json.dumps(v)}" for k, v in value.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
