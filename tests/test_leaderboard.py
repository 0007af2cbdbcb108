"""`automl-tl leaderboard` and the leaderboard model: every format, ordering, --top."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from automl_tl.leaderboard import COLUMNS, Leaderboard


@pytest.fixture
def finished_run(toy, run_cli, write_recipe, fast_recipe, tmp_path) -> Path:
    code, _, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "-n", "3", "--run-dir", "run")
    assert code == 0, err
    return tmp_path / "run"


def test_every_format_of_a_finished_run(finished_run, run_cli):
    test = json.loads((finished_run / "test.json").read_text())

    code, out, err = run_cli("leaderboard", finished_run, "--format", "json")
    assert code == 0, err
    board = json.loads(out)
    assert board["study"] == "toy-default" and board["objective"] == "macro_f1"
    assert board["run"]["modality"] == "toy" and board["run"]["data"]["classes"] == ["a", "b", "c"]
    assert board["test"] == test
    rows = board["rows"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert sorted(r["trial"] for r in rows) == [0, 1, 2]
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert rows[0]["trial"] == test["trial"]
    assert board["counts"]["complete"] == 3

    code, out, err = run_cli("leaderboard", finished_run, "--format", "csv")
    assert code == 0, err
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == COLUMNS
    assert [int(r[1]) for r in table[1:]] == [r["trial"] for r in rows]
    assert [float(r[COLUMNS.index("val score")]) for r in table[1:]] == pytest.approx(scores, abs=1e-4)

    code, out, err = run_cli("leaderboard", finished_run, "--format", "markdown")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "## toy-default: macro_f1 on validation"
    assert "| " + " | ".join(COLUMNS) + " |" in lines
    assert sum(1 for line in lines if re.match(r"\| \d+ \| \d+ \|", line)) == 3
    assert any(line.startswith("Held-out test") for line in lines)

    code, out, err = run_cli("leaderboard", finished_run)  # table is the default
    assert code == 0, err
    assert "toy-default" in out and "3 complete, 0 pruned, 0 failed" in out
    assert f"accuracy {test['accuracy']:.4f}" in out


def test_top_k_keeps_the_best_rows(finished_run, run_cli):
    full = json.loads(run_cli("leaderboard", finished_run, "--format", "json")[1])
    code, out, err = run_cli("leaderboard", finished_run, "--format", "json", "--top", "2")
    assert code == 0, err
    assert json.loads(out)["rows"] == full["rows"][:2]
    code, out, _ = run_cli("leaderboard", finished_run, "--format", "csv", "-k", "1")
    assert len(list(csv.reader(io.StringIO(out)))) == 2
    code, out, _ = run_cli("leaderboard", finished_run, "--format", "markdown", "--top", "1")
    assert sum(1 for line in out.splitlines() if re.match(r"\| \d+ \| \d+ \|", line)) == 1


def test_top_must_be_positive(finished_run, run_cli):
    code, _, err = run_cli("leaderboard", finished_run, "--top", "0")
    assert code == 2 and "Traceback" not in err


def test_not_a_run_directory_is_one_clear_line(run_cli, assert_user_error, tmp_path):
    (tmp_path / "empty").mkdir()
    for target in ("empty", "missing"):
        code, out, err = run_cli("leaderboard", target)
        assert_user_error(code, out, err, f"{target} is not a run directory (no config.json)")


def test_damaged_or_foreign_run_directory_is_one_clear_line(run_cli, assert_user_error, tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text("{not json")
    code, out, err = run_cli("leaderboard", damaged)
    assert_user_error(code, out, err, "config.json is unreadable")

    future = tmp_path / "future"
    future.mkdir()
    (future / "config.json").write_text(json.dumps({"format_version": 99, "study": "x"}))
    code, out, err = run_cli("leaderboard", future)
    assert_user_error(code, out, err, "incompatible automl-tl (format 99")


@pytest.fixture
def every_state(add_trial) -> optuna.Study:
    study = optuna.create_study(study_name="synthetic", direction="maximize")
    study.set_user_attr("run", {"objective": "accuracy"})
    base = {"backbone": "net", "strategy": "partial", "freeze_depth": 2, "head_lr": 1e-3, "head": "mlp",
            "head_hidden": 64, "dropout": 0.25, "pooling": "mean"}
    add_trial(study, TrialState.FAIL, None, base, fail_reason="loss became nan in epoch 1")
    add_trial(study, TrialState.COMPLETE, 0.7, base, trainable_params=1500)
    add_trial(study, TrialState.PRUNED, None, base, scores=(0.4, 0.5))
    add_trial(study, TrialState.COMPLETE, 0.9, {**base, "strategy": "feature_extraction", "head": "linear"}, trainable_params=99)
    study.ask()  # still running
    return study


def test_rows_are_ordered_complete_pruned_running_failed(every_state):
    board = Leaderboard.from_study(every_state)
    assert [(r.trial, r.state) for r in board.rows] == [(3, "complete"), (1, "complete"), (2, "pruned"), (4, "running"), (0, "fail")]
    assert board.best is not None and board.best.trial == 3
    assert board.objective == "accuracy"
    assert board.counts == {"complete": 2, "pruned": 1, "running": 1, "fail": 1}
    pruned = board.rows[2]
    assert pruned.score == 0.5 and pruned.reason == "after epoch 2"
    assert board.rows[-1].reason == "loss became nan in epoch 1"
    assert next(csv.reader(io.StringIO(board.to_csv().splitlines()[2])))[COLUMNS.index("head")] == "mlp 64 d0.25"


def test_plain_and_rendered_cells(every_state):
    board = Leaderboard.from_study(every_state)
    rows = list(csv.reader(io.StringIO(board.to_csv())))
    assert rows[1][COLUMNS.index("strategy")] == "feature extraction"
    assert rows[2][COLUMNS.index("trainable")] == "1500"
    assert rows[-1][COLUMNS.index("state")] == "failed: loss became nan in epoch 1"
    assert "| 1.5k |" in board.to_markdown()
    assert board.top(2).rows == board.rows[:2] and board.top(None) is board


def test_reading_boards_finds_optunas_newest_schema_once(tmp_path, monkeypatch):
    """Finding it loads all of alembic's migration scripts: at every open, and again in the check for silent
    running trials, that was most of the time a small run's board took (the app reads every run)."""
    from optuna.storages._rdb.storage import _VersionManager

    from automl_tl import storage

    urls = [f"sqlite:///{tmp_path / name}.db" for name in "abc"]
    for url in urls:
        study = optuna.create_study(study_name="s", storage=url, direction="maximize")
        study.set_user_attr("run", {"objective": "accuracy", "config": {"search": {"heartbeat": 1}}})
        study.ask()  # a running trial: the board asks the storage whether its worker still beats
    found: list[object] = []
    real = _VersionManager.get_head_version
    monkeypatch.setattr(_VersionManager, "get_head_version", lambda self: found.append(self) or real(self))
    monkeypatch.setattr(storage, "_newest_schema", None)
    boards = [Leaderboard.from_study(storage.load_study(url, "s")) for url in urls]
    assert len(found) == 1 and [b.counts["running"] for b in boards] == [1, 1, 1]


def test_a_study_storage_of_another_optuna_schema_is_one_clear_line(finished_run, run_cli, assert_user_error):
    import sqlite3

    with sqlite3.connect(finished_run / "study.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'v9.9.9'")
    code, out, err = run_cli("leaderboard", finished_run)
    assert_user_error(code, out, err, "has a database schema Optuna", "(v9.9.9; it reads v", "optuna storage upgrade")
