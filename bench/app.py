"""How fast `automl-tl app` is with many runs and big studies, measured in a real browser.

    python bench/app.py [--runs 50] [--trials 200] [--repeat 3]

Writes synthetic runs (a ``config.json`` and a SQLite study whose trials carry what the engine
records: parameters, scores, per-epoch history) into a temporary folder: one run of ``--trials``
trials, then ``--runs`` - 1 small ones (so the big run is not the newest, which the app opens
first: picking it changes the page). Then, ``--repeat`` times, starts the real command and drives
headless Chromium, launched beforehand as a user's browser is:

1. start-up to first page: from starting ``automl-tl app`` until the Runs table is drawn with
   every row read (its state, data and scores) — the starting page the app serves while Gradio
   loads (``first_page_s``) — and until the app itself has replaced it (``app_s``). Like the app's
   own opening of the browser, the bench waits for the port with a plain connection before loading
   the page (a browser retrying a refused page costs the machine more than the app's start);
2. the same start with an empty runs folder: what Python, Gradio and the browser take anyway;
3. a big run's page: from picking it to its leaderboard drawn with every row (``run_page_rows_s``),
   and to its progress and test figures drawn (``run_page_figures_s``).

Prints the median of each over the repeats, and every measurement.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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


@contextmanager
def app_on(runs: Path) -> Iterator[tuple[int, float]]:
    """`automl-tl app` on ``runs``, started now, until its port answers; (its port, when it was started)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    app = subprocess.Popen([sys.executable, "-m", "automl_tl", "app", "--runs", str(runs), "--port", str(port), "--no-browser"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if app.poll() is not None:
                raise RuntimeError(f"automl-tl app --runs {runs} exited with code {app.returncode} before serving")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, started
    finally:
        app.terminate()
        app.wait(30)


@contextmanager
def opened(browser: Any) -> Iterator[Any]:
    """A new browser tab, closed before the app stops (an open page keeps the app's server waiting on it)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        yield page
    finally:
        page.close()


def first_page(page: Any, port: int, started: float, shown: str) -> dict[str, float]:
    """Load the app's page: when the Runs table shows ``shown`` (``first_page_s``), then when the app itself is there (``app_s``)."""
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_function("text => document.querySelector('#runs-table')?.innerText.includes(text)", arg=shown, timeout=120_000)
    times = {"first_page_s": time.perf_counter() - started}
    page.wait_for_selector("#run-picker", timeout=120_000)  # the starting page reloads itself into the app
    times["app_s"] = time.perf_counter() - started
    return times


def run_page(page: Any, name: str, trials: int) -> dict[str, float]:
    """Pick run ``name`` on the Run page; when its rows, then its figures, are drawn."""
    page.get_by_role("tab", name="Run", exact=True).click()
    box = page.locator("#run-picker input")
    box.click()
    box.fill(name)
    option = page.get_by_role("option", name=name, exact=True)
    option.wait_for()
    clicked = time.perf_counter()
    option.click()
    page.wait_for_function(f"() => document.querySelectorAll('#leaderboard tbody tr').length === {trials}", timeout=60_000)
    rows = time.perf_counter() - clicked
    page.wait_for_function("() => document.querySelectorAll('#progress img').length >= 2 && document.querySelectorAll('#test img').length >= 2",
                           timeout=60_000)
    return {"run_page_rows_s": rows, "run_page_figures_s": time.perf_counter() - clicked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    measured: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="automl-tl-bench-app-") as tmp:
        runs, empty = Path(tmp) / "runs", Path(tmp) / "empty"
        empty.mkdir()
        synthetic_run(runs / "big", args.trials, 999)
        for i in range(args.runs - 1):
            synthetic_run(runs / f"run-{i:02d}", 12, i)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            for _ in range(args.repeat):
                with app_on(runs) as (port, started), opened(browser) as page:
                    one = first_page(page, port, started, f"synthetic run {args.runs - 2}")
                    one |= run_page(page, "big", args.trials)
                with app_on(empty) as (port, started), opened(browser) as page:
                    one |= {f"empty_{k}": v for k, v in first_page(page, port, started, "best validation").items()}
                measured.append(one)
            browser.close()
    medians = {k: round(statistics.median(m[k] for m in measured), 2) for k in measured[0]}
    print(json.dumps({"runs": args.runs, "trials": args.trials, "repeat": args.repeat, "median": medians,
                      "each": [{k: round(v, 2) for k, v in m.items()} for m in measured]}))


if __name__ == "__main__":
    main()
