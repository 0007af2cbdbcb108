"""The plugin kit: checks that catch a plugin's mistakes before a search turns them into failed trials.

`check_plugin` is what ``automl-tl plugins check NAME`` runs; call it from a plugin's own tests::

    from automl_tl.testing import check_plugin

    def test_the_plugin_keeps_the_contract(tmp_path):
        check_plugin(SensorsPlugin(), data=write_some_data(tmp_path))  # raises PluginCheckFailed, listing every problem

It builds each backbone and checks types at every boundary, the activation layout and each
block's width, that blocks and the pooling honour the mask, that ``transform(augment=False)`` is
deterministic, that options changing the preprocessing change its fingerprint, what
``load_data`` returns, the entry point, and what importing the plugin costs.
"""

from automl_tl.testing.plugin import check_plugin
from automl_tl.testing.report import Check, CheckReport, PluginCheckFailed

__all__ = ["Check", "CheckReport", "PluginCheckFailed", "check_plugin"]
