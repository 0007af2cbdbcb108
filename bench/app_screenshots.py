"""The app's screenshots in docs/ (Runs, Run with the mistakes gallery, Try it), made from real runs.

    python bench/app_screenshots.py --runs RUNS --run NAME --example FILE [--out docs/]

Why a script: the screenshots in docs/app.md and the README should show a real run (the FSDD demo)
as the app draws it today, and be made again the same way when the app changes, not by hand.

It starts the real ``automl-tl app --runs RUNS --no-browser`` (`bench.app.app_on`) and drives
headless Chromium at 1280 px wide, with every request that is not to this machine aborted and
counted: any is a failure, as in tests/test_app.py. Then:

1. ``app-runs.png``: the Runs page once every row is read;
2. ``app-run.png``: run NAME's page (full length) once its leaderboard, figures and the gallery of
   the test examples it got wrong are drawn; the gallery predicts the run's test split again, which
   takes a minute or more for speech on a CPU, so it needs the run's data where the search found it;
3. ``app-try.png``: Try it, once FILE is dropped and its prediction shown.

The app writes nothing to a run, but its runs must be folders directly under RUNS (a symlink to a
run elsewhere is refused): copy them, without their ``cache/``, which the app does not read.
Offline: ``HF_HUB_OFFLINE=1 AUTOML_TL_DATA=...`` as for a search.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

from automl_tl.testing.browser import OffMachineGuard  # noqa: E402
from bench.app import CHROMIUM_ARGS, app_on, first_page, run_page  # noqa: E402

SLOW_MS = 15 * 60_000
"""The mistakes gallery and a first prediction load the backbone and read data: generous on a small CPU."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="a folder of run directories")
    parser.add_argument("--run", required=True, help="the run shown on the Run page (a folder name in --runs)")
    parser.add_argument("--example", type=Path, required=True, help="a file to drop on Try it")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs")
    parser.add_argument("--width", type=int, default=1280, help="the browser window's width in pixels (900 high)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from automl_tl.app.page_run import MISTAKES_SHOWN
    from automl_tl.leaderboard import Leaderboard

    trials = len(Leaderboard.of_run(args.runs / args.run).rows)
    args.out.mkdir(parents=True, exist_ok=True)
    guard = OffMachineGuard()

    def shot(page: Any, name: str, full_page: bool = False) -> None:
        # not "networkidle": the pages poll every 2 s. Every picture loaded, then a moment for transitions
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
        page.wait_for_timeout(1000)
        page.screenshot(path=args.out / name, full_page=full_page)
        print(f"{args.out / name}  ({time.perf_counter() - started:.0f} s)", flush=True)

    # the browser closes before the app stops: an open page keeps the app's server waiting on it
    with app_on(args.runs) as (port, started), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": args.width, "height": 900})
        context.route("**/*", guard)
        page = context.new_page()
        page.set_default_timeout(120_000)

        first_page(page, port, started, args.run)  # the starting page, then the app it turns into
        shot(page, "app-runs.png")

        run_page(page, args.run, trials)
        page.locator("#find-mistakes").click()
        page.wait_for_function("() => /of \\d+ test examples are wrong/.test(document.querySelector('#mistakes-note').innerText)",
                               timeout=SLOW_MS)
        wrong = int(re.search(r"(\d+) of \d+ test examples", page.locator("#mistakes-note").inner_text()).group(1))
        page.wait_for_function(f"() => document.querySelectorAll('.mistake').length === {min(wrong, MISTAKES_SHOWN)}")
        shot(page, "app-run.png", full_page=True)

        page.get_by_role("tab", name="Try it").click()
        page.locator("#try-file input[type=file]").set_input_files(str(args.example))
        page.wait_for_function("name => document.querySelector('#try-message').innerText.includes(name + ':')",
                               arg=args.example.name, timeout=SLOW_MS)
        shot(page, "app-try.png")
        browser.close()
    if guard.aborted:
        sys.exit(f"the app asked for {len(guard.aborted)} thing(s) off this machine: {guard.aborted[:5]}")


if __name__ == "__main__":
    main()
