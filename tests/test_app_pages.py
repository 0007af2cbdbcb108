"""The app's pages without a browser: what the first page and a run's page read, and when.

The port must answer with the Runs table before Gradio is loaded, each board read once for every
page; a run's page must draw its leaderboard before its figures, and the hyperparameter importance
only when asked for: those are what keep the app's start and its run pages quick (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gradio", reason="the app's extra is not installed (pip install -e '.[app]')")

from automl_tl.app import page_run  # noqa: E402
from automl_tl.app.jobs import Jobs  # noqa: E402
from automl_tl.app.models import Models  # noqa: E402
from automl_tl.app.runs import Runs  # noqa: E402
from automl_tl.app.server import STARTING, Starting  # noqa: E402
from automl_tl.app.ui import App  # noqa: E402
from automl_tl.errors import UserError  # noqa: E402
from automl_tl.leaderboard import Leaderboard  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two finished runs as the engine stores them (bench/app.py's): ``big`` (30 trials), then ``small``, the newest."""
    monkeypatch.syspath_prepend(str(REPO))
    synthetic_run = importlib.import_module("bench.app").synthetic_run
    root = tmp_path / "runs"
    synthetic_run(root / "big", 30, 1)
    synthetic_run(root / "small", 4, 2)
    return root


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every board read from a run's storage, as whether it computed the importance."""
    done: list[bool] = []
    real = Leaderboard.of_run.__func__

    def counted(cls: type[Leaderboard], run_dir: Path, storage: str | None = None, importance: bool = False) -> Leaderboard:
        done.append(importance)
        return real(cls, run_dir, storage, importance)

    monkeypatch.setattr(Leaderboard, "of_run", classmethod(counted))
    return done


@pytest.fixture
def figures_drawn(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from automl_tl.report import plots

    drawn: list[int] = []
    real = plots.png
    monkeypatch.setattr(plots, "png", lambda *args: drawn.append(1) or real(*args))
    return drawn


def _app(root: Path, tmp_path: Path) -> App:
    return App(Runs(root), Jobs(tmp_path / "logs"), Models(), [str(root)], tmp_path)


def _body_rows(fragment: str) -> int:
    body = re.search(r"<tbody>(.*?)</tbody>", fragment, re.S)
    return body.group(1).count("<tr") if body else 0


def _toy_app(events: list[str]) -> Any:
    """What the loader would mount: an ASGI app with a lifespan, recording when it starts and stops."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        events.append("started")
        yield
        events.append("stopped")

    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("the app"))], lifespan=lifespan)


def test_the_port_serves_the_runs_table_until_the_app_is_loaded(runs, reads, tmp_path):
    from starlette.testclient import TestClient

    loaded, events, failures = threading.Event(), [], []

    def load() -> tuple[Any, list[str]]:
        loaded.wait(30)
        return _toy_app(events), [str(runs), str(tmp_path / "data")]

    starting = Starting(Runs(runs), load, failures.append)
    with TestClient(starting) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers[STARTING.decode()] == "1"
        body = re.search(r'<div id="runs-table">.*?<tbody>(.*?)</tbody>', page.text, re.S)
        cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]
        assert [c[:2] + [c[6]] for c in cells] == [["small", "finished", "4"], ["big", "finished", "30"]]
        assert len(reads) == 2, "each board read once, by the loader or the page, not both"
        assert client.get("/gradio_api/info").status_code == 503 and events == []
        loaded.set()
        deadline = time.monotonic() + 30
        while starting.app is None and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = client.get("/")
        assert answer.text == "the app" and STARTING.decode() not in answer.headers
        assert events == ["started"] and starting.roots == [str(runs), str(tmp_path / "data")]
    assert events == ["started", "stopped"] and failures == []


def test_an_app_that_cannot_load_is_handed_to_the_server(runs):
    from starlette.testclient import TestClient

    failures: list[BaseException] = []

    def load() -> tuple[Any, list[str]]:
        raise UserError("no app today", hint="a test")

    with TestClient(Starting(Runs(runs), load, failures.append)):
        deadline = time.monotonic() + 30
        while not failures and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [str(f) for f in failures] == [str(UserError("no app today", hint="a test"))]


def test_a_board_being_read_is_waited_for_not_read_again(runs, monkeypatch):
    real = Leaderboard.of_run.__func__
    started: list[float] = []

    def slow(cls: type[Leaderboard], run_dir: Path, storage: str | None = None, importance: bool = False) -> Leaderboard:
        started.append(time.monotonic())
        time.sleep(0.3)
        return real(cls, run_dir, storage, importance)

    monkeypatch.setattr(Leaderboard, "of_run", classmethod(slow))
    boards = Runs(runs)
    got: list[Leaderboard] = []
    threads = [threading.Thread(target=lambda: got.append(boards.board("big"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 1 and len(got) == 3 and all(board is got[0] for board in got)


def test_a_run_page_draws_its_leaderboard_then_its_figures(runs, tmp_path, reads, figures_drawn):
    app = _app(runs, tmp_path)
    status, _, _, _, _, board, now = page_run.refresh(app, "big", None)
    assert status.startswith("**finished**") and _body_rows(board) == 30
    assert "<img" not in board and figures_drawn == [], "the leaderboard waits for no figure"
    progress, test, drawn = page_run.figures(app, "big", now, None)
    assert progress.count("<img") == 2 and test.count("<img") == 2 and drawn == now
    assert len(figures_drawn) == 4
    again: tuple[Any, ...] = page_run.figures(app, "big", now, drawn)
    assert again[2] == now and len(figures_drawn) == 4, "an unchanged run is not drawn again"
    assert reads == [False], "one read of the board for both steps, without the importance"


def test_the_importance_is_computed_only_when_asked_for(runs, tmp_path, reads):
    app = _app(runs, tmp_path)
    now = page_run.refresh(app, "big", None)[-1]
    page_run.figures(app, "big", now, None)
    assert True not in reads
    shown = page_run.what_mattered(app, "big")
    assert reads[-1] is True and shown.count("<img") == 1 and "PED-ANOVA" in shown
