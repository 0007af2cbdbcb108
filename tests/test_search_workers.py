"""`--workers N`: one search, N processes on its one study, the test evaluated once by the search that started them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc
from optuna.trial import TrialState

from automl_tl.errors import Terminated
from automl_tl.trials import RETRY_OF, is_interrupted, spends_budget

FIXTURES = Path(__file__).parent / "fixtures"
SLOW = ('strategy = "partial"\nfreeze_depth = 1\nepochs = 2', "[options]\nstep_seconds = 0.2\n")
"""The space and options of a toy search whose trials take two seconds or so: eight of them outlast a
helper's start (importing torch and the rest takes seconds on a busy CI machine)."""


@pytest.fixture
def helpers_find_the_toy(toy, tmp_path, monkeypatch) -> None:
    """A helper is a new process: it finds the toy plugin as any process would, on PYTHONPATH."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "site"), str(FIXTURES)]))


def study_of(run: Path) -> optuna.Study:
    return optuna.load_study(study_name=None, storage=f"sqlite:///{run / 'study.db'}")


def test_two_workers_share_the_budget_and_the_starter_alone_tests(helpers_find_the_toy, killable_recipe, run_cli, tmp_path):
    recipe = tmp_path / "slow.toml"
    recipe.write_text(killable_recipe(8, *SLOW))
    code, out, err = run_cli("search", "-r", recipe, "--workers", "2", "--run-dir", "run")
    assert code == 0, err
    assert "1 helper(s) search beside this process" in " ".join(out.split())
    trials = study_of(tmp_path / "run").get_trials()
    assert sum(spends_budget(t) for t in trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # this process and its helper each ran some
    log = (tmp_path / "run" / "workers" / "1.log").read_text()
    assert "Traceback" not in log and "Held-out test" not in log  # the helper leaves the test to the starter
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["trial"] in {t.number for t in trials}
    assert "8/8" in out or "Held-out test" in out


def test_stopping_the_search_stops_its_helpers_and_their_trials_are_interrupted(helpers_find_the_toy, killable_recipe, tmp_path):
    """SIGTERM (the app's Stop, `kill`, a scheduler) reaches the search only: it passes it on, so no helper is left."""
    from kill_driver import child_env, command

    recipe = tmp_path / "slow.toml"
    recipe.write_text(killable_recipe(40, *SLOW))
    search = subprocess.Popen(command("search", "-r", str(recipe), "--workers", "2", "--run-dir", str(tmp_path / "run")),
                              env=child_env(tmp_path / "site"), cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until both processes run a trial
        try:
            running = study_of(tmp_path / "run").get_trials(states=(TrialState.RUNNING,))
        except (ValueError, sqlalchemy.exc.DBAPIError):  # no study yet, or its tables are being made (by both of us, at once)
            running = []
        if len({t.user_attrs.get("worker") for t in running} - {None}) == 2:
            break
        time.sleep(0.2)
    else:
        search.kill()
        pytest.fail("the helper never ran a trial beside the search")
    helper_pid = next(int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in running if t.user_attrs["worker"] != f"{os.uname().nodename}:{search.pid}")
    search.send_signal(signal.SIGTERM)
    code, (out, err) = search.wait(timeout=60), search.communicate()
    assert code == 143, out + err
    with pytest.raises(ProcessLookupError):
        os.kill(helper_pid, 0)  # the helper has ended too
    trials = study_of(tmp_path / "run").get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert sum(is_interrupted(t) for t in trials) == 2  # each process marked its own trial, to be run again


def test_the_helpers_train_fold_models_beside_the_search(helpers_find_the_toy, toy_modules, killable_recipe, run_cli, tmp_path):
    """A cross-validated choice shares its fold models out: both processes train some, the search delivers them all.

    Validation holds one group of noisy examples, so the choice is always made again on
    leave-one-group-out folds, whichever trials the two workers drew; the trials are slow enough for
    the helper to run some, so it is there, waiting, when the folds are shared out."""
    import numpy as np

    import automl_tl

    toy_modality, _ = toy_modules
    rows = [{"x": e.item, "label": e.label, "group": e.group} for e in toy_modality.synthetic(seed=4, noise=2.0)]
    (tmp_path / "grouped.json").write_text(json.dumps(rows))
    recipe = tmp_path / "slow.toml"
    recipe.write_text(killable_recipe(8, SLOW[0], '[data]\nsplit_by = "group"\n' + SLOW[1]))
    code, out, err = run_cli("search", "-r", recipe, "--data", "grouped.json", "--workers", "2", "--run-dir", "run")
    assert code == 0, err
    assert len({t.user_attrs["worker"] for t in study_of(tmp_path / "run").get_trials()}) == 2
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["members"] == test["cross_validation"]["folds"], test["chosen"]
    folds = tmp_path / "run" / "final" / "folds"
    claimers = {path.read_text() for path in folds.glob("claim-*")}
    shared = 2 * (test["members"] - 1)  # the validation fold's model is not shared out: the chosen trial's own, or trained after
    assert len(list(folds.glob("claim-*"))) == shared and len(claimers) == 2  # two candidates' folds, trained by both processes
    assert f"fold models {shared}/{shared}" in out  # the count includes the helper's
    assert not list(folds.glob("*.pt"))  # the fold models' weights live on in final/weights.pt only
    model = automl_tl.load_model(tmp_path / "run")
    examples = model.test_examples()
    labels = [top[0]["label"] for top in model.predict([e.item for e in examples])]
    assert np.mean([label == e.label for label, e in zip(labels, examples)]) == test["accuracy"]


def test_a_one_worker_search_starts_helpers_for_fold_models_worth_them(
        helpers_find_the_toy, toy_modules, killable_recipe, run_cli, tmp_path, monkeypatch):
    """One worker searches; when its choice needs fold models that take long enough, helpers train some of them
    (a helper runs no trial), and the search delivers them all."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("a helper for the folds needs a second core")
    from automl_tl.search import workers

    from automl_tl.rundir import RunDir

    monkeypatch.setattr(workers, "FOLD_HELPERS_AFTER", 0.0)  # toy folds take seconds: count any as worth it
    monkeypatch.setattr(RunDir, "prune_weights", lambda self, keep: None)  # every weight the search saved stays (bench/anytime.py)
    toy_modality, _ = toy_modules
    rows = [{"x": e.item, "label": e.label, "group": e.group} for e in toy_modality.synthetic(seed=4, noise=2.0)]
    (tmp_path / "grouped.json").write_text(json.dumps(rows))
    recipe = tmp_path / "slow.toml"
    slower = SLOW[1].replace("0.2", "0.3")  # fold models that outlast a helper's start on a busy machine
    recipe.write_text(killable_recipe(4, SLOW[0], '[data]\nsplit_by = "group"\n' + slower))
    code, out, err = run_cli("search", "-r", recipe, "--data", "grouped.json", "--run-dir", "run")
    assert code == 0, err
    assert "1 helper(s) train fold models beside this process" in " ".join(out.split()), out
    trials = study_of(tmp_path / "run").get_trials()
    assert len({t.user_attrs["worker"] for t in trials}) == 1  # the trials: this process's
    best, saved = None, set()
    for t in sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.datetime_complete):
        if best is None or t.value > best:
            best, saved = t.value, saved | {t.number}
    assert len(saved) > 1 and {int(path.parent.name) for path in (tmp_path / "run" / "trials").glob("*/weights.pt")} == saved  # none removed by the helper
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["members"] == test["cross_validation"]["folds"], test["chosen"]
    claimers = {path.read_text() for path in (tmp_path / "run" / "final" / "folds").glob("claim-*")}
    assert len(claimers) == 2  # both processes trained fold models
    assert "Traceback" not in (tmp_path / "run" / "workers" / "1.log").read_text()


def test_fold_helpers_start_only_when_worth_it_one_per_further_core_and_never_more_processes_than_folds(tmp_path, monkeypatch):
    from automl_tl.rundir import RunDir
    from automl_tl.search import workers

    asked: list[tuple[int, tuple[str, ...]]] = []
    monkeypatch.setattr(workers.Helpers, "_spawn", lambda self, count, *flags: asked.append((count, flags)) or count)
    helpers = workers.Helpers(RunDir(tmp_path), None, 1)  # type: ignore[arg-type]  # spawns nothing here
    monkeypatch.setattr(workers, "usable_cores", lambda: 16)
    assert helpers.start_for_folds(4, workers.FOLD_HELPERS_AFTER) == 0 and not asked  # not worth a start
    assert helpers.start_for_folds(4, workers.FOLD_HELPERS_AFTER + 1) == 3  # 4 folds: 4 processes, not 16
    monkeypatch.setattr(workers, "usable_cores", lambda: 2)
    assert helpers.start_for_folds(4, 600) == 1
    assert asked == [(3, (workers.FOLDS_ONLY,)), (1, (workers.FOLDS_ONLY,))]
    helpers.processes = [object()]  # type: ignore[list-item]  # helpers already run (--workers): they train the folds
    assert helpers.start_for_folds(4, 600) == 0 and len(asked) == 2


def test_more_workers_than_cores_is_one_line_and_exit_2(toy, run_cli, assert_user_error, tmp_path):
    cores = len(os.sched_getaffinity(0))
    assert_user_error(*run_cli("search", "-m", "toy", "--workers", str(cores + 1), "--run-dir", "run"),
                      f"{cores + 1} workers asked for, but this process may use {cores} CPU core(s)", f"--workers {cores}")
    assert not (tmp_path / "run").exists()  # refused before anything was made


@pytest.mark.parametrize("signum, expected", [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)], ids=["SIGTERM", "SIGINT"])
def test_a_stop_whose_exception_was_lost_still_stops_training_at_the_next_batch(signum, expected):
    """A signal handler's exception is lost when it lands in a weakref callback; training then raises it itself.

    SIGINT is Ctrl-C and the app's Stop button; SIGTERM is kill, systemd and the search stopping its helpers.
    """
    from automl_tl import errors
    from automl_tl.cli.search import TerminateAsInterrupt

    with TerminateAsInterrupt():
        errors.stop_if_asked()  # nothing asked yet
        with pytest.raises(expected):
            os.kill(os.getpid(), signum)
            time.sleep(5)
        with pytest.raises(expected) as raised:  # as if the first had been swallowed: the next batch's check stops it
            errors.stop_if_asked()
        assert type(raised.value) is expected  # Ctrl-C must not pass for SIGTERM: the exit codes differ
    errors.stop_if_asked()  # the search has ended: the next one in this process starts afresh


def test_a_ctrl_c_lost_between_trials_stops_the_next_trial_at_its_first_batch(toy, run_cli, monkeypatch, tmp_path):
    """Between trials the storage's work runs weakref callbacks too; a Ctrl-C lost there stops the search all the same."""
    from automl_tl.errors import STOP_ASKED
    from automl_tl.search import engine

    keep = engine.keep_best_weights

    def keep_and_lose_a_stop(study: optuna.Study, run, config) -> None:
        keep(study, run, config)
        if study.get_trials(states=[TrialState.COMPLETE]):
            STOP_ASKED.ask(KeyboardInterrupt)  # what the SIGINT handler records, its exception lost

    monkeypatch.setattr(engine, "keep_best_weights", keep_and_lose_a_stop)
    code, out, err = run_cli("search", "-m", "toy", "-n", "3", "--run-dir", "run")
    assert code == 130, err
    trials = study_of(tmp_path / "run").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]  # interrupted, queued again
    assert trials[1].user_attrs["fail_reason"] == "interrupted (Ctrl-C)" and trials[2].user_attrs[RETRY_OF] == 1
    assert "To resume, run the same command again" in out


def test_a_helper_that_ignores_its_stop_is_killed_after_the_grace(tmp_path, monkeypatch):
    from automl_tl.rundir import RunDir
    from automl_tl.search import workers

    monkeypatch.setattr(workers, "STOP_GRACE", 1.0)
    helpers = workers.Helpers(RunDir(tmp_path / "run"), None, 2)  # type: ignore[arg-type]
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(600)"],
                                stdout=subprocess.PIPE)
    stubborn.stdout.readline()  # its handler is set
    helpers.processes.append(stubborn)
    started = time.monotonic()
    helpers.finish()
    assert time.monotonic() - started < 30 and stubborn.poll() == -signal.SIGKILL
    assert helpers.problems and "exited with code -9" in helpers.problems[0]
