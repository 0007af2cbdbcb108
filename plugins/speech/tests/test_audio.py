from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from automl_tl.errors import DataError
from automl_tl_speech.audio import read_audio, spec_augment, whisper_log_mel

from speech_fixtures import tone


def test_log_mel_matches_transformers_feature_extractor(tmp_path: Path) -> None:
    from transformers import WhisperFeatureExtractor

    wave = read_audio(tone(tmp_path / "a.wav", "high", seconds=0.7), 16000)
    ours = whisper_log_mel(wave)
    reference = WhisperFeatureExtractor(feature_size=80)(wave.numpy(), sampling_rate=16000, padding="do_not_pad", return_tensors="pt")
    theirs = reference["input_features"][0]
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_are_the_feature_extractors_to_the_bit(n_mels: int) -> None:
    """Computed without transformers (a bundle's start-up must not import it), yet the same filters."""
    from transformers import WhisperFeatureExtractor

    from automl_tl_speech.audio import _mel_filters

    assert torch.equal(_mel_filters(n_mels), torch.from_numpy(WhisperFeatureExtractor(feature_size=n_mels).mel_filters).float())


def test_read_audio_resamples_mixes_to_mono_and_normalises(tmp_path: Path) -> None:
    stereo = np.stack([np.linspace(-0.1, 0.1, 8000), np.linspace(0.1, -0.05, 8000)], axis=1).astype(np.float32)
    sf.write(str(tmp_path / "s.flac"), stereo, 8000)
    wave = read_audio(tmp_path / "s.flac", 16000)
    assert wave.dim() == 1 and wave.shape[0] == 16000
    assert wave.abs().max() == pytest.approx(0.9, abs=1e-3)


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00not really a wav file at all"])
def test_undecodable_audio_is_a_data_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(content)
    with pytest.raises(DataError, match="broken.wav"):
        read_audio(bad, 16000)


def test_spec_augment_masks_a_band_but_keeps_shape() -> None:
    import random

    features = torch.arange(80 * 40, dtype=torch.float32).reshape(80, 40)
    masked = spec_augment(features, random.Random(3), max_time=10, max_freq=8)
    assert masked.shape == features.shape
    assert not torch.equal(masked, features)
