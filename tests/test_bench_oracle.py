"""bench/oracle.py: every labelled target sentence tested by a model that never saw it (issue #19)."""

from __future__ import annotations

import sys

import pytest


def test_folds_hold_every_line_once_each_class_dealt_evenly_and_the_same_way_each_time(bench_module):
    oracle = bench_module("oracle")
    lines = [f"sentence {i}\t{i % 3 == 0:d}" for i in range(100)]
    folds = oracle.stratified_folds(list(lines), 5)
    assert sorted(line for fold in folds for line in fold) == sorted(lines)
    for label in ("0", "1"):
        counts = [sum(line.endswith("\t" + label) for line in fold) for fold in folds]
        assert max(counts) - min(counts) <= 1
    assert folds == oracle.stratified_folds(list(lines), 5)  # seeded: the same folds on every run


def test_a_missing_file_is_one_line_and_exit_2(bench_module, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["oracle.py", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        bench_module("common").run_script(bench_module("oracle").main)  # as the script runs it
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no labelled text file" in err and "Traceback" not in err
