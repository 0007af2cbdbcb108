"""Backbones from local files and folders: a file is named as one, fallbacks are said, new weights are new."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from automl_tl_vision.backbones import build_hf  # noqa: E402


def test_a_weights_file_as_backbone_says_it_is_a_file_and_what_to_pass(tmp_path: Path, run_cli, image_folder: Path) -> None:
    """Defect: ``--backbone model.pt`` said "backbone folder … does not exist" (it exists; it is a file)."""
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"not read")
    code, out, err = run_cli("search", "--modality", "vision", "--data", str(image_folder), "--backbone", str(weights))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in out + err
    assert f"backbone {weights} is a file" in lines[0] and f"--backbone timm:<model> (or torchvision:<model>) --weights {weights}" in lines[0]


def test_a_folder_without_an_image_processor_says_which_normalisation_it_uses(tmp_path: Path, tiny_vit: Path) -> None:
    """Defect: a ViT folder without a preprocessor config silently used ImageNet settings."""
    folder = tmp_path / "vit"
    shutil.copytree(tiny_vit, folder)
    (folder / "preprocessor_config.json").unlink()
    backbone = build_hf(str(folder), 32)
    assert backbone.notes == [
        f"{folder} has no image processor (preprocessor_config.json): normalising with ImageNet mean 0.485, 0.456, 0.406 "
        "and std 0.229, 0.224, 0.225; save the model's processor beside it if it was trained otherwise"]
    assert build_hf(str(tiny_vit), 32).notes == []


def test_new_weights_saved_over_old_ones_change_the_fingerprint(tmp_path: Path, tiny_vit: Path) -> None:
    """Defect: a local folder was fingerprinted by path and file size, which new weights of the same model keep."""
    import torch
    from transformers import ViTModel

    folder = tmp_path / "vit"
    shutil.copytree(tiny_vit, folder)
    before = build_hf(str(folder), 32).fingerprint
    model = ViTModel.from_pretrained(folder, add_pooling_layer=False)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)
    size = (folder / "model.safetensors").stat().st_size
    model.save_pretrained(folder)
    assert (folder / "model.safetensors").stat().st_size == size
    assert build_hf(str(folder), 32).fingerprint != before
