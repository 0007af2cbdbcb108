"""The plugin's defaults against the core's search space and the shipped text recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl_tl.config import deep_merge, read_recipe, validate
from automl_tl.search.space import BackboneShape, SearchSpace
from automl_tl_text import TextPlugin

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("recipe", ["text-sms-spam.toml", "text-banking77.toml", "text-amazon-to-yelp.toml"])
def test_the_starting_point_lies_inside_the_default_space_and_each_shipped_recipe(recipe: str) -> None:
    """A starting point outside the space is skipped without a word: the search would lose it silently."""
    plugin = TextPlugin()
    raw = read_recipe(REPO / "recipes" / recipe)
    shapes = {"minilm-l6": BackboneShape(depth=6, uniform_width=True, has_batchnorm=False,
                                         target="target_path" in raw.get("data", {}))}
    assert plugin.starting_points()
    for layer in ({}, validate(deep_merge(plugin.default_recipe(), raw), "recipe").space):
        space = SearchSpace.resolve(plugin.search_space(), layer, backbones=["minilm-l6"])
        for point in plugin.starting_points():
            assert space.params_of(point, shapes) is not None
