"""bench/final_model.py: a run's configuration made into a final model again, per seed, as a refit and as fold models averaged."""

from __future__ import annotations

import json
import sys

import pytest


@pytest.fixture
def bench_final_model(bench_module):
    return bench_module("final_model")


def test_the_runs_own_seed_makes_the_model_the_search_delivered(bench_final_model, small_data, run_cli, write_recipe, tmp_path):
    """The run's seed makes what its search delivered: its fold models averaged, the chosen trial itself the validation
    fold's; another seed is another model, its validation fold's model trained like the others."""
    recipe = write_recipe('[search]\npruner = "none"\nseed = 2\n[data]\nsplit_by = "stratified"\n'
                          '[space]\nstrategy = ["feature_extraction", "partial"]\nepochs = [1, 2]\nbatch_size = 8\n')
    code, _, err = run_cli("search", "-m", "toy", "-r", recipe, "--data", small_data, "-n", "4", "--run-dir", "run")
    assert code == 0, err
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["members"] == 5 and test["cross_validation"]["validation_fold_model"] == "its trial"  # what this test is about
    result = bench_final_model.final_models(tmp_path / "run", [2, 0])
    first, second = result["seeds"]
    assert result["trial"] == test["trial"] and len(first["folds"]) == 5
    assert first["averaged"] == test["accuracy"] and first["validation_fold_model"] == "its trial"
    assert second["validation_fold_model"] == "trained"
    assert result["averaged"]["spread"] == pytest.approx(abs(first["averaged"] - second["averaged"]))
    alone = bench_final_model.final_models(tmp_path / "run", [0])
    assert alone["refits_averaged"] == alone["seeds"][0]["refit"] == second["refit"]  # one refit averaged is itself


def test_a_refit_is_also_made_with_the_trials_own_weights_as_a_search_on_validation_delivers_it(
        bench_final_model, toy, run_cli, write_recipe, fast_recipe, tmp_path):
    """A search that chose on validation alone delivered its refit averaged with the trial's own weights: seed 0 of
    the bench makes the same model, and says what the own weights score alone."""
    code, _, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "-n", "3", "--seed", "0", "--run-dir", "run")
    assert code == 0, err
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["ensemble"] == "refit and own"
    result = bench_final_model.final_models(tmp_path / "run", [0])
    assert result["seeds"][0]["refit_and_own"] == test["accuracy"] and 0 <= result["own"] <= 1
    assert result["refit_and_own"]["spread"] == 0

def test_a_run_without_a_test_result_is_one_line_and_exit_2(bench_final_model, bench_module, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["final_model.py", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        bench_module("common").run_script(bench_final_model.main)  # as the script runs it
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "has no test.json" in err and "Traceback" not in err
