"""Make ``automl_tl_speech`` and the test helpers importable from a checkout."""

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
if importlib.util.find_spec("automl_tl_speech") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
