"""timm and torchvision backbones reach the vision modality through the automl_tl.backbones entry point."""

from __future__ import annotations

import json

import pytest

from automl_tl.registry import backbone_builder, get_plugin
from automl_tl.testing import check_plugin

SEARCH = ("search", "--modality", "vision", "--resolution", "32", "--n-trials", "2", "--run-dir", "run")
RECIPE = '[space]\nepochs = 1\nbatch_size = 8\nstrategy = ["feature_extraction", "partial"]\n'


@pytest.mark.parametrize(("library", "model", "suffix"), [("timm", "resnet18", ".safetensors"), ("torchvision", "resnet18", ".pth")])
def test_a_two_trial_search_with_local_weights(library, model, suffix, images, saved_weights, run_cli, tmp_path):
    weights = saved_weights(library, model, suffix)
    (tmp_path / "recipe.toml").write_text(RECIPE)
    code, out, err = run_cli(*SEARCH, "--data", images, "--backbone", f"{library}:{model}", "--weights", weights,
                             "--recipe", tmp_path / "recipe.toml")
    assert code == 0, err + out
    records = [json.loads(p.read_text()) for p in (tmp_path / "run").glob("trials/*/record.json")]
    assert [r["state"] for r in records] == ["complete", "complete"]
    plugins = json.loads((tmp_path / "run" / "config.json").read_text())["plugins"]
    assert {p["distribution"] for p in plugins} == {"automl-tl-vision", "automl-tl-vision-zoo"}

    image = next((images / "red").iterdir())  # the model is used through the backbone plugin that built it
    code, out, err = run_cli("predict", "run", image)
    assert code == 0, err
    code, _, err = run_cli("export", "run", "--out", "bundle")
    assert code == 0, err
    code, again, err = run_cli("predict", "bundle", image)
    assert code == 0, err
    assert json.loads(again)["label"] == json.loads(out)["label"]


def test_the_zoo_is_listed_under_the_vision_modality(run_cli):
    code, out, err = run_cli("plugins", "list")
    assert code == 0, err
    rows = [line for line in out.splitlines() if "timm:resnet18" in line or "torchvision:resnet18" in line]
    assert len(rows) == 2 and all("from automl-tl-vision-zoo" in row for row in rows)


def test_names_go_to_the_backbone_plugin_and_others_to_the_modality():
    vision = get_plugin("vision")
    assert backbone_builder(vision, "timm:anything").name == "timm"
    assert backbone_builder(vision, "torchvision:resnet18").name == "torchvision"
    assert backbone_builder(vision, "efficientnet-lite0") is vision


@pytest.mark.parametrize(("backbone", "fragment"), [
    ("timm:resnet18", "no weights for timm:resnet18 on this machine"),
    ("timm:no_such_model", "timm has no model 'no_such_model'"),
    ("torchvision:alexnet", "torchvision:alexnet is not a model this plugin can cut"),
])
def test_mistakes_are_one_line(backbone, fragment, images, run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    code, out, err = run_cli(*SEARCH, "--data", images, "--backbone", backbone)
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err


def test_weights_of_another_architecture_are_refused(images, saved_weights, run_cli):
    code, out, err = run_cli(*SEARCH, "--data", images, "--backbone", "timm:resnet18", "--weights",
                             saved_weights("torchvision", "mobilenet_v3_small"))
    assert code == 2 and "do not fit timm:resnet18" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(("library", "model"), [("timm", "mobilenetv3_small_100"), ("timm", "vit_tiny_patch16_224"),
                                                ("timm", "convnext_atto"), ("torchvision", "mobilenet_v3_small")])
def test_each_family_passes_the_kit(library, model, images, saved_weights):
    check_plugin(get_plugin("vision"), data=images, backbones=[f"{library}:{model}"],
                 options={"resolution": 32, "weights": str(saved_weights(library, model))})
