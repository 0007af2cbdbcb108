"""bench/anytime.py: the usable models a search held, each scored on the test split, and the time to quality."""

from __future__ import annotations

import json
import sys

import pytest


@pytest.fixture
def bench_anytime(bench_module, monkeypatch):
    """The bench's module; `anytime` patches RunDir for its own process, undone after the test (else later
    tests keep every trial's weights)."""
    from automl_tl.rundir import RunDir

    for patched in ("prune_weights", "write_checkpoint"):
        monkeypatch.setattr(RunDir, patched, getattr(RunDir, patched))
    return bench_module("anytime")


def test_the_last_usable_model_is_the_final_one_when_nothing_is_refit(bench_anytime, toy, write_recipe, tmp_path):
    recipe = write_recipe('modality = "toy"\n[search]\nn_trials = 4\nseed = 1\npruner = "none"\nrefit = false\n'
                          '[space]\nepochs = 3\nbatch_size = 16\n')
    result = bench_anytime.anytime(recipe, tmp_path / "run")
    usable = result["usable"]
    assert usable and [u["at_s"] for u in usable] == sorted(u["at_s"] for u in usable)
    trials = [u for u in usable if "epoch" not in u]
    assert [u["validation"] for u in trials] == sorted({u["validation"] for u in trials})  # each a new best
    epochs = [u for u in usable if "epoch" in u]  # a fine-tune's epochs 1-2 that beat every completed trial
    assert epochs and all(u["epoch"] in (1, 2) and 0.0 <= u["test_accuracy"] <= 1.0 for u in epochs)
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["chosen"].startswith(f"trial {test['trial']}: the best macro_f1")  # this seed's: the best, no tie
    assert usable[-1]["trial"] == test["trial"]  # the best trial's weights are the final model, scored alike
    assert usable[-1]["test_accuracy"] == pytest.approx(test["accuracy"]) == pytest.approx(result["final_test_accuracy"])


def test_a_finished_run_of_earlier_code_is_an_arm_whose_only_model_is_its_final_one(bench_anytime, toy, write_recipe, tmp_path):
    recipe = write_recipe('modality = "toy"\n[search]\nn_trials = 3\nseed = 0\n[space]\nepochs = 2\nbatch_size = 16\n')
    bench_anytime.anytime(recipe, tmp_path / "run")
    arm = bench_anytime.finished(tmp_path / "run", 42.0)
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert arm["usable"] == [] and arm["final_test_accuracy"] == pytest.approx(test["accuracy"])
    assert arm["trials_completed"] + arm["trials_pruned"] == 3
    assert arm["environment"] == json.loads((tmp_path / "run" / "config.json").read_text())["environment"]  # the run's, not the recorder's
    assert bench_anytime.time_to_quality(arm, 0.0) == 42.0  # nothing held before the final model


def test_time_to_quality_is_the_first_model_at_the_bar(bench_anytime) -> None:
    arm = {"wall_s": 300.0, "final_test_accuracy": 0.98,
           "usable": [{"at_s": 20.0, "test_accuracy": 0.95}, {"at_s": 90.0, "test_accuracy": 0.978}]}
    assert bench_anytime.time_to_quality(arm, 0.975) == 90.0
    assert bench_anytime.time_to_quality(arm, 0.979) == 300.0  # only the final (refit) model gets there
    assert bench_anytime.time_to_quality(arm, 0.99) is None
    arm["usable"].insert(1, {"at_s": 50.0, "test_accuracy": 0.977, "trial": 1, "epoch": 2})  # a fine-tune's epoch 2
    assert bench_anytime.time_to_quality(arm, 0.975) == 50.0
    assert bench_anytime.time_to_quality(arm, 0.975, epochs=False) == 90.0  # completed trials only


def test_a_finished_run_without_a_test_score_is_one_line_and_exit_2(bench_anytime, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["anytime.py", "--finished", str(tmp_path), "--final-at", "10"])
    with pytest.raises(SystemExit) as exit_info:
        bench_anytime.main()
    assert exit_info.value.code == 2 and "not a finished run" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "message"), [(None, "cannot read"), ("{}", "is not a file written by bench/anytime.py")])
def test_a_file_to_compare_that_is_not_an_arm_is_one_line_and_exit_2(bench_anytime, tmp_path, monkeypatch, capsys, content, message):
    path = tmp_path / "arm.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(sys, "argv", ["anytime.py", "--combine", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        bench_anytime.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
