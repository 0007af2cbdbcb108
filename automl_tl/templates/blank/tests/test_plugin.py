"""The plugin keeps automl-tl's contract: the plugin kit checks it the way `automl-tl plugins check {{name}}` does."""

from automl_tl.testing import check_plugin
from automl_tl_{{name}} import {{Class}}Plugin


def test_the_plugin_passes_the_kit():
    check_plugin({{Class}}Plugin())  # raises PluginCheckFailed, listing every problem
