"""How fast `automl-tl app` is with many runs and big studies, measured in a real browser.

    python bench/app.py [--runs 50] [--trials 200]

Writes synthetic runs (a ``config.json`` and a SQLite study whose trials carry what the engine
records: parameters, scores, per-epoch history) into a temporary folder: ``--runs`` small runs and
one of ``--trials`` trials. Then starts the real command and drives headless Chromium:

1. start-up to first page: from starting ``automl-tl app`` to the Runs table drawn (every run read);
2. a big run's page: from picking it to its leaderboard drawn with every row and its plots.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl_tl.rundir import FORMAT_VERSION

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
STRATEGIES = ["feature_extraction", "partial", "full", "lp_ft"]


def synthetic_run(folder: Path, trials: int, seed: int) -> None:
    """A finished run of ``trials`` trials, as the engine would have stored it."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    classes = [str(c) for c in range(10)]
    run = {"format_version": FORMAT_VERSION, "study": folder.name, "storage": None, "modality": "speech", "objective": "accuracy",
           "seed": seed, "data": {"name": "synthetic", "description": f"synthetic run {seed}", "classes": classes,
                                  "sizes": {"train": 1500, "validation": 500, "test": 1000}},
           "config": {"modality": "speech", "data": {}, "search": {"heartbeat": 30}, "options": {}},
           "command": ["automl-tl", "search", "--modality", "speech"]}
    (folder / "config.json").write_text(json.dumps(run))
    study = optuna.create_study(study_name=folder.name, storage=f"sqlite:///{folder / 'study.db'}", direction="maximize")
    study.set_user_attr("run", run)
    start = datetime(2026, 12, 1, 9, 0)
    made = []
    for number in range(trials):
        strategy = rng.choice(STRATEGIES)
        epochs = rng.randint(2, 8)
        curve = [min(0.99, 0.5 + 0.06 * e + rng.uniform(-0.05, 0.05)) for e in range(1, epochs + 1)]
        lr = 10 ** rng.uniform(-4, -2)
        params = {"backbone": "whisper-tiny.en", "strategy": strategy, "freeze_depth": rng.randint(0, 3), "head": "linear",
                  "pooling": "mean", "head_lr": lr, "weight_decay": 1e-4, "epochs": epochs, "batch_size": 32}
        made.append(create_trial(
            state=TrialState.COMPLETE, value=max(curve), params={"head_lr": lr},
            distributions={"head_lr": FloatDistribution(1e-4, 1e-2, log=True)},
            user_attrs={"params": params, "scores": {"accuracy": max(curve), "macro_f1": max(curve) - 0.01},
                        "history": [{"epoch": e, "accuracy": s, "macro_f1": s - 0.01, "train_loss": 1 - s}
                                    for e, s in enumerate(curve, start=1)],
                        "trainable_params": rng.randint(1_000, 5_000_000), "interval": {"low": max(curve) - 0.02, "high": max(curve)}},
            intermediate_values=dict(enumerate(curve, start=1)),
        ))
        made[-1].datetime_start = start + timedelta(seconds=30 * number)
        made[-1].datetime_complete = start + timedelta(seconds=30 * number + 25)
    study.add_trials(made)
    best = max(range(trials), key=lambda n: made[n].value or 0.0)  # a trial's number is its place: none existed before
    per_class = {c: {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 100} for c in classes}
    test = {"trial": best, "refit": True, "accuracy": 0.95, "macro_f1": 0.95, "n": 1000, "per_class": per_class,
            "confusion": [[90 if i == j else 1 for j in range(10)] for i in range(10)]}
    study.set_user_attr("test", test)
    (folder / "test.json").write_text(json.dumps(test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="automl-tl-bench-app-") as tmp:
        runs = Path(tmp) / "runs"
        for i in range(args.runs - 1):
            synthetic_run(runs / f"run-{i:02d}", 12, i)
        synthetic_run(runs / "big", args.trials, 999)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        started = time.perf_counter()
        app = subprocess.Popen([sys.executable, "-m", "automl_tl", "app", "--runs", str(runs), "--port", str(port), "--no-browser"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                while True:
                    try:
                        page.goto(f"http://127.0.0.1:{port}/")
                        break
                    except Exception:
                        time.sleep(0.1)
                # the newest run (the big one, written last) heads the table: the table is drawn from every run's storage
                page.wait_for_function("() => document.querySelector('#runs-table')?.innerText.includes('synthetic run 999')",
                                       timeout=120_000)
                first_page = time.perf_counter() - started
                page.get_by_role("tab", name="Run", exact=True).click()
                box = page.locator("#run-picker input")
                box.click()
                box.fill("big")
                option = page.get_by_role("option", name="big", exact=True)
                option.wait_for()
                clicked = time.perf_counter()
                option.click()
                page.wait_for_function(f"() => document.querySelectorAll('#leaderboard tbody tr').length === {args.trials}"
                                       " && document.querySelectorAll('#progress img').length >= 3", timeout=60_000)
                run_page = time.perf_counter() - clicked
                browser.close()
        finally:
            app.terminate()
            app.wait(30)
    print(json.dumps({"runs": args.runs, "trials": args.trials, "startup_to_first_page_s": round(first_page, 2),
                      "run_page_s": round(run_page, 2)}))


if __name__ == "__main__":
    main()
