"""The plugin keeps automl-tl's contract: the plugin kit checks it the way `automl-tl plugins check sensors` does."""

from automl_tl.testing import check_plugin
from automl_tl_sensors import SensorsPlugin


def test_the_plugin_passes_the_kit():
    check_plugin(SensorsPlugin())  # raises PluginCheckFailed, listing every problem
