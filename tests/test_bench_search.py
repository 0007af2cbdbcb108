"""bench/search.py's side-by-side arithmetic: which trials count as the same configuration in both arms."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


@pytest.fixture
def bench_search(bench_module):
    return bench_module("search")


def _trials(*pairs):
    return [{"params": {"strategy": strategy}, "seconds": seconds} for strategy, seconds in pairs]


def test_only_the_leading_identical_configurations_are_compared(bench_search) -> None:
    ours = _trials(("feature_extraction", 1.0), ("partial", 2.0), ("lp_ft", 5.0), ("partial", 1.0))
    naive = _trials(("feature_extraction", 10.0), ("partial", 30.0), ("full", 90.0), ("partial", 9.0))
    assert bench_search._same_configurations(ours, naive) == (2, 3.0, 40.0)
    ratios = bench_search._ratios({"automl-tl": {"wall_s": 10.0, "trials": ours}, "naive": {"wall_s": 100.0, "trials": naive}})
    assert ratios["naive / automl-tl"] == 10.0
    assert ratios["naive / automl-tl, trial time of the 2 trials both arms drew alike"] == pytest.approx(40 / 3)


def test_arms_that_differ_from_the_first_trial_have_no_like_for_like_ratio(bench_search) -> None:
    ours, naive = _trials(("partial", 2.0)), _trials(("full", 20.0))
    assert bench_search._same_configurations(ours, naive) is None
    assert list(bench_search._ratios({"automl-tl": {"wall_s": 2.0, "trials": ours}, "naive": {"wall_s": 20.0, "trials": naive}})) == ["naive / automl-tl"]


def test_hindsight_pruning_stops_every_trial_but_the_winner_after_its_first_epoch(bench_search) -> None:
    ours = {"wall_s": 100.0, "best_number": 1, "trials": [
        {"number": 0, "params": {}, "seconds": 30.0, "epoch_seconds": [10.0, 10.0, 9.0]},  # 19 s past epoch 1
        {"number": 1, "params": {}, "seconds": 40.0, "epoch_seconds": [20.0, 20.0]},  # the winner runs whole
        {"number": 2, "params": {}, "seconds": 5.0, "epoch_seconds": [5.0]},  # pruned at once: nothing to save
    ]}
    assert bench_search._hindsight_s(ours) == 81.0
    naive = {"wall_s": 405.0, "trials": []}
    ratios = bench_search._ratios({"automl-tl": ours, "naive": naive})
    assert ratios["naive / automl-tl had its pruner known the winner in advance, at most"] == 5.0
    # a stopped naive arm bounds nothing from above; untimed epochs give no figure at all
    assert not any("known the winner" in n for n in bench_search._ratios({"automl-tl": ours, "naive": {**naive, "stopped": True}}))
    ours["trials"][0]["epoch_seconds"] = [None]
    assert bench_search._hindsight_s(ours) is None


def test_a_kept_run_directory_is_never_resumed_as_a_fresh_arm(bench_search, tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "naive").mkdir()  # an earlier benchmark's arm: searching on in it would resume, not compare
    monkeypatch.setattr(sys, "argv", ["search.py", "--recipe", "r.toml", "--arms", "naive", "--keep", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        bench_search.main()
    assert exit_info.value.code == 2
    assert "already holds run(s) naive" in capsys.readouterr().err


def _arm_file(path: Path, arms: dict, recipe: str = "r.toml", n_trials: int = 20) -> Path:
    path.write_text(json.dumps({"recipe": recipe, "n_trials": n_trials, "arms": arms}), encoding="utf-8")
    return path


def test_arms_run_apart_are_combined_into_one_table(bench_search, tmp_path, monkeypatch, capsys) -> None:
    ours = {"floor": {"forward_s": 2.0, "decode_s": 0.5, "examples": 10},
            "automl-tl": {"wall_s": 10.0, "trials": _trials(("partial", 2.0)), "trials_completed": 1, "trials_pruned": 0,
                          "trials_failed": 0, "best_validation": 0.9, "test": {"accuracy": 0.9, "macro_f1": 0.9}}}
    naive = {"naive": {**ours["automl-tl"], "wall_s": 120.0, "trials": _trials(("partial", 24.0))}}
    files = [_arm_file(tmp_path / "ours.json", ours), _arm_file(tmp_path / "naive.json", naive)]
    out = tmp_path / "both.json"
    monkeypatch.setattr(sys, "argv", ["search.py", "--combine", *map(str, files), "--json", str(out)])
    bench_search.main()
    ratios = json.loads(out.read_text())["ratios"]
    assert ratios["naive / automl-tl"] == 12.0 and ratios["automl-tl / floor"] == 5.0
    assert "naive / automl-tl: 12.0x" in capsys.readouterr().out


@pytest.mark.parametrize(("recipe", "n_trials", "arms", "message"), [
    ("other.toml", 20, {"naive": {}}, "only runs of one recipe and count compare"),
    ("r.toml", 10, {"naive": {}}, "only runs of one recipe and count compare"),
    ("r.toml", 20, {"automl-tl": {}}, "holds arm(s) automl-tl already read"),
])
def test_only_arms_of_one_benchmark_combine(bench_search, tmp_path, monkeypatch, capsys, recipe, n_trials, arms, message) -> None:
    first = _arm_file(tmp_path / "a.json", {"automl-tl": {}})
    second = _arm_file(tmp_path / "b.json", arms, recipe, n_trials)
    monkeypatch.setattr(sys, "argv", ["search.py", "--combine", str(first), str(second)])
    with pytest.raises(SystemExit) as exit_info:
        bench_search.main()
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("naive_stopped", "ours_stopped", "name"), [
    (False, False, "naive / automl-tl"),
    (True, False, "naive (stopped after 1 trials) / automl-tl, at least"),
    (False, True, "naive / automl-tl (stopped after 1 trials), at most"),
])
def test_an_arm_stopped_by_hand_makes_the_ratio_a_bound(bench_search, naive_stopped, ours_stopped, name) -> None:
    interrupted = {"params": {"strategy": "full"}, "seconds": None}  # the trial Ctrl-C stopped does not count
    ours = {"wall_s": 10.0, "stopped": ours_stopped, "trials": [*_trials(("partial", 2.0)), interrupted]}
    naive = {"wall_s": 50.0, "stopped": naive_stopped, "trials": [*_trials(("full", 20.0)), interrupted]}
    assert bench_search._ratios({"automl-tl": ours, "naive": naive}) == {name: 5.0}


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ('{"recipe": "r.toml"', "cannot read"),
    ('{"recipe": "r.toml", "n_trials": 20}', "is not a file written by bench/search.py --json"),
])
def test_a_missing_or_foreign_file_to_combine_is_one_line_and_exit_2(bench_search, tmp_path, monkeypatch, capsys,
                                                                      content, message) -> None:
    path = tmp_path / "arms.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["search.py", "--combine", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        bench_search.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
