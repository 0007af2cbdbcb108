"""`automl-tl plugins new`: the generated package installs, passes the kit and runs a search as generated."""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib

import pytest


@pytest.fixture(autouse=True)
def fresh_sensors_modules(monkeypatch):
    """Both tests import a package named automl_tl_sensors, from different folders."""
    for module in [m for m in sys.modules if m.startswith("automl_tl_sensors")]:
        monkeypatch.delitem(sys.modules, module)


def test_a_new_plugin_passes_the_kit_and_a_two_trial_search(run_cli, register_plugin, monkeypatch, tmp_path):
    code, out, err = run_cli("plugins", "new", "sensors", "--into", tmp_path)
    assert code == 0, err
    package = tmp_path / "automl-tl-sensors"
    assert {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()} == {
        "pyproject.toml", "README.md", "automl_tl_sensors/__init__.py", "automl_tl_sensors/network.py", "tests/test_plugin.py"}

    # installed as `pip install -e` would: its own pyproject's entry points, its folder on sys.path
    project = tomllib.loads((package / "pyproject.toml").read_text())
    register_plugin(project["project"]["name"], project["project"]["entry-points"]["automl_tl.modalities"])
    monkeypatch.syspath_prepend(str(package))

    code, out, err = run_cli("plugins", "check", "sensors")
    assert code == 0, out + err
    assert "plugin 'sensors' passed every check" in out
    spec = importlib.util.spec_from_file_location("sensors_generated_test", package / "tests" / "test_plugin.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    generated.test_the_plugin_passes_the_kit()  # the generated package's own test

    code, out, err = run_cli("search", "--modality", "sensors", "--n-trials", "2", "--run-dir", "run")
    assert code == 0, err
    records = [json.loads(p.read_text()) for p in (tmp_path / "run").glob("trials/*/record.json")]
    assert [r["state"] for r in records] == ["complete", "complete"]


def test_a_bad_name_or_template_is_one_line(run_cli, assert_user_error, tmp_path):
    assert_user_error(*run_cli("plugins", "new", "My-Plugin", "--into", tmp_path), "not a lowercase Python identifier")
    assert_user_error(*run_cli("plugins", "new", "eeg", "--modality-like", "speech", "--into", tmp_path),
                      "no template 'speech'", "available: blank")


def test_the_worked_example_in_examples_passes_the_kit(register_plugin, monkeypatch):
    from pathlib import Path

    from automl_tl.registry import get_plugin
    from automl_tl.testing import check_plugin

    package = Path(__file__).parents[1] / "examples" / "automl-tl-sensors"
    project = tomllib.loads((package / "pyproject.toml").read_text())
    register_plugin(project["project"]["name"], project["project"]["entry-points"]["automl_tl.modalities"])
    monkeypatch.syspath_prepend(str(package))
    check_plugin(get_plugin("sensors"))
