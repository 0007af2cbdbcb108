"""User mistakes end in one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json

import pytest

from automl_tl.errors import TrialFailed, UserError
from automl_tl.search.objective import failure_reason


def test_unknown_modality(toy, run_cli, assert_user_error):
    code, out, err = run_cli("search", "--modality", "sound")
    assert_user_error(code, out, err, "unknown modality 'sound' (available: toy)", "plugins list")


def test_no_modality(toy, run_cli, assert_user_error):
    code, out, err = run_cli("search")
    assert_user_error(code, out, err, "no modality given")


@pytest.mark.parametrize("flag", ["--data", "--test"])
def test_missing_data_path(toy, run_cli, assert_user_error, flag):
    code, out, err = run_cli("search", "-m", "toy", flag, "nowhere/data.json")
    assert_user_error(code, out, err, "path nowhere/data.json does not exist")


def test_named_dataset_missing_from_the_data_home(toy, run_cli, write_recipe, assert_user_error, tmp_path):
    recipe = write_recipe('modality = "toy"\n[data]\ndataset = "fsdd"\n')
    code, out, err = run_cli("search", "-r", recipe, "--data-home", tmp_path / "home")
    assert_user_error(code, out, err, "dataset 'fsdd' not found in the data home", "AUTOML_TL_DATA")


def test_relative_data_path_is_also_looked_up_in_the_data_home(toy, run_cli, assert_user_error, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "bad.json").write_text("not json")
    code, out, err = run_cli("search", "-m", "toy", "--data", "bad.json", "--data-home", home)
    assert_user_error(code, out, err, f"cannot read {home / 'bad.json'}")  # found, then refused by the plugin


def test_unusable_data_is_a_data_error(toy, run_cli, assert_user_error, tmp_path):
    rows = [{"x": [[0.0] * 8], "label": "a", "group": None} for _ in range(10)]
    (tmp_path / "one-class.json").write_text(json.dumps(rows))
    code, out, err = run_cli("search", "-m", "toy", "--data", "one-class.json")
    assert_user_error(code, out, err, "only one class ('a')")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "cannot read recipe"),
        (lambda p: p.write_bytes(b"\xff\xfe modality"), "cannot read recipe"),
        (lambda p: p.write_text("modality = \n"), "is not valid TOML"),
    ],
    ids=["missing", "directory", "not-utf8", "bad-toml"],
)
def test_unreadable_recipe(toy, run_cli, assert_user_error, tmp_path, make, message):
    recipe = tmp_path / "recipe.toml"
    make(recipe)
    code, out, err = run_cli("search", "-m", "toy", "--recipe", recipe)
    assert_user_error(code, out, err, f"recipe {recipe}", message)


def test_unknown_backbone(toy, run_cli, assert_user_error):
    code, out, err = run_cli("search", "-m", "toy", "--backbone", "toy-missing", "-n", "1")
    assert_user_error(code, out, err, "backbone 'toy-missing' is not available offline")


def test_run_directory_that_cannot_be_created(toy, run_cli, assert_user_error, tmp_path):
    (tmp_path / "a-file").write_text("")  # even root cannot make a folder inside a regular file
    code, out, err = run_cli("search", "-m", "toy", "-n", "1", "--run-dir", "a-file/run")
    assert_user_error(code, out, err, "cannot write to run directory a-file/run", "--run-dir")


def test_bad_storage_url(toy, run_cli, assert_user_error):
    code, out, err = run_cli("search", "-m", "toy", "-n", "1", "--storage", "nosuchdb://x")
    assert_user_error(code, out, err, "cannot open study storage nosuchdb://x", "--storage")


def test_bad_flag_is_a_usage_error_not_a_traceback(toy, run_cli):
    code, out, err = run_cli("search", "-m", "toy", "--n-trials", "zero")
    assert code == 2 and "Traceback" not in out + err and "n-trials" in err


def test_user_error_text_and_hint():
    assert str(UserError("bad thing", hint="do this")) == "bad thing (do this)"
    assert str(UserError("bad thing")) == "bad thing"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (TrialFailed("loss became nan in epoch 3"), "loss became nan in epoch 3"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore"), "out of memory (CUDA out of memory. Tried to allocate 2 GiB)"),
        (MemoryError(), "out of memory ()"),
        (ValueError("shapes do not match\ndetails"), "ValueError: shapes do not match"),
    ],
)
def test_failure_reasons_are_one_line(exc, reason):
    assert failure_reason(exc) == reason


def test_a_crashing_trial_is_recorded_and_the_search_goes_on(toy, run_cli, write_recipe, monkeypatch, tmp_path):
    from automl_tl.search import objective

    real = objective.train_trial
    calls: list[int] = []

    def crash_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "train_trial", crash_first)
    recipe = write_recipe('[search]\npruner = "none"\n[space]\nstrategy = "feature_extraction"\nepochs = 1\n')
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert code == 0, err
    record = json.loads((tmp_path / "run/trials/0000/record.json").read_text())
    assert (record["state"], record["reason"]) == ("fail", "RuntimeError: boom")
    assert json.loads((tmp_path / "run/trials/0001/record.json").read_text())["state"] == "complete"
    assert (tmp_path / "run/test.json").is_file()
