"""`automl-tl app`: the whole app in a real browser (Playwright driving Chromium), offline, and its guard.

The browser test starts the real command on a temporary runs folder, with the toy plugin seen by
the app and by the searches it starts, and with every request that is not to this machine aborted
and counted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import Request, urlopen

import pytest

from automl_tl.leaderboard import Row, cells
from automl_tl.testing.browser import OffMachineGuard

REQUIRED = bool(os.environ.get("CI") or os.environ.get("AUTOML_TL_REQUIRE_CHROMIUM"))
"""In CI the browser check must run: what it needs missing is a failure there, a skip elsewhere."""

try:
    import gradio  # noqa: F401
    import playwright  # noqa: F401
except ImportError as missing:
    if REQUIRED:
        raise RuntimeError(f"CI must run the app's browser check, but {missing.name} is not installed") from None
    pytest.skip(f"{missing.name} is not installed (pip install -e '.[test,app]')", allow_module_level=True)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SLOW_TOY = """
modality = "toy"
[search]
seed = 1
pruner = "none"
[space]
strategy = "partial"
epochs = 40
batch_size = 8
"""
"""A search whose trials take seconds each, so the app sees it while it writes, and a search left
running until Stop does not pile up hundreds of trials (each poll of a live run page redraws them
all: on a loaded machine the polls then crowd out the Stop click)."""
SLOW_MS = 120_000
"""How long a step that waits on a search may take: a loaded 2-core machine (or one core) has needed over a minute."""


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if REQUIRED:
            pytest.fail("chromium is not installed, but CI must run the browser check (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs this check")
    return browser


def _app_tmp(tmp_path: Path) -> Path:
    """Where the app started by `served` keeps its own files: its temporary folder is made under TMPDIR."""
    return tmp_path / "app-tmp"


def _search_logs(tmp_path: Path, lines: int = 40) -> str:
    """The end of each log of a search the app started: a lost stop shows there as "Exception ignored"."""
    return "\n".join(f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
                     for log in sorted(_app_tmp(tmp_path).glob("*/logs/*.log")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_app(port: int, process: subprocess.Popen[Any], timeout: float = 120) -> None:
    """Until the port answers with the app itself, not the starting page it serves while Gradio loads."""
    from automl_tl.app.server import STARTING

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the app exited while starting"
        try:
            with urlopen(Request(f"http://127.0.0.1:{port}/", method="HEAD"), timeout=5) as answer:
                if STARTING.decode() not in answer.headers:
                    return
        except HTTPError as answer:
            if STARTING.decode() not in answer.headers:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the app did not start in time")


@pytest.fixture
def env(toy, tmp_path: Path) -> dict[str, str]:
    """The environment of the app and its searches: the toy plugin's dist-info on PYTHONPATH."""
    from kill_driver import child_env

    return dict(child_env(tmp_path / "site"))


@pytest.fixture
def served(env, tmp_path: Path) -> Iterator[str]:
    """`automl-tl app --runs runs --no-browser` in the test's folder; its URL."""
    port = _free_port()
    log = (tmp_path / "app.log").open("w")
    _app_tmp(tmp_path).mkdir()  # the app's own folder, and its searches' logs, where a failure can show them
    process = subprocess.Popen([sys.executable, "-m", "automl_tl", "app", "--runs", "runs", "--port", str(port), "--no-browser"],
                               cwd=tmp_path, env={**env, "TMPDIR": str(_app_tmp(tmp_path))}, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_app(port, process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.send_signal(signal.SIGINT)  # as Ctrl-C: the app stops its searches first
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _status(page: Any) -> str:
    return page.locator("#run-status").inner_text()


def _wait(page: Any, condition: str, tmp_path: Path, failure: str, arg: Any = None, timeout: float = SLOW_MS) -> None:
    """Wait until the page's JS ``condition`` holds; on timeout, fail with ``failure``, what the page showed and what
    the searches printed.

    Generous: on a loaded 2-core machine one poll of the page has been seen to take several seconds,
    and a poll still drawing skips the next; a click's event queues in the same busy server (a Stop
    once went unanswered for 60 s)."""
    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout)
    except Exception:
        shown = page.locator("#run-status").inner_text(), page.locator("#mistakes-note").inner_text()
        raise AssertionError(f"{failure}: {shown}\n{_search_logs(tmp_path)}") from None


def _wait_status(page: Any, prefix: str, tmp_path: Path) -> None:
    """Wait until the Run page's status starts with ``prefix``."""
    _wait(page, "p => document.querySelector('#run-status').innerText.startsWith(p)", tmp_path,
          f"the run never read {prefix!r}", arg=prefix)


def _stop(page: Any, tmp_path: Path) -> None:
    """Click Stop, see the app send the Ctrl-C, and wait for the run to read interrupted."""
    page.locator("#stop").click()
    _wait(page, "() => document.querySelector('#mistakes-note').innerText.startsWith('Stopping')", tmp_path,
          "Stop was never acknowledged")
    _wait_status(page, "interrupted", tmp_path)


def _rows(page: Any) -> list[list[str]]:
    return page.locator("#leaderboard table tbody tr").evaluate_all("rows => rows.map(r => Array.from(r.cells, c => c.innerText.trim()))")


def _pick(page: Any, element: str, value: str) -> None:
    """Choose ``value`` in a Gradio dropdown."""
    box = page.locator(f"{element} input")
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=True).click()


