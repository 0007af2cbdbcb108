"""Crash safety for real: `automl-tl search` in a subprocess, stopped by Ctrl-C and SIGKILL at chosen points, resumed.

The child is the real command with the toy plugin, started through `tests/fixtures/kill_driver.py`,
which stops its own process at an exact point: SIGKILL while the feature cache is written, Ctrl-C
inside the first trial, then SIGKILL between a trial's epochs, after a record is in place but
before the storage has marked the trial complete, halfway through writing a record, and while the
final model is written. One more kill comes from outside at a moment nobody chose. After every
kill the test takes a snapshot of what the storage says is finished; after the last resume, every
one of those trials must still be there with the same state and score, its record must agree,
each interrupted trial must be retried exactly once and counted never, and the budget must be
met exactly.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from automl_tl.leaderboard import Leaderboard
from automl_tl.trials import RETRY_OF, drew_configuration, is_interrupted, spends_budget

N_TRIALS = 8


class Child:
    """Runs `automl-tl search` on one run directory in a subprocess, through the kill driver."""

    def __init__(self, tmp_path: Path, recipe: str) -> None:
        self.tmp = tmp_path
        self.run_dir = tmp_path / "run"
        self.recipe = tmp_path / "recipe.toml"
        self.recipe.write_text(recipe)

    def args(self) -> list[str]:
        from kill_driver import command  # tests/fixtures, on sys.path once the toy plugin is registered

        return command("search", "-r", str(self.recipe), "--run-dir", str(self.run_dir))

    def run(self, point: str = "", target: str = "", nth: int = 1, state: str = "") -> subprocess.CompletedProcess[str]:
        from kill_driver import child_env

        env = child_env(self.tmp / "site", point, target, nth, state)  # the conftest registers plugins in tmp/site
        return subprocess.run(self.args(), env=env, cwd=self.tmp, capture_output=True, text=True, timeout=120)

    def start(self) -> subprocess.Popen[str]:
        from kill_driver import child_env

        return subprocess.Popen(self.args(), env=child_env(self.tmp / "site"), cwd=self.tmp, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def study(self) -> optuna.Study:
        return optuna.load_study(study_name="toy-default", storage=f"sqlite:///{self.run_dir / 'study.db'}")

    def records(self) -> dict[int, dict]:
        return {int(p.parent.name): json.loads(p.read_text()) for p in self.run_dir.glob("trials/*/record.json")}

    def ended(self) -> int:
        """How many records say their trial ended by itself."""
        return sum(1 for r in self.records().values() if r["state"] != "fail")


def finished(study: optuna.Study) -> dict[int, tuple[TrialState, float | None]]:
    """Trials that ended by themselves, with the score they ended with."""
    return {t.number: (t.state, t.value) for t in study.get_trials() if spends_budget(t)}


def test_ctrl_c_and_sigkill_at_any_point_lose_no_finished_trial_and_resume_to_the_budget(toy, tmp_path, killable_recipe):
    child = Child(tmp_path, killable_recipe(N_TRIALS))
    result = child.run("before-rename", "*/cache/*", 1)  # writing the frozen-backbone cache, before any trial
    assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr)
    assert list(child.run_dir.glob("cache/.*.tmp")) and not list(child.run_dir.glob("cache/[!.]*"))

    kills = [  # (what the driver waits for, which file, which occurrence, records of trials ending how)
        ("epoch", "", 4, ""),  # inside a trial (the first after the retried one), between two epochs
        ("after-rename", "*/record.json", 2, "complete"),  # a record in place, the trial not yet complete in the storage
        ("before-rename", "*/record.json", 1, "complete"),  # a record half-written (a temporary file, not renamed)
    ]
    survived: dict[int, tuple[TrialState, float | None]] = {}
    log = [("before-rename", "*/cache/*", 0)]

    # Ctrl-C in the first trial: the trial is marked and queued again, the board shown, the way back said;
    # started with SIGINT ignored, as a non-interactive shell starts a background job (the app's Stop is a SIGINT)
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = child.run("sigint", "", 2)
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert result.returncode == 130, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "1 interrupted: not counted, retried once" in out and "To resume, run the same command again: automl-tl search -r" in out
    trials = child.study().get_trials()
    assert [t.user_attrs.get("fail_reason") for t in trials if is_interrupted(t)] == ["interrupted (Ctrl-C)"]
    assert [t.user_attrs.get(RETRY_OF) for t in trials if t.state == TrialState.WAITING] == [0]
    assert child.records()[0]["reason"] == "interrupted (Ctrl-C)"

    for point, target, nth, state in kills:
        result = child.run(point, target, nth, state)
        assert result.returncode == -signal.SIGKILL, (point, target, result.stdout, result.stderr)
        if child.run_dir.joinpath("study.db").exists():
            now = finished(child.study())
            assert {n: now[n] for n in survived} == survived, f"a finished trial changed after the kill at {point} {target}"
            survived = now
        log.append((point, target, len(survived)))

    # a damaged cache entry (a truncated array) is noticed and rebuilt, not trusted
    arrays = sorted(child.run_dir.glob("cache/*/*.npy"))
    assert arrays, "the cache should hold the entries written since the first kill"
    arrays[0].write_bytes(arrays[0].read_bytes()[:40])

    # one kill from outside, at a moment nobody chose: some time after a new record appears
    before = child.ended()
    process = child.start()
    deadline = time.monotonic() + 60
    while child.ended() <= before and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.2))
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    now = finished(child.study())
    assert {n: now[n] for n in survived} == survived
    survived = now

    result = child.run("before-rename", "*/final/weights.pt", 1)  # the budget is met; killed while writing the refit model
    assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr)
    assert not (child.run_dir / "test.json").exists()

    result = child.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    study = child.study()
    trials = study.get_trials()
    assert {n: finished(study)[n] for n in survived} == survived, "a trial finished before a kill was lost or changed"

    # the budget is met exactly: interrupted trials spend nothing, and nothing is counted twice
    spending = [t for t in trials if spends_budget(t)]
    interrupted = [t for t in trials if is_interrupted(t)]
    assert len(spending) == N_TRIALS
    assert len(interrupted) >= 4, "Ctrl-C and the kills inside trials left interrupted trials"
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retries = [t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs]
    assert sorted(retries) == sorted({*retries}), "a trial was retried twice"
    for trial in interrupted:
        if RETRY_OF not in trial.user_attrs and drew_configuration(trial):  # (one killed while drawing has nothing whole to repeat)
            assert trial.number in retries, f"interrupted trial {trial.number} was not retried"
    by_number = {t.number: t for t in trials}
    for trial in trials:
        if RETRY_OF in trial.user_attrs:
            assert trial.params == by_number[trial.user_attrs[RETRY_OF]].params, "a retry runs the same configuration"

    # every record agrees with the storage; only the best trial keeps its weights
    records = child.records()
    for trial in trials:
        record = records[trial.number]
        assert record["state"] == {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(trial.state, "fail")
        if trial.state == TrialState.COMPLETE:
            assert record["score"] == trial.value
        if is_interrupted(trial):
            assert record["reason"].startswith("interrupted")
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert [p.parent.name for p in child.run_dir.glob("trials/*/weights.pt")] == [f"{best.number:04d}"]
    test = json.loads((child.run_dir / "test.json").read_text())
    assert test["considered"][0] == best.number  # the choice started from the best on validation
    assert test["trial"] in test["considered"]  # and tested the simplest within noise of it (re-scored on folds or not)
    assert (child.run_dir / "final" / "weights.pt").is_file()

    board = Leaderboard.from_study(study)
    assert board.interrupted == len(interrupted)
    assert board.counts["complete"] + board.counts["pruned"] + board.counts["fail"] == len(trials)
    assert board.best is not None and board.best.trial == best.number
    print("kills survived, with a Ctrl-C after the first (point, finished trials after it):", log, "then 1 external, 1 during the refit;",
          f"{len(trials)} trials, {len(interrupted)} interrupted, {len(retries)} retried")


def test_sigterm_stops_a_search_as_ctrl_c_does(toy, tmp_path, killable_recipe):
    """SIGTERM is what kill, systemd, Docker and job schedulers send: the trial is marked, the board shown, the way back said."""
    child = Child(tmp_path, killable_recipe(3))
    result = child.run("sigterm", "", 2)  # inside the first trial, after its second epoch
    assert result.returncode == 143, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "Stopped by SIGTERM." in out and "1 interrupted: not counted, retried once" in out
    assert "To resume, run the same command again: automl-tl search -r" in out
    trials = child.study().get_trials()
    assert [t.user_attrs.get("fail_reason") for t in trials if is_interrupted(t)] == ["interrupted (SIGTERM)"]
    assert [t.user_attrs.get(RETRY_OF) for t in trials if t.state == TrialState.WAITING] == [0]
    assert child.records()[0]["reason"] == "interrupted (SIGTERM)"

    result = child.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert sum(1 for t in child.study().get_trials() if spends_budget(t)) == 3
