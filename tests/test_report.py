"""`automl-tl report`: the content of a real run's report, both formats, errors, and a real browser."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from automl_tl.leaderboard import COLUMNS, Leaderboard
from automl_tl.report import html
from automl_tl.report.content import build

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def toy_run(toy, run_cli, write_recipe, fast_recipe, tmp_path) -> Path:
    code, _, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "-n", "4", "--run-dir", "run")
    assert code == 0, err
    return tmp_path / "run"


@pytest.fixture
def html_report(toy_run, run_cli, tmp_path) -> Path:
    code, out, err = run_cli("report", toy_run, "--out", "out/report.html")
    assert code == 0, err
    assert out.startswith("wrote out/report.html (")
    return tmp_path / "out" / "report.html"


def test_html_report_of_a_real_run(html_report, toy_run):
    page = html_report.read_text()
    config = json.loads((toy_run / "config.json").read_text())
    test = json.loads((toy_run / "test.json").read_text())
    sizes = config["data"]["sizes"]

    # the headline: task, data, split, the best model's test score
    assert "<h1>toy-default: transfer-learning search report</h1>" in page
    assert "toy classification into 3 classes: a, b, c" in page
    assert f"{sizes['train']} train / {sizes['validation']} validation / {sizes['test']} test" in page
    assert f"accuracy {test['accuracy']:.3f} and macro-F1 {test['macro_f1']:.3f}" in page
    spread = test["intervals"]["accuracy"]
    assert f"accuracy {test['accuracy']:.4f} (95 % interval {spread['low']:.3f}–{spread['high']:.3f})" in page
    assert spread["low"] <= test["accuracy"] <= spread["high"]
    # the engine runs a linear probe first, as the baseline the headline compares the best model with
    assert re.search(r"<dt>Baseline</dt><dd>(the best model is itself the simplest baseline|linear probe, trial 0: )", page)

    # the leaderboard: the terminal's columns, one row per trial, the best one highlighted
    board = _table_after(page, "Leaderboard")
    assert re.findall(r"<th[^>]*>([^<]*)</th>", board) == COLUMNS
    rows = re.findall(r"<tr( class=\"[a-z]+\")?><td[^>]*>(\d+)</td><td[^>]*>(\d+)</td>", board)
    assert [int(rank) for _, rank, _ in rows] == [1, 2, 3, 4]
    assert sorted(int(trial) for _, _, trial in rows) == [0, 1, 2, 3]
    assert rows[0][0] == ' class="best"' and int(rows[0][2]) == test["trial"]

    # the test split: per-class scores for every class
    per_class = _table_after(page, "Best model on the test split")
    for name, scores in test["per_class"].items():
        assert f"<td>{name}</td><td class=\"num\">{scores['precision']:.3f}</td>" in per_class

    # a run without a target domain has no adaptation section
    assert "Domain adaptation" not in page

    # reproducibility
    assert "<dt>Seed</dt><dd>0</dd>" in page and "<dt>Command</dt>" in page and "<dt>PyTorch</dt>" in page

    # self-contained: every image inline, nothing fetched from anywhere
    sources = re.findall(r"<img [^>]*src=\"([^\"]*)\"", page)
    assert len(sources) >= 7
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG)
    assert not re.search(r"https?://|<script|<link|@import|url\(", page)


def test_leaderboard_json_holds_what_the_report_needs(toy_run, run_cli):
    code, out, err = run_cli("leaderboard", toy_run, "--format", "json")
    assert code == 0, err
    board = json.loads(out)
    assert set(board["importance"]) and board["importance_note"] is None
    for row in board["rows"]:
        assert row["started"] <= row["finished"]
        assert "baseline" in row


def test_markdown_report_writes_its_images_beside_it(toy_run, run_cli, tmp_path):
    code, out, err = run_cli("report", toy_run, "--out", "wiki/Search.md")  # the format follows the extension
    assert code == 0, err
    assert "image(s) beside it" in out
    text = (tmp_path / "wiki" / "Search.md").read_text()
    assert text.startswith("# toy-default: transfer-learning search report\n")
    assert "| " + " | ".join(COLUMNS) + " |" in text
    assert sum(1 for line in text.splitlines() if re.match(r"\| \d+ \| \d+ \|", line)) == 4
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 7 and len(set(links)) == len(links)
    for link in links:
        assert (tmp_path / "wiki" / link).read_bytes().startswith(PNG)
    assert "data:" not in text and not re.search(r"https?://", text)


def test_several_runs_add_a_comparison(fast_recipe, toy_run, run_cli, write_recipe, tmp_path):
    code, _, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "-n", "2", "--seed", "1", "--run-dir", "other")
    assert code == 0, err
    code, _, err = run_cli("report", toy_run, "other", "-o", "both.html")
    assert code == 0, err
    page = (tmp_path / "both.html").read_text()
    comparison = _table_after(page, "Comparison across runs")
    assert comparison.count("<tr>") == 3  # header and one row per run
    assert f"<td>{toy_run}</td>" in comparison and "<td>other</td>" in comparison
    assert f"<h2>Run 1: toy-default ({toy_run})</h2>" in page and "<h2>Run 2: toy-default (other)</h2>" in page
    assert page.count("<h3>Headline</h3>") == 2


def test_pruned_failed_and_running_rows_are_subdued_and_the_baseline_is_named(synthetic):
    page = html.render(build([("synthetic", Leaderboard.from_study(synthetic(), importance=True))]))
    classes = re.findall(r"<tr(?: class=\"([a-z]+)\")?><td", _table_after(page, "Leaderboard"))
    assert classes == ["best", "", "baseline", "pruned", "running", "fail"]
    assert "<dt>Baseline</dt><dd>linear probe, trial 1: validation accuracy 0.5500; the best model is +0.3500 (+35.0 points)" in page
    assert "1 failed trial(s) have no score" in page


def test_without_a_marked_baseline_the_best_linear_probe_is_the_baseline(synthetic):
    board = Leaderboard.from_study(synthetic(mark_baseline=False))
    assert board.baseline is not None and board.baseline.trial == 3
    page = html.render(build([("synthetic", board)]))
    assert "<dt>Baseline</dt><dd>linear probe (frozen backbone, linear head), trial 3: validation accuracy 0.7000" in page


def test_a_test_score_of_an_earlier_trial_is_not_credited_to_the_best(synthetic):
    study = synthetic()
    study.set_user_attr("test", {"trial": 3, "refit": True, "accuracy": 0.75, "macro_f1": 0.74, "n": 8,
                                 "confusion": [[3, 1], [1, 3]],
                                 "per_class": {c: {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4} for c in "ab"}})
    page = html.render(build([("synthetic", Leaderboard.from_study(study))]))
    assert "The test split was last evaluated for trial 3; the search has found a better trial since." in page
    assert "Chosen model: trial 3 (" in page  # the score is credited to the trial that was tested
    assert "trial 3&#x27;s configuration, refit on train+validation" in page


def test_importance_with_one_completed_trial_is_a_sentence_not_a_failure():
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("run", {"objective": "accuracy"})
    study.enqueue_trial({"head_lr": 1e-3})
    study.optimize(lambda t: t.suggest_float("head_lr", 1e-4, 1e-2, log=True), n_trials=1)
    board = Leaderboard.from_study(study, importance=True)
    assert board.importance is None and "at least 2 completed trials" in (board.importance_note or "")
    page = html.render(build([("one", board)]))
    assert "<p class=\"note\">Hyperparameter importance needs at least 2 completed trials; this run has 1.</p>" in page
    assert "The test split has not been evaluated yet" in page


def test_not_a_run_directory_or_an_empty_study_is_one_clear_line(run_cli, assert_user_error, tmp_path):
    code, out, err = run_cli("report", "missing")
    assert_user_error(code, out, err, "missing is not a run directory (no config.json)")

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"format_version": 1, "study": "nothing", "storage": None}))
    optuna.create_study(study_name="nothing", storage=f"sqlite:///{empty / 'study.db'}")
    code, out, err = run_cli("report", "empty")
    assert_user_error(code, out, err, "run empty has no trials yet")


def test_an_unwritable_out_is_one_clear_line(toy_run, run_cli, assert_user_error, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    code, out, err = run_cli("report", toy_run, "--out", "a-file/report.html")
    assert_user_error(code, out, err, "cannot write the report to a-file/report.html")
    (tmp_path / "a-folder").mkdir()
    code, out, err = run_cli("report", toy_run, "--out", "a-folder")
    assert_user_error(code, out, err, "cannot write the report to a-folder")


def test_a_real_browser_renders_the_report_with_nothing_missing(html_report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        if os.environ.get("CI") or os.environ.get("AUTOML_TL_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed, but CI must run the browser check (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs this check")
    shot = tmp_path / "report.png"
    seen = _browse(browser, html_report.resolve().as_uri(), shot)

    assert seen["title"] == "toy-default: transfer-learning search report"
    assert seen["requested"] == [html_report.resolve().as_uri()], "the page fetched something besides itself"
    assert seen["failed"] == [] and seen["errors"] == []
    assert len(seen["images"]) >= 7
    assert all(complete and width > 100 for complete, width in seen["images"]), seen["images"]

    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50, "the screenshot is (nearly) blank"


def _table_after(page: str, heading: str) -> str:
    """The first table after the heading ``heading``."""
    start = page.index(f">{heading}</h")
    return page[page.index("<table>", start):page.index("</table>", start)]


@pytest.fixture
def synthetic(add_trial) -> Callable[..., optuna.Study]:
    """Builds an in-memory study with a trial in every state; trials 1 and 3 are linear probes, the engine may mark 1."""

    def make(mark_baseline: bool = True) -> optuna.Study:
        study = optuna.create_study(direction="maximize")
        study.set_user_attr("run", {"objective": "accuracy", "modality": "toy", "data": {"classes": ["a", "b"]}})
        probe = {"backbone": "net", "strategy": "feature_extraction", "freeze_depth": 3, "head_lr": 1e-3, "head": "linear",
                 "pooling": "mean", "epochs": 2}
        add_trial(study, TrialState.FAIL, None, probe, fail_reason="loss became nan in epoch 1")
        add_trial(study, TrialState.COMPLETE, 0.55, probe, **({"baseline": "linear probe"} if mark_baseline else {}))
        add_trial(study, TrialState.PRUNED, None, {**probe, "strategy": "full", "freeze_depth": 0, "backbone_lr": 1e-4})
        add_trial(study, TrialState.COMPLETE, 0.7, probe)
        add_trial(study, TrialState.COMPLETE, 0.9, {**probe, "strategy": "partial", "freeze_depth": 1, "backbone_lr": 1e-4})
        study.ask()  # still running
        return study

    return make


def _browse(browser: str, url: str, screenshot: Path, width: int = 1280, height: int = 2000, timeout: float = 90) -> dict[str, Any]:
    """Open ``url`` in headless Chromium over the DevTools pipe; what it requested, what failed, what it drew.

    The pipe (fds 3 and 4, ``--remote-debugging-pipe``) needs no port and no client library, and
    unlike ``--screenshot`` it reports every request, failed load and console error, and whether
    each image actually decoded.
    """
    to_browser, from_us = os.pipe()
    to_us, from_browser = os.pipe()

    def wire_pipes() -> None:  # in the child: Chromium reads commands on fd 3 and answers on fd 4
        import fcntl

        reading, writing = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser))
        os.dup2(reading, 3)
        os.dup2(writing, 4)

    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            preexec_fn=wire_pipes, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        events: list[dict[str, Any]] = []
        pending = b""
        ids = iter(range(1, 1_000_000))

        def receive() -> dict[str, Any]:
            nonlocal pending
            while b"\0" not in pending:
                ready, _, _ = select.select([to_us], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(to_us, 1 << 16) if ready else b""
                if not chunk:
                    raise AssertionError("chromium did not answer in time" if not ready else "chromium closed the DevTools pipe")
                pending += chunk
            message, _, pending = pending.partition(b"\0")
            return json.loads(message)

        def call(method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
            number = next(ids)
            os.write(from_us, json.dumps({"id": number, "method": method, "params": params,
                                          **({"sessionId": session} if session else {})}).encode() + b"\0")
            while (message := receive()).get("id") != number:
                events.append(message)
            assert "error" not in message, message
            return message["result"]

        try:
            target = call("Target.createTarget", url="about:blank")["targetId"]
            session = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Network", "Page", "Log", "Runtime"):
                call(f"{domain}.enable", session)
            call("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1, mobile=False)
            call("Page.navigate", session, url=url)
            while not any(e.get("method") == "Page.loadEventFired" for e in events):
                events.append(receive())
            state = call("Runtime.evaluate", session, returnByValue=True, expression=(
                "({title: document.title,"
                " images: Array.from(document.images, i => [i.complete, i.naturalWidth])})"))["result"]["value"]
            png = call("Page.captureScreenshot", session, format="png")["data"]
            screenshot.write_bytes(base64.b64decode(png))
        finally:
            os.close(from_us)  # Chromium exits when its command pipe closes
            os.close(to_us)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def of(method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in events if e.get("method") == method]

    return {
        **state,
        "requested": [e["request"]["url"] for e in of("Network.requestWillBeSent") if not e["request"]["url"].startswith("data:")],
        "failed": of("Network.loadingFailed"),
        "errors": [e["entry"] for e in of("Log.entryAdded") if e["entry"]["level"] == "error"],
    }


HOSTILE_LABELS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[click](javascript:alert(1))",
                  "costs $5 or $\\frac{x", "a rather long label " * 12]


@pytest.mark.filterwarnings("error")  # matplotlib warns when a long tick label leaves the plot no room
def test_labels_are_text_in_every_format_and_long_ones_fit_the_plots(synthetic, tmp_path):
    from automl_tl.report import write_report

    study = synthetic()
    n = len(HOSTILE_LABELS)
    study.set_user_attr("run", {**study.user_attrs["run"], "data": {"classes": HOSTILE_LABELS}})
    per_class = {label: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2} for label in HOSTILE_LABELS}
    study.set_user_attr("test", {"trial": 4, "accuracy": 0.5, "macro_f1": 0.5, "n": 2 * n, "refit": True,
                                 "confusion": [[1 if i == j else 0 for j in range(n)] for i in range(n)], "per_class": per_class})
    board = Leaderboard.from_study(study)
    write_report([("run", board)], tmp_path / "report.md", "markdown")
    write_report([("run", board)], tmp_path / "report.html", "html")
    markdown = (tmp_path / "report.md").read_text()
    for page in (markdown, (tmp_path / "report.html").read_text()):
        assert "<script" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert HOSTILE_LABELS[-1].strip() in page.replace("\\", ""), "the whole label is in the per-class table"
    assert "\\[click\\](javascript:" in markdown and "[click](" not in markdown, "a label is never a link"
