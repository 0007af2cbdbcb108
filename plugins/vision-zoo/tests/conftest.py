"""Fixtures for the zoo's tests: coloured images in class folders, random-init weights saved as files, a CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLOURS = {"red": (220, 40, 30), "green": (30, 200, 60)}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny images: one thread is fastest, above all on a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """``images/<red|green>/NNN.png``, 8 noisy 32 px images per class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(8):
            pixels = np.clip(np.array(colour)[None, None] + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{i:03d}.png")
    return tmp_path / "images"


@pytest.fixture
def saved_weights(tmp_path: Path) -> Callable[[str, str], Path]:
    """``saved_weights("timm", "resnet18")``: a random-init state dict written where a user's file would be."""
    import torch

    def save(library: str, model: str, suffix: str = ".pth") -> Path:
        if library == "timm":
            import timm

            network = timm.create_model(model, pretrained=False)
        else:
            import torchvision

            network = getattr(torchvision.models, model)(weights=None)
        path = tmp_path / f"{library}-{model}{suffix}"
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
        else:
            torch.save(network.state_dict(), path)
        return path

    return save


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Invoke the CLI in a temporary working directory; returns (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from automl_tl.cli.app import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")

    def run(*args: str | Path) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, [str(a) for a in args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run
