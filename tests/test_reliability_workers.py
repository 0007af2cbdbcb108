"""Many workers on one study: `automl-tl search` processes sharing a trial budget while one of them fails.

Three workers, 12 trials, one worker killed inside its first trial: over SQLite they share one run
directory, as processes on one machine would; over PostgreSQL (the server `.ci/run` starts, named
by ``AUTOML_TL_TEST_POSTGRES``) each has its own and the killed one is "on another machine", so only
its silent heartbeat tells the others. Either way the budget is met exactly, no trial is lost or
run twice, the killed trial is retried once, and the leaderboard read from the shared storage
agrees. Also: a worker frozen past the heartbeat grace (a suspended laptop) wakes up and carries
on, and concurrent workers never take the same queued trial over SQLite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc
from optuna.trial import TrialState

from automl_tl.trials import RETRY_OF, fail_reason, is_interrupted, spends_budget

POSTGRES_ENV = "AUTOML_TL_TEST_POSTGRES"
WORKERS = 3
N_TRIALS = 12


def _postgres() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server to test against (.ci/run starts one)")
    return url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_workers_share_the_budget_and_survive_a_killed_worker(toy, tmp_path, backend, killable_recipe):
    from kill_driver import child_env, command  # tests/fixtures, on sys.path once the toy plugin is registered

    study_name = f"toy-workers-{uuid.uuid4().hex[:8]}"
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(killable_recipe(N_TRIALS))
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
        run_dirs = [tmp_path / "run"] * WORKERS  # one machine: the run directory (and its study.db) is shared
        storage: list[str] = []
    else:
        url = _postgres()
        run_dirs = [tmp_path / f"machine{k}" for k in range(WORKERS)]  # as if each worker had its own disk
        storage = ["--storage", url]
    site = tmp_path / "site"  # where the conftest registers the toy plugin

    def start(k: int, env: Mapping[str, str]) -> subprocess.Popen[str]:
        args = command("search", "-r", str(recipe), "--study", study_name, "--run-dir", str(run_dirs[k]), *storage)
        return subprocess.Popen(args, env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    # Worker 0 kills itself inside its first trial, after the trial's second epoch; the others, started
    # once that trial runs, must carry on and finish the budget. Over PostgreSQL worker 0 runs "on
    # another machine": only its silent heartbeat can tell the others.
    processes = [start(0, child_env(site, "epoch", nth=2, host="another-machine" if backend == "postgresql" else ""))]

    def running() -> bool:  # read only once worker 0 has made the study: never create it here
        if backend == "sqlite" and not (tmp_path / "run" / "study.db").exists():
            return False
        return bool(optuna.load_study(study_name=study_name, storage=url).get_trials(states=(TrialState.RUNNING,)))

    _wait(running, "worker 0 to start a trial")
    processes += [start(k, child_env(site)) for k in range(1, WORKERS)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in processes]
    assert results[0][0] == -9, results[0]
    for code, out, err in results[1:]:
        assert code == 0, out + err
        assert "Traceback" not in out + err

    study = optuna.load_study(study_name=study_name, storage=url)
    try:
        trials = study.get_trials()
        spending = [t for t in trials if spends_budget(t)]
        assert len(spending) == N_TRIALS, "the budget is met exactly, across workers"
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

        # (a worker that lost a race for the last slot ends its extra trial before drawing parameters: not counted)
        killed = [t for t in trials if is_interrupted(t) and t.params and RETRY_OF not in t.user_attrs]
        assert len(killed) == 1 and killed[0].user_attrs["worker"].endswith(f":{processes[0].pid}")
        if backend == "postgresql":  # failed by the heartbeat check, which leaves no reason of its own
            assert killed[0].user_attrs["worker"].startswith("another-machine:") and "fail_reason" not in killed[0].user_attrs
        retries = [t for t in trials if t.user_attrs.get(RETRY_OF) == killed[0].number]
        assert len(retries) == 1 and retries[0].params == killed[0].params and spends_budget(retries[0])

        # no configuration ran twice (the retry repeats only a trial that never finished), the baseline included
        drawn = [json.dumps(t.params, sort_keys=True) for t in spending]
        assert len(set(drawn)) == len(drawn), "two workers ran the same configuration"
        workers = {t.user_attrs["worker"] for t in spending}
        assert len(workers) >= 2, "the surviving workers both ran trials"

        # one record per trial, in the run directory of the worker that ran (or reaped) it
        records = [json.loads(p.read_text()) for d in set(run_dirs) for p in d.glob("trials/*/record.json")]
        assert sorted(r["trial"] for r in records) == sorted(t.number for t in trials)

        # the leaderboard reads the shared storage from any run directory
        from typer.testing import CliRunner

        from automl_tl.cli.app import app

        result = CliRunner().invoke(app, ["leaderboard", str(run_dirs[-1]), "--format", "json"])
        assert result.exit_code == 0, result.output
        board = json.loads(result.stdout)
        assert board["counts"]["complete"] + board["counts"]["pruned"] == N_TRIALS
        assert board["interrupted"] == sum(1 for t in trials if is_interrupted(t)) and board["test"]["considered"][0] == max(
            (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value).number
        print(f"{backend}: {len(trials)} trials in the study, {len(spending)} counted, {len(killed)} interrupted "
              f"({fail_reason(killed[0])}) and retried once, by workers {sorted(workers)}")
    finally:
        if backend == "postgresql":
            optuna.delete_study(study_name=study_name, storage=url)


def test_postgres_url_without_its_driver_is_one_clear_error(toy, run_cli, assert_user_error, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg (SQLAlchemy's default driver) were not installed
    code, out, err = run_cli("search", "-m", "toy", "-n", "1", "--storage", "postgresql://nobody@127.0.0.1:1/none")
    assert_user_error(code, out, err, "the database driver 'psycopg' is not installed", "postgresql+psycopg2://")


POP = """
import sys
import optuna
from automl_tl.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="queue", storage=open_storage(sys.argv[1], 30, lambda study, trial: None))
taken = []
for _ in range(int(sys.argv[2])):
    trial = study.ask()
    taken.append(trial.number)
    study.tell(trial, 1.0)