def _fill(page: Any, element: str, value: str) -> None:
    page.locator(f"{element} textarea, {element} input").first.fill(value)


def _start(page: Any, name: str, trials: int, recipe: Path) -> None:
    page.get_by_role("tab", name="New search").click()
    _pick(page, "#modality", "toy")
    _fill(page, "#recipe", str(recipe))
    _fill(page, "#n-trials", str(trials))
    _fill(page, "#run-name", name)
    page.locator("#run-name textarea, #run-name input").first.press("Tab")
    expected = f"automl-tl search --modality toy --recipe {recipe} --n-trials {trials} --run-dir runs/{name}"
    try:
        page.wait_for_function("text => document.querySelector('#search-command').innerText.includes(text)", arg=expected, timeout=10_000)
    except Exception:
        raise AssertionError(page.locator("#search-command").inner_text()) from None
    page.locator("#start").click()
    try:
        page.wait_for_function("() => /^(starting|running)/.test(document.querySelector('#run-status').innerText)")
    except Exception:
        shown = _status(page), page.locator("#search-message").inner_text(), page.locator("#run-picker input").input_value()
        raise AssertionError(f"{name} never read starting or running: {shown}") from None


def _leaderboard_json(env: dict[str, str], tmp_path: Path, run: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "automl_tl", "leaderboard", f"runs/{run}", "--format", "json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["rows"]


def test_the_app_in_a_real_browser(served, env, tmp_path, fast_recipe):
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    recipe = tmp_path / "fast.toml"
    recipe.write_text(fast_recipe)
    (tmp_path / "slow.toml").write_text(SLOW_TOY)
    cli_log = (tmp_path / "cli.log").open("w")  # a file, not a pipe: an unread pipe fills and blocks the search mid-write
    cli = subprocess.Popen([sys.executable, "-m", "automl_tl", "search", "-r", "slow.toml", "-n", "40", "--run-dir", "runs/cli-run"],
                           cwd=tmp_path, env=env, stdout=cli_log, stderr=subprocess.STDOUT)
    guard = OffMachineGuard()

    try:
        with sync_playwright() as playwright, tempfile_profile() as profile:
            browser = playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.route("**/*", guard)
            page.set_default_timeout(60_000)
            page.goto(served)

            # a run the command line is writing now: listed, then a new trial shows without reloading
            page.wait_for_selector("#runs-table")
            while not (tmp_path / "runs" / "cli-run" / "study.db").exists():
                time.sleep(0.2)
            # generous: on one busy core the command line's search takes most of a minute to start its first trial
            page.wait_for_function("() => /cli-run\\s+running/.test(document.querySelector('#runs-table').innerText)", timeout=SLOW_MS)
            _pick(page, "#run-picker", "cli-run")
            page.get_by_role("tab", name="Run", exact=True).click()
            page.wait_for_function("() => document.querySelectorAll('#leaderboard tbody tr').length > 0")
            seen = len(_rows(page))
            page.wait_for_function(f"() => document.querySelectorAll('#leaderboard tbody tr').length > {seen}", timeout=SLOW_MS)
            cli.send_signal(signal.SIGINT)

            # New search → its Run page, live, to the end; the same rows as `automl-tl leaderboard`
            _start(page, "app-run", 2, recipe)
            _wait_status(page, "finished", tmp_path)
            page.wait_for_function("() => document.querySelector('#test img') !== null")
            expected = [cells(Row(**row), plain=False) for row in _leaderboard_json(env, tmp_path, "app-run")]
            assert _rows(page) == expected and len(expected) == 2

            # the hyperparameter importance: computed when asked for, not with the page (its text, not emptiness:
            # Gradio may draw a progress timer in it for a moment while the pick's other updates land)
            assert not re.search("PED-ANOVA|importance", page.locator("#importance").inner_text())
            page.locator("#weigh").click()
            page.wait_for_function("() => /PED-ANOVA|importance/.test(document.querySelector('#importance').innerText)")

            # the test examples the model got wrong, most confident first
            page.locator("#find-mistakes").click()
            page.wait_for_function("() => /of \\d+ test examples are wrong/.test(document.querySelector('#mistakes-note').innerText)")
            wrong, tested = map(int, re.search(r"(\d+) of (\d+) test examples", page.locator("#mistakes-note").inner_text()).groups())
            page.wait_for_function(f"() => document.querySelectorAll('.mistake').length === {min(wrong, 24)}")
            confidences = [int(c) for c in re.findall(r"\((\d+)%\)", page.locator("#mistakes").inner_text())]
            assert confidences == sorted(confidences, reverse=True)

            # Try it: a dropped file → the label load_model(run).predict gives
            example = tmp_path / "example.json"
            example.write_text(json.dumps({"x": [[1.5, 0, 0, 1.5, 0, 0, 1.5, 0]] * 5}))
            page.get_by_role("tab", name="Try it").click()
            page.locator("#try-file input[type=file]").set_input_files(str(example))
            page.wait_for_function("() => document.querySelector('#try-message').innerText.includes('example.json')")
            import automl_tl

            truth = automl_tl.load_model(tmp_path / "runs" / "app-run").predict([example], top_k=1)[0][0]
            assert f"example.json: {truth['label']} ({truth['score']:.1%})" in page.locator("#try-message").inner_text()

            # Stop = Ctrl-C (the trial is marked interrupted), Resume = the same command again
            _start(page, "stopped-run", 500, tmp_path / "slow.toml")  # more than fit in the test: only Stop ends it
            page.wait_for_function("() => document.querySelector('#run-status').innerText.startsWith('running')"
                                   " && document.querySelectorAll('#leaderboard tbody tr').length > 0", timeout=SLOW_MS)
            _stop(page, tmp_path)
            stopped = _leaderboard_json(env, tmp_path, "stopped-run")
            assert any("interrupted" in (row["reason"] or "") for row in stopped), stopped
            page.locator("#resume").click()
            _wait_status(page, "running", tmp_path)
            page.wait_for_function(f"() => document.querySelectorAll('#leaderboard tbody tr').length > {len(stopped)}", timeout=SLOW_MS)
            _stop(page, tmp_path)
            browser.close()
    finally:
        if cli.poll() is None:
            cli.send_signal(signal.SIGINT)
        try:
            cli.wait(30)
        except subprocess.TimeoutExpired:
            cli.kill()
            raise AssertionError("the command line's search did not end 30 s after Ctrl-C; it printed:\n"
                                 + (tmp_path / "cli.log").read_text(errors="replace")[-4000:])  # chained to any failure before it
        finally:
            cli_log.close()
    assert guard.aborted == [], f"the app asked for {len(guard.aborted)} thing(s) off this machine: {guard.aborted[:5]}"


def test_files_outside_the_runs_and_their_data_are_not_found(served, tmp_path):
    runs = tmp_path / "runs"
    inside = runs / "note.txt"
    inside.write_text("a run's file")
    for outside in ("/etc/passwd", str(tmp_path / "app.log"), f"{runs}/../app.log", "http://example.com/x.png"):
        with pytest.raises(HTTPError) as refused:
            urlopen(served + "gradio_api/file=" + quote(outside), timeout=10)
        assert refused.value.code == 404, outside
    assert urlopen(served + "gradio_api/file=" + quote(str(inside)), timeout=10).read() == b"a run's file"


def test_off_loopback_the_app_needs_a_token(run_cli, assert_user_error):
    code, out, err = run_cli("app", "--host", "0.0.0.0", "--no-browser")
    assert_user_error(code, out, err, "--host 0.0.0.0 makes the app reachable from other machines, so it needs --token")


def test_the_guard_asks_for_the_token_then_keeps_it_in_a_cookie(tmp_path):
    from starlette.responses import PlainTextResponse
    from starlette.testclient import TestClient

    from automl_tl.app.server import Guard

    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("page")(scope, receive, send)

    client = TestClient(Guard(ok, "s3cret", lambda: [str(tmp_path)]), follow_redirects=False)
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    entered = client.get("/?token=s3cret&x=1")
    assert entered.status_code == 303 and entered.headers["location"] == "/?x=1"
    assert client.get("/").text == "page"  # the cookie carries it now
    assert client.get("/gradio_api/file=/etc/passwd").status_code == 404


def tempfile_profile() -> Any:
    """A fresh browser profile folder, removed afterwards."""
    import tempfile

    return tempfile.TemporaryDirectory(prefix="automl-tl-chromium-")
