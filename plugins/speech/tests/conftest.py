"""Make ``automl_tl_speech`` importable from a checkout when the plugin is not pip-installed."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("automl_tl_speech") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