print(*taken)
"""


def test_queued_trials_are_taken_once_by_workers_sharing_sqlite(tmp_path):
    """Retries and the baseline are queued trials: two local workers must never both run one.

    Without ``BEGIN IMMEDIATE`` (see `automl_tl.storage`) 4 such processes took 5 of 40 queued
    trials twice.
    """
    from automl_tl.storage import open_storage

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    study = optuna.create_study(study_name="queue", storage=open_storage(url, 30, lambda study, trial: None))
    for x in range(40):
        study.enqueue_trial({"x": x})
    workers = [subprocess.Popen([sys.executable, "-c", POP, url, "15"], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    taken = [int(n) for w in workers for n in w.communicate(timeout=120)[0].split()]
    assert all(w.returncode == 0 for w in workers)
    assert len(taken) == 60 and len(set(taken)) == 60, "a queued trial was taken by two workers"


OPEN = """
import sys, time
from pathlib import Path
import optuna
from automl_tl.storage import open_storage, open_study

optuna.logging.set_verbosity(optuna.logging.ERROR)
storage = open_storage(sys.argv[1], 30, lambda study, trial: None)
while not Path(sys.argv[2]).exists():  # start line: every worker opens the new study at the same instant
    time.sleep(0.001)
study, created = open_study(storage, "new", optuna.samplers.RandomSampler(), optuna.pruners.NopPruner())
time.sleep(0.5)  # a worker slow to queue (a busy machine): the others have looked at the study meanwhile
if created:
    study.enqueue_trial({"x": 0}, user_attrs={"baseline": "linear probe"})
print(created)
"""


def test_workers_opening_a_new_study_together_queue_its_baseline_once(tmp_path):
    """Exactly one of several workers that open a new study at the same instant learns it created it.

    The engine queues the linear-probe baseline only there; asking "are there no trials yet?"
    instead let every worker that asked before the first queued, queue it again.
    """
    url, go = f"sqlite:///{tmp_path / 'new.db'}", tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, "-c", OPEN, url, str(go)], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(3)  # each has imported Optuna and opened the storage by now (a slow one only weakens the race)
    go.touch()
    created = [w.communicate(timeout=60)[0].split() for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert sorted(created) == [["False"]] * 3 + [["True"]]
    study = optuna.load_study(study_name="new", storage=url)
    assert [t.user_attrs for t in study.get_trials()] == [{"baseline": "linear probe"}]


def test_a_worker_that_stalls_past_the_grace_gives_its_trial_up_and_carries_on(toy, tmp_path, killable_recipe):
    """A suspended laptop: the process freezes mid-trial, heartbeats and all, then wakes up.

    Meanwhile the other worker has failed the silent trial and run it again; on waking, the
    stalled worker's late result is refused, the trial stays interrupted (its record too), and
    both workers end normally with the budget met exactly.
    """
    from kill_driver import child_env, command

    recipe = tmp_path / "recipe.toml"
    recipe.write_text(killable_recipe(N_TRIALS))
    site, run = tmp_path / "site", tmp_path / "run"
    args = command("search", "-r", str(recipe), "--run-dir", str(run))
    sleeper = subprocess.Popen(args, env=child_env(site, "stall", nth=2), cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait(lambda: Path(f"/proc/{sleeper.pid}/stat").read_text().split(") ")[1][0] == "T", "worker 0 to stop itself")
    other = subprocess.Popen(args, env=child_env(site), cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    study_url = f"sqlite:///{run / 'study.db'}"
    _wait(lambda: any(RETRY_OF in t.user_attrs for t in optuna.load_study(study_name="toy-default", storage=study_url).trials),
          "the other worker to give the silent trial up")
    os.kill(sleeper.pid, signal.SIGCONT)
    (code_0, out_0, err_0), (code_1, out_1, err_1) = [(p.wait(timeout=180), *p.communicate()) for p in (sleeper, other)]
    assert (code_0, code_1) == (0, 0), out_0 + err_0 + out_1 + err_1
    assert "Traceback" not in out_0 + err_0 + out_1 + err_1
    assert "was given up for dead while this worker stalled" in " ".join(out_0.split())

    trials = optuna.load_study(study_name="toy-default", storage=study_url).get_trials()
    assert sum(1 for t in trials if spends_budget(t)) == N_TRIALS
    # besides the stalled trial, a worker may have lost the race for the last slot: that trial
    # ends before it runs ("not started") and is not counted either
    interrupted = [t for t in trials if is_interrupted(t)]
    stalled = [t for t in interrupted if "not started" not in fail_reason(t)]
    assert len(interrupted) - len(stalled) <= 1
    assert len(stalled) == 1 and stalled[0].user_attrs["worker"].endswith(f":{sleeper.pid}")
    assert [t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs] == [stalled[0].number]
    record = json.loads((run / "trials" / f"{stalled[0].number:04d}" / "record.json").read_text())
    assert record["state"] == "fail" and record["reason"] == fail_reason(stalled[0])


def _wait(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, KeyError, sqlalchemy.exc.DBAPIError):  # not there yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
