"""bench/oracle.py: every labelled target sentence tested by a model that never saw it (issue #19)."""

from __future__ import annotations


def test_folds_hold_every_line_once_each_class_dealt_evenly_and_the_same_way_each_time(bench_module):
    oracle = bench_module("oracle")
    lines = [f"sentence {i}\t{i % 3 == 0:d}" for i in range(100)]
    folds = oracle.stratified_folds(list(lines), 5)
    assert sorted(line for fold in folds for line in fold) == sorted(lines)
    for label in ("0", "1"):
        counts = [sum(line.endswith("\t" + label) for line in fold) for fold in folds]
        assert max(counts) - min(counts) <= 1
    assert folds == oracle.stratified_folds(list(lines), 5)  # seeded: the same folds on every run
