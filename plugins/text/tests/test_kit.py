"""The text plugin passes the plugin kit (`automl_tl.testing.check_plugin`): MiniLM offline, a tiny BERT folder."""

from __future__ import annotations

from automl_tl.registry import get_plugin
from automl_tl.testing import check_plugin
from automl_tl_text import minilm_folder


def test_text_plugin_passes_the_kit(spam_csv, tiny_bert):
    names = [str(tiny_bert)] + (["minilm-l6"] if minilm_folder() is not None else [])
    report = check_plugin(get_plugin("text"), data=spam_csv, backbones=names)
    assert [check.name for check in report.checks][-len(names):] == [f"backbone {name}" for name in names]
