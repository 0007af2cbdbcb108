"""Whisper encoders for transfer learning, built offline from bundled CTranslate2 weights.

`load` finds, converts and caches the weights (`load.available` is cheap: no torch import);
`short` runs the encoder on clips shorter than Whisper's fixed 30 s window. `short` imports torch,
so it is not imported here.
"""

from automl_tl_speech.whisper.load import (
    MODEL_NAMES,
    SAMPLE_RATE,
    available,
    feature_extractor,
    load_whisper_encoder,
)

__all__ = ["MODEL_NAMES", "SAMPLE_RATE", "available", "feature_extractor", "load_whisper_encoder"]
