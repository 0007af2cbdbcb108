"""`automl-tl search` end to end with the toy plugin: the run directory, the test score, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import torch


def records(run: Path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in sorted(run.glob("trials/*/record.json"))}


def trial_count(run: Path, study: str) -> int:
    return len(optuna.load_study(study_name=study, storage=f"sqlite:///{run / 'study.db'}").trials)


def write_toy_data(path: Path, noise: float = 0.5, seed: int = 0) -> Path:
    import toy_modality

    rows = [{"x": e.item, "label": e.label, "group": e.group} for e in toy_modality.synthetic(n_per_class=12, seed=seed, noise=noise)]
    path.write_text(json.dumps(rows))
    return path


def test_search_writes_a_complete_run_directory(fast_recipe, toy, run_cli, write_recipe, tmp_path):
    code, out, err = run_cli("search", "--modality", "toy", "--recipe", write_recipe(fast_recipe), "--n-trials", "4")
    assert code == 0, err
    assert "Traceback" not in out + err
    run = tmp_path / "runs" / "toy-default"

    config = json.loads((run / "config.json").read_text())
    assert config["format_version"] == 1 and config["study"] == "toy-default" and config["modality"] == "toy"
    assert config["data"]["classes"] == ["a", "b", "c"]
    assert sum(config["data"]["sizes"].values()) == 120
    assert config["config"]["space"]["epochs"] == [1, 2] and config["fingerprint"]
    assert (run / "study.db").is_file()

    done = records(run)
    assert sorted(done) == [0, 1, 2, 3]
    assert all(r["trial"] == n and r["state"] == "complete" and r["params"]["backbone"] == "toy-net" for n, r in done.items())
    best = max(done, key=lambda n: (done[n]["score"], -n))

    weights = list(run.glob("trials/*/weights.pt"))
    assert weights == [run / "trials" / f"{best:04d}" / "weights.pt"], "only the best trial's weights are kept"
    state = torch.load(weights[0], weights_only=True)
    assert any(key.startswith("head.") for key in state)

    test = json.loads((run / "test.json").read_text())
    assert test["trial"] == best and test["n"] == config["data"]["sizes"]["test"]
    assert 0.0 <= test["accuracy"] <= 1.0 and sum(map(sum, test["confusion"])) == test["n"]
    assert set(test["per_class"]) == {"a", "b", "c"}
    if test.get("refit"):
        assert (run / "final" / "weights.pt").is_file()

    # the test score stands apart from the validation leaderboard
    test_lines = [line for line in out.splitlines() if line.startswith("Held-out test")]
    assert len(test_lines) == 1
    assert f"trial {best}" in test_lines[0] and f"accuracy {test['accuracy']:.4f}" in test_lines[0]
    lines = out.splitlines()
    caption = next(i for i, line in enumerate(lines) if "complete," in line and "pruned," in line)
    assert lines.index(test_lines[0]) > caption, "the test score stands below the table, not in it"


def test_rerunning_resumes_and_spends_only_the_remaining_budget(fast_recipe, toy, run_cli, write_recipe, tmp_path):
    recipe = write_recipe(fast_recipe)
    run = tmp_path / "run"
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "2", "--run-dir", run)
    assert code == 0, err
    assert trial_count(run, "toy-default") == 2
    first_test = json.loads((run / "test.json").read_text())

    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "2", "--run-dir", run)
    assert code == 0, err
    assert "2 trial(s) already done" in out and "budget is already spent" in out
    assert trial_count(run, "toy-default") == 2
    assert json.loads((run / "test.json").read_text()) == first_test

    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "3", "--run-dir", run)
    assert code == 0, err
    assert trial_count(run, "toy-default") == 3
    assert sorted(records(run)) == [0, 1, 2]
    assert len(list(run.glob("trials/*/weights.pt"))) == 1


def test_changed_settings_in_the_same_run_directory_are_refused(fast_recipe, toy, run_cli, write_recipe, assert_user_error, tmp_path):
    recipe = write_recipe(fast_recipe)
    code, _, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "1", "--run-dir", "run")
    assert code == 0, err
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "1", "--run-dir", "run", "--seed", "1")
    assert_user_error(code, out, err, "run directory run holds a search with different data or settings")
    other = write_recipe(fast_recipe.replace("epochs = [1, 2]", "epochs = [1, 3]"))
    code, out, err = run_cli("search", "-m", "toy", "-r", other, "-n", "1", "--run-dir", "run")
    assert_user_error(code, out, err, "different data or settings")
    assert trial_count(tmp_path / "run", "toy-default") == 1


def test_changed_data_in_the_same_run_directory_is_refused(fast_recipe, toy, run_cli, write_recipe, assert_user_error, tmp_path):
    recipe = write_recipe(fast_recipe)
    data = write_toy_data(tmp_path / "mine.json")
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "1", "--data", data, "--run-dir", "run")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["study"] == "toy-mine"
    write_toy_data(data, seed=1)
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "1", "--data", data, "--run-dir", "run")
    assert_user_error(code, out, err, "holds a search with different data or settings", "--study")


def test_objective_is_what_trials_are_ranked_by(fast_recipe, toy, run_cli, write_recipe, tmp_path):
    objective = "accuracy"
    recipe = write_recipe(fast_recipe.replace("[search]\n", f'[search]\nobjective = "{objective}"\n'))
    code, _, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert code == 0, err
    for record in records(tmp_path / "run").values():
        assert record["score"] == record["user_attrs"]["scores"][objective]


def test_a_search_stopped_mid_trial_leaves_that_trials_best_epoch_as_the_model(toy, run_cli, write_recipe, tmp_path, monkeypatch):
    """Ctrl-C during a fine-tune's epoch 3: its best of epochs 1-2 (no trial has completed) is the model to use,
    named as such, until the resumed search delivers its final model."""
    import automl_tl
    from automl_tl.model.source import final_model
    from automl_tl.progress import SearchDisplay
    from automl_tl.rundir import RunDir

    recipe = write_recipe('modality = "toy"\n[search]\nn_trials = 1\nseed = 0\npruner = "none"\n'
                          '[space]\nstrategy = "partial"\nepochs = 5\nbatch_size = 16\n')  # no probe: nothing completes first
    shown = SearchDisplay.epoch

    def ctrl_c_in_epoch_3(self: SearchDisplay, epoch: int, epochs: int) -> None:
        if epoch == 3:
            raise KeyboardInterrupt
        shown(self, epoch, epochs)

    monkeypatch.setattr(SearchDisplay, "epoch", ctrl_c_in_epoch_3)
    code, out, err = run_cli("search", "--recipe", recipe, "--run-dir", "run")
    assert code == 130, err
    run = RunDir(tmp_path / "run")
    assert records(run.root)[0]["reason"] == "interrupted (Ctrl-C)"
    found = final_model(run)
    assert found is not None and found.trial == 0 and found.weights == run.checkpoint_paths(0)[0]
    checkpoint = json.loads(run.checkpoint_paths(0)[1].read_text())
    assert checkpoint["epoch"] in (1, 2) and checkpoint["params"]["strategy"] == "partial"
    assert "of 5, the trial unfinished" in found.how
    import toy_modality

    items = [e.item for e in toy_modality.synthetic(n_per_class=2)]
    assert all(row[0]["label"] in "abc" for row in automl_tl.load_model(run.root).predict(items, top_k=1))
    code, out, err = run_cli("leaderboard", "run")
    assert code == 0 and "checkpoint.pt (trial 0's configuration, its epoch" in " ".join(out.split()), out

    monkeypatch.setattr(SearchDisplay, "epoch", shown)
    code, out, err = run_cli("search", "--recipe", recipe, "--run-dir", "run")  # resumed: the trial runs again, whole
    assert code == 0, err
    assert not list(run.root.glob("trials/*/checkpoint.*")), "the final model supersedes every checkpoint"
    assert final_model(run).trial == json.loads(run.test_path.read_text())["trial"]


def test_ctrl_c_while_the_search_loads_torch_is_a_ctrl_c_like_any_other(toy, run_cli, monkeypatch, tmp_path):
    """Loading torch takes seconds: a stop then (the app's Stop too) ends the search as one, with how to resume."""
    import sys
    import types

    class Loading(types.ModuleType):
        def __getattr__(self, name: str) -> None:
            raise KeyboardInterrupt  # as Ctrl-C lands while the engine's imports run

    monkeypatch.setitem(sys.modules, "automl_tl.search.engine", Loading("automl_tl.search.engine"))
    code, out, err = run_cli("search", "-m", "toy", "-n", "1", "--run-dir", "run")
    assert code == 130, (out, err)
    assert "Interrupted." in out and "To resume, run the same command again" in out
