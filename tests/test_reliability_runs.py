"""Runs and trials that outlive what started them: two searches claiming one new run directory, a
run whose study database was deleted, a trial longer than the time budget, a trial whose worker is
gone but that the storage still calls running. Each ends in one clear line or an honest leaderboard."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import optuna
import pytest

from automl_tl.config import GRACE_BEATS
from automl_tl.leaderboard import Leaderboard
from automl_tl.storage import open_storage
from automl_tl.trials import spends_budget

FAST = """
modality = "toy"
[search]
pruner = "none"
heartbeat = 1
[space]
strategy = "feature_extraction"
epochs = 1
"""


@pytest.mark.parametrize("settings", ["different", "same"])
def test_two_searches_started_at_once_on_a_new_run_directory(toy, tmp_path, settings):
    """Both read config.json before either writes it (a barrier holds them there, as an unlucky start
    would): searches with different settings must not both take the directory, while workers of
    one search (same settings, the documented way to run several) share it and its one study."""
    from kill_driver import child_env, command

    recipe = tmp_path / "recipe.toml"
    recipe.write_text(FAST)
    seeds = ["1", "2"] if settings == "different" else ["1", "1"]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = child_env(tmp_path / "site", "config-barrier", str(barrier))
    workers = [subprocess.Popen(command("search", "-r", str(recipe), "-n", "3", "--seed", seed, "--run-dir", "run"),
                                env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for seed in seeds]
    results = [(w.wait(timeout=120), *w.communicate()) for w in workers]
    assert all("Traceback" not in out + err for _, out, err in results), results
    study_names = optuna.study.get_all_study_names(f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert study_names == ["toy-default"]
    if settings == "different":
        assert sorted(code for code, _, _ in results) == [0, 2], results
        _, _, err = next(r for r in results if r[0] == 2)
        assert err.strip().startswith("Error: run directory run holds a search with different data or settings"), err
        winner = next(seed for seed, (code, _, _) in zip(seeds, results, strict=True) if code == 0)
        assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == int(winner)
    else:
        assert [code for code, _, _ in results] == [0, 0], results
        study = optuna.load_study(study_name="toy-default", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
        assert sum(1 for t in study.get_trials() if spends_budget(t)) == 3, "one budget, shared"


def test_a_run_directory_holds_one_study(toy, run_cli, write_recipe, assert_user_error):
    recipe = write_recipe(FAST)
    code, out, err = run_cli("search", "-r", recipe, "-n", "1", "--run-dir", "run", "--study", "first")
    assert code == 0, err
    code, out, err = run_cli("search", "-r", recipe, "-n", "1", "--run-dir", "run", "--study", "second")
    assert_user_error(code, out, err, "run directory run holds study 'first', not 'second'", "--study first")


def test_a_deleted_study_database_is_refused_not_started_afresh(toy, run_cli, write_recipe, assert_user_error, tmp_path):
    recipe = write_recipe(FAST)
    code, out, err = run_cli("search", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert code == 0, err
    record = (tmp_path / "run" / "trials" / "0000" / "record.json").read_text()
    (tmp_path / "run" / "study.db").unlink()
    for _ in range(2):  # refused again on the retry: the storage it opened the first time holds no study either
        code, out, err = run_cli("search", "-r", recipe, "-n", "2", "--run-dir", "run")
        assert_user_error(code, out, err, "run directory run holds trial records but the storage sqlite:///",
                          "has no study 'toy-default'", "restore the study's database", "new --run-dir")
    assert (tmp_path / "run" / "trials" / "0000" / "record.json").read_text() == record, "the old records are untouched"


def test_the_time_budget_stops_a_trial_in_progress(toy, run_cli, write_recipe, monkeypatch, tmp_path):
    """``epochs = 1000`` with ``--timeout 1``: the trial stops after the epoch that ends the budget,
    completes with its best epoch so far, and says why it is short."""
    import automl_tl.search.objective as objective

    real_train = objective.train_trial

    def slow_epochs(*args, on_epoch, **kwargs):  # 1000 epochs then take at least 10 s
        def epoch(entry, state, predictions):
            time.sleep(0.01)
            on_epoch(entry, state, predictions)

        return real_train(*args, on_epoch=epoch, **kwargs)

    monkeypatch.setattr(objective, "train_trial", slow_epochs)
    recipe = write_recipe(FAST.replace("epochs = 1", "epochs = 1000"))
    started = time.monotonic()
    code, out, err = run_cli("search", "-r", recipe, "--timeout", "1", "--run-dir", "run")
    assert code == 0, out + err
    assert time.monotonic() - started < 8, "the trial ran on past the budget"
    record = json.loads((tmp_path / "run" / "trials" / "0000" / "record.json").read_text())
    epochs = len(record["user_attrs"]["history"])
    assert record["state"] == "complete" and 1 <= epochs < 1000
    assert record["reason"] == f"stopped by the time budget after epoch {epochs} of 1000"
    assert json.loads((tmp_path / "run" / "test.json").read_text())["trial"] == 0, "its best epoch is the model"
    code, out, err = run_cli("leaderboard", "run", "--format", "csv")
    assert f"complete: stopped by the time budget after epoch {epochs} of 1000" in out


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_running_trial_whose_worker_is_gone_reads_as_interrupted(tmp_path):
    """The storage says RUNNING until a search looks again; a leaderboard (and so a report) says what is true."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, 1, lambda study, trial: None)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.set_user_attr("run", {"config": {"search": {"heartbeat": 1}}})
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host = socket.gethostname()
    workers = {f"{host}:{ended.pid}": None, "another-machine:1": None, f"{host}:{os.getpid()}": None}
    for worker in workers:
        trial = study.ask()
        trial.set_user_attr("worker", worker)
        storage.record_heartbeat(trial._trial_id)
        workers[worker] = trial._trial_id

    def states() -> list[str]:
        board = Leaderboard.from_study(optuna.load_study(study_name="s", storage=url))
        return [f"{r.state}: {r.reason}" if r.reason else r.state for r in sorted(board.rows, key=lambda r: r.trial)]

    assert states() == ["fail: interrupted (its process ended)", "running", "running"]
    time.sleep(GRACE_BEATS + 1.5)  # the database clock counts whole seconds
    storage.record_heartbeat(workers[f"{host}:{os.getpid()}"])  # this one is alive and beating
    assert states() == ["fail: interrupted (its process ended)", "fail: interrupted (its worker stopped responding)", "running"]
    assert Leaderboard.from_study(study).interrupted == 2
    assert {t.state for t in study.get_trials()} == {optuna.trial.TrialState.RUNNING}, "a reader writes nothing"
