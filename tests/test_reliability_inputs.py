"""Hostile and broken input the core meets: misbehaving plugins, contradictory settings, a full or
read-only disk, run directories and study databases it cannot use. Each ends in one line and exit
code 2, never a traceback (docs/reliability.md lists every case tried, including the plugins')."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import sys
from pathlib import Path

import optuna
import pytest
from optuna.exceptions import StorageInternalError

from automl_tl.cli.errors import environment_failure
from automl_tl.trials import RETRY_OF, is_interrupted, spends_budget

FAST = """
modality = "toy"
[search]
pruner = "none"
[space]
strategy = "feature_extraction"
epochs = 1
"""


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("ListInsteadOfData", "load_data() returned list, not LabelledData"),
        ("NumberLabels", "load_data() gave Example(item="),
        ("NamesInsteadOfBackbones", "backbones() returned str, not BackboneInfo"),
        ("RaisingCatalogue", "backbones() raised KeyError: 'weights index'"),
        ("DictInsteadOfBackbone", "build_backbone() returned dict, not Backbone"),
        ("ListRecipe", "default_recipe() returned list, not a mapping"),
        ("UnknownStartingDimension", "starting_points() names unknown search dimension(s): learning_rate"),
        ("RaisingStartingPoints", "starting_points() raised RuntimeError: no measurements yet"),
    ],
)
def test_a_plugin_breaking_the_contract_is_one_line_naming_it(register_plugin, run_cli, assert_user_error, entry, message):
    import misbehaving_modality

    name = getattr(misbehaving_modality, entry).name
    register_plugin("odd-plugins", {name: f"misbehaving_modality:{entry}"})
    code, out, err = run_cli("search", "-m", name, "-n", "1", "--run-dir", "run")
    assert_user_error(code, out, err, f"plugin '{name}'", "is broken", message)


def test_plugins_list_shows_a_misbehaving_plugin_as_broken_and_lists_the_rest(toy, register_plugin, run_cli):
    register_plugin("odd-plugins", {"raising-catalogue": "misbehaving_modality:RaisingCatalogue",
                                    "list-recipe": "misbehaving_modality:ListRecipe"})
    code, out, err = run_cli("plugins", "list")
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "broken: plugin 'raising-catalogue' is broken: backbones() raised KeyError" in " ".join(out.split())
    assert "broken: TypeError: default_recipe() returned list, not a mapping" in " ".join(out.split())
    assert "toy-net (default)" in out


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ('[data]\ndataset = "fsdd"\npath = "mine.json"\n', "data: set dataset or path, not both"),
        ('[data]\nsplit_by = "stratified"\ntest_groups = ["g1"]\n', "test_groups / validation_groups are set, but split_by is 'stratified'"),
        ('[data]\nvalidation_groups = ["g1"]\npath = "flat.json"\n', "test_groups / validation_groups are set, but the examples have no groups"),
    ],
    ids=["dataset-and-path", "stratified-with-groups", "groups-without-groups"],
)
def test_contradictory_settings_are_refused_not_ignored(toy, run_cli, write_recipe, assert_user_error, tmp_path, recipe, message):
    import toy_modality

    rows = [{"x": e.item, "label": e.label} for e in toy_modality.synthetic(n_per_class=10)]
    (tmp_path / "flat.json").write_text(json.dumps(rows))
    code, out, err = run_cli("search", "-r", write_recipe(FAST + recipe), "-n", "1", "--run-dir", "run")
    assert_user_error(code, out, err, message)


@pytest.mark.parametrize(("code_", "words"), [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")])
def test_a_disk_that_fills_up_or_turns_read_only_mid_search_stops_cleanly_and_resumes(
    toy, run_cli, write_recipe, assert_user_error, monkeypatch, tmp_path, code_, words
):
    real_fsync = os.fsync
    written: list[str] = []

    def failing_fsync(fd: int) -> None:  # the third trial record cannot be written
        name = os.readlink(f"/proc/self/fd/{fd}")
        if ".record.json." in name:
            written.append(name)
            if len(written) == 3:
                raise OSError(code_, os.strerror(code_))
        real_fsync(fd)

    recipe = write_recipe(FAST)
    monkeypatch.setattr(os, "fsync", failing_fsync)
    code, out, err = run_cli("search", "-r", recipe, "-n", "4", "--run-dir", "run")
    assert_user_error(code, out, err, "cannot write run/trials/0002/record.json", words, "free some disk space")
    study = optuna.load_study(study_name="toy-default", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    stopped = [t for t in study.get_trials() if is_interrupted(t)]
    assert [t.number for t in stopped] == [2] and stopped[0].user_attrs["fail_reason"].startswith("interrupted (cannot write")
    assert not list((tmp_path / "run" / "trials" / "0002").glob(".record.json.*")), "the temporary file is removed"

    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed: the same command resumes
    code, out, err = run_cli("search", "-r", recipe, "-n", "4", "--run-dir", "run")
    assert code == 0, err
    trials = study.get_trials()
    assert sum(1 for t in trials if spends_budget(t)) == 4
    assert [t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs] == [2]


def test_a_read_only_run_directory_is_one_line(toy, run_cli, assert_user_error, monkeypatch):
    import automl_tl.rundir

    def read_only(*args: object, **kwargs: object) -> object:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(automl_tl.rundir.tempfile, "TemporaryFile", read_only)
    code, out, err = run_cli("search", "-m", "toy", "-n", "1", "--run-dir", "run")
    assert_user_error(code, out, err, "cannot write to run directory run: Read-only file system", "--run-dir")


def _toy_rows(path: Path, seed: int = 0, value: float | None = None) -> Path:
    """Toy data as JSON; ``value`` replaces every number (NaN makes every trial's loss NaN)."""
    import toy_modality

    rows = [{"x": e.item if value is None else [[value] * len(v) for v in e.item], "label": e.label}
            for e in toy_modality.synthetic(n_per_class=10, seed=seed)]
    path.write_text(json.dumps(rows))
    return path


def test_a_plugin_that_ignores_the_test_path_is_refused(toy, register_plugin, run_cli, write_recipe, assert_user_error, tmp_path):
    _toy_rows(tmp_path / "data.json")
    _toy_rows(tmp_path / "test.json", seed=1)
    register_plugin("odd-plugins", {"drops-test": "misbehaving_modality:DropsTestPath"})
    code, out, err = run_cli("search", "-m", "drops-test", "--data", "data.json", "--test", "test.json", "-n", "1", "--run-dir", "run")
    assert_user_error(code, out, err, "plugin 'drops-test' does not read a separate test set: it ignored --test test.json")

    code, out, err = run_cli("search", "-r", write_recipe(FAST), "--data", "data.json", "--test", "test.json", "-n", "1",
                             "--run-dir", "run2")
    assert code == 0, err
    assert "test: the dataset's own test split" in out


def test_a_search_in_which_no_trial_completes_exits_1_saying_why(toy, run_cli, write_recipe, tmp_path):
    _toy_rows(tmp_path / "nan.json", value=float("nan"))
    code, out, err = run_cli("search", "-r", write_recipe(FAST), "--data", "nan.json", "-n", "2", "--run-dir", "run")
    assert code == 1, (out, err)
    assert "Traceback" not in out + err
    assert err.strip().splitlines() == ["Error: no trial completed: 2 failed: loss became nan in epoch 1"]


def _finished_run(run_cli, write_recipe, tmp_path: Path) -> Path:
    code, _, err = run_cli("search", "-r", write_recipe(FAST), "-n", "1", "--run-dir", "run")
    assert code == 0, err
    return tmp_path / "run"


def test_run_directories_this_version_cannot_use_are_refused(toy, run_cli, write_recipe, assert_user_error, tmp_path):
    run = _finished_run(run_cli, write_recipe, tmp_path)
    recipe = write_recipe(FAST)
    config = json.loads((run / "config.json").read_text())

    (run / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    code, out, err = run_cli("search", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert_user_error(code, out, err, "run directory run was made by an incompatible automl-tl (format 99")

    (run / "config.json").write_text(json.dumps(config)[:40])  # a hand-edited or foreign file
    code, out, err = run_cli("search", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert_user_error(code, out, err, "run/config.json is unreadable", "--run-dir")

    (run / "config.json").write_text(json.dumps(config))
    with sqlite3.connect(run / "study.db") as db:  # as if a newer Optuna had upgraded the study's tables
        db.execute("UPDATE alembic_version SET version_num = 'v99.0.0'")
    code, out, err = run_cli("search", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert_user_error(code, out, err, "cannot open study storage sqlite:///", "--storage")

    (run / "study.db").write_bytes(b"not a database" * 100)
    code, out, err = run_cli("search", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert_user_error(code, out, err, "cannot open study storage", "file is not a database")


def test_failures_of_the_machine_become_one_line_and_bugs_do_not():
    full = environment_failure(OSError(errno.ENOSPC, "No space left on device", "runs/x/cache"))
    assert full is not None and full.message == "cannot write runs/x/cache: No space left on device"
    storage = StorageInternalError("An exception is raised during the commit.")
    storage.__cause__ = RuntimeError("server closed the connection unexpectedly\n\tThis probably means...")
    gone = environment_failure(storage)
    assert gone is not None and gone.message == "the study storage failed: server closed the connection unexpectedly"
    assert environment_failure(OSError(errno.EBADF, "Bad file descriptor")) is None  # a bug: keeps its traceback


@pytest.mark.parametrize("study", ["../../../escaped", "a/b", "..", "a\\b"])
def test_a_study_name_that_is_a_path_is_refused(toy, run_cli, assert_user_error, tmp_path, study):
    code, out, err = run_cli("search", "-m", "toy", "-n", "1", "--study", study)
    assert_user_error(code, out, err, "study:", "is not a study name")
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("flags", "recipe", "message"),
    [
        (["--seed", "-5"], "", "search.seed: Input should be greater than or equal to 0"),
        (["--seed", "4294967296"], "", "search.seed: Input should be less than or equal to 4294967295"),
        ([], "seed = -1\n", "search.seed: Input should be greater than or equal to 0"),
    ],
    ids=["flag-negative", "flag-33-bits", "recipe-negative"],
)
def test_a_seed_outside_32_bits_is_refused_before_anything_is_made(
    toy, run_cli, write_recipe, assert_user_error, tmp_path, flags, recipe, message
):
    path = write_recipe(FAST.replace("[search]\n", f"[search]\n{recipe}"))
    code, out, err = run_cli("search", "-r", path, "-n", "1", *flags)
    assert_user_error(code, out, err, message)
    assert not (tmp_path / "runs").exists(), "a refused search leaves no half-made run behind"


def test_the_largest_seed_searches(toy, run_cli, write_recipe):
    """Optuna's samplers take 32-bit seeds; each trial's is derived from the seed and the trial number."""
    code, out, err = run_cli("search", "-r", write_recipe(FAST), "-n", "2", "--seed", "4294967295", "--run-dir", "run")
    assert code == 0, out + err


SECRET_URL = "postgresql+psycopg2://user:s3cret@db-host/automl"


def test_a_storage_password_is_never_shown_or_stored(toy, run_cli, write_recipe, assert_user_error, monkeypatch, tmp_path):
    """Not in errors, config.json, the recorded command line, the leaderboard or the report; readers take it from the environment."""
    code, out, err = run_cli("search", "-r", write_recipe(FAST), "-n", "1", "--storage", "postgresql+psycopg2://user:s3cret@127.0.0.1:1/db")
    assert_user_error(code, out, err, "cannot open study storage postgresql+psycopg2://user:***@127.0.0.1:1/db")
    assert "s3cret" not in out + err

    # a database that answers: the run's SQLite file stands in for the server
    import automl_tl.leaderboard
    import automl_tl.search.engine
    import automl_tl.storage

    local = f"sqlite:///{tmp_path / 'stand-in.db'}"
    real_open, real_load = automl_tl.storage.open_storage, automl_tl.storage.load_study
    monkeypatch.setattr(automl_tl.search.engine, "open_storage", lambda url, *a: real_open(local if url == SECRET_URL else url, *a))
    monkeypatch.setattr(automl_tl.leaderboard, "load_study", lambda url, name: real_load(local if url == SECRET_URL else url, name))
    monkeypatch.setattr(sys, "argv", ["automl-tl", "search", "-n", "1", f"--storage={SECRET_URL}"])
    code, out, err = run_cli("search", "-r", write_recipe(FAST), "-n", "1", "--run-dir", "run", "--storage", SECRET_URL)
    assert code == 0, out + err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["storage"] == "postgresql+psycopg2://user:***@db-host/automl"
    assert config["command"][-1] == "--storage=postgresql+psycopg2://user:***@db-host/automl"

    code, out, err = run_cli("leaderboard", "run")  # the stored URL has no password: say where to give it
    assert_user_error(code, out, err, "the run's study lives in postgresql+psycopg2://user:***@db-host/automl, whose password is not stored",
                      "AUTOML_TL_STORAGE", "--storage")
    monkeypatch.setenv("AUTOML_TL_STORAGE", SECRET_URL)
    code, out, err = run_cli("leaderboard", "run", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["counts"]["complete"] == 1 and "s3cret" not in out
    code, out, err = run_cli("report", "run", "--out", "report.html")
    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    assert "user:***@db-host" in page and "s3cret" not in page

    monkeypatch.setattr(sys, "argv", ["automl-tl", "search", "-n", "2"])  # the URL from the environment alone
    code, out, err = run_cli("search", "-r", write_recipe(FAST), "-n", "2", "--run-dir", "run")
    assert code == 0, out + err
    assert "resuming study 'toy-default': 1 trial(s) already done" in out and "s3cret" not in out + err
