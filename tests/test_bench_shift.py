"""bench/shift.py: the shift check a search makes, measured on named pairs (issue #19)."""

from __future__ import annotations

import json
import sys

import pytest


def test_the_bench_measures_what_the_search_records_and_says_which_way_it_chooses(
        bench_module, toy, run_cli, write_recipe, fast_recipe, domains, tmp_path, monkeypatch, capsys):
    recipe = write_recipe(f'modality = "toy"\n[data]\npath = "{domains["source"]}"\ntarget_path = "{domains["target"]}"\n' + fast_recipe)
    code, out, err = run_cli("search", "-r", recipe, "-n", "1", "--run-dir", "run")
    assert code == 0, err + out
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["domain_shift"]
    monkeypatch.setattr(sys, "argv", ["shift.py", f"shifted={recipe}", f"copy={recipe}:target_path={domains['source']}",
                                      "--json", str(tmp_path / "shift.json")])
    bench_module("shift").main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("shifted") and lines[0].endswith("shift: adapt")
    assert lines[1].startswith("copy") and lines[1].endswith("no shift: choose on source validation")
    written = json.loads((tmp_path / "shift.json").read_text())["cases"]
    assert written["shifted"]["auc"] == pytest.approx(recorded["auc"])
    assert (written["shifted"]["source"], written["shifted"]["target"]) == (recorded["source"], recorded["target"])


def test_a_recipe_without_a_target_is_one_line_and_exit_2(bench_module, toy, write_recipe, fast_recipe, domains, monkeypatch, capsys):
    recipe = write_recipe(f'modality = "toy"\n[data]\npath = "{domains["source"]}"\n' + fast_recipe)
    monkeypatch.setattr(sys, "argv", ["shift.py", f"alone={recipe}"])
    with pytest.raises(SystemExit) as exit_info:
        bench_module("common").run_script(bench_module("shift").main)  # as the script runs it
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "names no target" in err and "Traceback" not in err
