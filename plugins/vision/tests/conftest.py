"""Shared fixtures for the vision plugin's tests: images made on the fly, a tiny random-init ViT.

``automl_tl_vision`` is importable from a checkout when the plugin is not pip-installed, and the
``vision`` entry point is registered through a dist-info folder when it is not installed either.
"""

import importlib.util
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

if importlib.util.find_spec("automl_tl_vision") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLOURS = {"red": (220, 40, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}

MakeImage = Callable[..., Path]


def make_image(path: Path, colour=(128, 128, 128), size=(32, 32), mode: str = "RGB", seed: int = 0) -> Path:
    """A small noisy image of one dominant colour, written in the format its suffix names."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_class_folders(root: Path, per_class: int = 10, classes=tuple(COLOURS), suffix: str = ".png", size=(32, 32)) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            make_image(root / name / f"{i:03d}{suffix}", COLOURS.get(name, (100, 100, 100)), size=size, seed=100 * c + i)
    return root


@pytest.fixture
def image() -> MakeImage:
    """`make_image`, for tests that write their own files."""
    return make_image


@pytest.fixture
def class_folders() -> Callable[..., Path]:
    """`make_class_folders`, for tests that lay out their own datasets."""
    return make_class_folders


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """``tmp/images/<red|green|blue>/NNN.png``, 10 images each."""
    return make_class_folders(tmp_path / "images")


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init ViTModel (hidden 32, 2 layers, 2 heads, 32 px, patch 8) and its image processor, saved."""
    pytest.importorskip("transformers")
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(folder)
    return folder


@pytest.fixture
def vision_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure the ``vision`` entry point exists (it does once ``pip install -e plugins/vision`` ran)."""
    if any(ep.name == "vision" for ep in entry_points(group="automl_tl.modalities")):
        return
    info = tmp_path / "site" / "automl_tl_vision-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: automl-tl-vision\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[automl_tl.modalities]\nvision = automl_tl_vision:VisionPlugin\n")
    monkeypatch.syspath_prepend(str(info.parent))


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vision_registered: None):
    """Invoke the CLI in a temporary working directory; returns (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from automl_tl.cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run
