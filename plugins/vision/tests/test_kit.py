"""The vision plugin passes the plugin kit (`automl_tl.testing.check_plugin`): EfficientNet-Lite0 and a tiny ViT."""

from __future__ import annotations

from automl_tl.registry import get_plugin
from automl_tl.testing import check_plugin
from automl_tl_vision import efficientnet_lite


def test_vision_plugin_passes_the_kit(vision_registered, image_folder, tiny_vit):
    names = [str(tiny_vit)] + (["efficientnet-lite0"] if efficientnet_lite.weights_path() is not None else [])
    report = check_plugin(get_plugin("vision"), data=image_folder, backbones=names, options={"resolution": 32})
    assert [check.name for check in report.checks][-len(names):] == [f"backbone {name}" for name in names]
