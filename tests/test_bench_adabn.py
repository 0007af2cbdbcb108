"""bench/adabn.py: a run's adapted model with its BatchNorm statistics re-estimated on the target (issue #19)."""

from __future__ import annotations

import json
import sys

import pytest
import torch


@pytest.fixture
def bench_adabn(bench_module):
    return bench_module("adabn")


def test_adabn_starts_from_the_delivered_score_and_re_estimates_every_batchnorm_layer(
        bench_adabn, toy, run_cli, write_recipe, fast_recipe, domains, tmp_path, monkeypatch):
    code, out, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe + 'adaptation = "statistics"\n'), "--batchnorm",
                             "--data", domains["source"], "--target", domains["target"], "--target-test", domains["target_test"],
                             "-n", "2", "--run-dir", "run")
    assert code == 0, err + out
    norms: list[torch.nn.modules.batchnorm._BatchNorm] = []
    original = torch.nn.modules.batchnorm._BatchNorm.reset_running_stats

    def watched(self):
        norms.append(self)
        original(self)

    monkeypatch.setattr(torch.nn.modules.batchnorm._BatchNorm, "reset_running_stats", watched)
    result = bench_adabn.adabn(tmp_path / "run")
    scores = result["target_test_accuracy"]
    target = json.loads((tmp_path / "run" / "test.json").read_text())["target"]
    assert scores["as saved"] == pytest.approx(target["accuracy"])  # the model as the search tested it on the target
    re_estimated = {id(norm): norm for norm in norms if norm.momentum is None}  # the model's, not the ones built and replaced
    assert len(re_estimated) == result["batchnorm_layers"] > 0
    assert all(int(norm.num_batches_tracked) > 0 for norm in re_estimated.values())  # each averaged over the examples
    assert set(scores) == {"as saved", "AdaBN", "AdaBN, the head's map kept", "AdaBN, the head's map re-estimated"}
    tested = json.loads((tmp_path / "run" / "test.json").read_text())
    assert result["source_test_accuracy"]["as saved"] == pytest.approx(tested["accuracy"])  # the model restored for the source


def test_a_run_without_batchnorm_is_one_line_and_exit_2(bench_adabn, bench_module, toy, run_cli, write_recipe, fast_recipe,
                                                         domains, tmp_path, monkeypatch, capsys):
    code, out, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "--data", domains["source"],
                             "--target", domains["target"], "--target-test", domains["target_test"], "-n", "1", "--run-dir", "run")
    assert code == 0, err + out
    monkeypatch.setattr(sys, "argv", ["adabn.py", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exit_info:
        bench_module("common").run_script(bench_adabn.main)  # as the script runs it
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "has no BatchNorm layer" in err and "Traceback" not in err
