"""Audio in, tensors out: decoding, resampling, Whisper's log-mel, and training-time augmentation.

Audio is read with soundfile (wav, flac, ogg) rather than torchaudio.load, which needs FFmpeg.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from automl_tl.errors import DataError
from automl_tl_speech.whisper.load import SAMPLE_RATE

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")
MAX_SECONDS = 30.0
"""Longer clips are cut, and only this much of a file is read: Whisper has 30 s of positions, and a
keyword clip is never that long (an hour-long recording must not fill the memory)."""
WINDOW, HOP = 400, 160
"""Whisper's STFT at 16 kHz: 25 ms Hann windows every 10 ms."""
MIN_SECONDS = 0.05
"""Shorter clips are refused as broken (a truncated file): every backbone's first window needs more."""


def read_audio(path: Path, sample_rate: int) -> torch.Tensor:
    """The first `MAX_SECONDS` of a file: mono float32 at ``sample_rate``, peak-normalised.

    A `DataError` naming the file when it cannot be decoded or is shorter than `MIN_SECONDS`.
    """
    try:
        with sf.SoundFile(str(path)) as handle:
            rate = handle.samplerate
            data = handle.read(frames=int(MAX_SECONDS * rate), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode audio file {path}: {exc}", hint="fix or remove it, or pass --skip-bad-files") from None
    if data.shape[0] < MIN_SECONDS * rate:
        raise DataError(f"audio file {path} is too short ({1000 * data.shape[0] / rate:.0f} ms)",
                        hint="remove it, or pass --skip-bad-files")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if rate != sample_rate:
        wave = _resampler(rate, sample_rate)(wave)
    return normalise(wave)


@functools.lru_cache(maxsize=8)
def _resampler(source: int, target: int) -> torchaudio.transforms.Resample:
    """One resampling kernel per rate pair: building it is most of the cost of a short clip."""
    return torchaudio.transforms.Resample(source, target)


def normalise(wave: torch.Tensor) -> torch.Tensor:
    """Peak to 0.9 so recording gain does not become a feature; silence stays silence."""
    peak = wave.abs().max()
    return wave * (0.9 / peak) if peak > 1e-6 else wave


def augment_wave(wave: torch.Tensor, sample_rate: int, rng: random.Random) -> torch.Tensor:
    """Random time shift (±100 ms), gain (±6 dB) and white noise (15–40 dB SNR) on a waveform."""
    shift = rng.randint(-sample_rate // 10, sample_rate // 10)
    wave = torch.roll(wave, shift)
    if shift > 0:
        wave[:shift] = 0
    elif shift < 0:
        wave[shift:] = 0
    wave = wave * 10 ** (rng.uniform(-6, 6) / 20)
    power = wave.pow(2).mean().clamp_min(1e-10)
    snr = 10 ** (rng.uniform(15, 40) / 10)
    generator = torch.Generator().manual_seed(rng.getrandbits(31))
    return wave + torch.randn(wave.shape, generator=generator) * (power / snr).sqrt()


def augment_mel_power(log_power: torch.Tensor, filter_gain: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """The same augmentations on a log10 mel power spectrogram (n_mels, T), without a new STFT.

    Time shift (±10 frames = ±100 ms) rolls frames in, filling with silence; gain (±6 dB) is a
    constant in log power; white noise at 15–40 dB SNR adds its expected power, which each mel
    filter passes in proportion to its total weight (``filter_gain``). This keeps augmented
    fine-tuning as cheap per epoch as the un-augmented path.
    """
    power = 10.0 ** log_power
    shift = rng.randint(-10, 10)
    if shift:
        floor = power.min()
        power = torch.roll(power, shift, dims=1)
        if shift > 0:
            power[:, :shift] = floor
        else:
            power[:, shift:] = floor
    power = power * 10 ** (rng.uniform(-6, 6) / 10)
    signal = (power.sum(dim=0).mean() / filter_gain.sum()).clamp_min(1e-10)  # mean power per STFT bin
    noise = signal / 10 ** (rng.uniform(15, 40) / 10)
    return (power + noise * filter_gain[:, None]).clamp_min(1e-10).log10()


def spec_augment(features: torch.Tensor, rng: random.Random, max_time: int = 10, max_freq: int = 8) -> torch.Tensor:
    """SpecAugment-style masking of one time band and one frequency band of a (n_mels, T) spectrogram."""
    features = features.clone()
    n_mels, frames = features.shape
    width = rng.randint(0, min(max_time, frames // 4))
    start = rng.randint(0, frames - width)
    features[:, start : start + width] = features.mean()
    height = rng.randint(0, max_freq)
    low = rng.randint(0, n_mels - height)
    features[low : low + height, :] = features.mean()
    return features


@functools.lru_cache(maxsize=4)
def _mel_filters(n_mels: int) -> torch.Tensor:
    """(WINDOW // 2 + 1, n_mels) Slaney-normalised triangular filters on the Slaney mel scale, 0-8 kHz: Whisper's.

    Computed here, in float64 as transformers' ``WhisperFeatureExtractor`` does, so that the
    result is the same to the bit without importing transformers, the largest part of a bundle's
    start-up otherwise (docs/performance.md).
    """
    edges = _slaney_hertz(np.linspace(0.0, _slaney_mel(8000.0), n_mels + 2))
    bins = np.linspace(0, SAMPLE_RATE // 2, 1 + WINDOW // 2)
    slopes = edges[None, :] - bins[:, None]
    widths = np.diff(edges)
    filters = np.maximum(0.0, np.minimum(-slopes[:, :-2] / widths[:-1], slopes[:, 2:] / widths[1:]))
    filters *= 2.0 / (edges[2:] - edges[:-2])
    return torch.from_numpy(filters).float()


_LOG_HERTZ, _LOG_MEL = 1000.0, 15.0
"""The Slaney mel scale: linear (3 mels per 200 Hz) below 1 kHz, 27 mels per factor 6.4 above."""


def _slaney_mel(hertz: float) -> float:
    return 3.0 * hertz / 200.0 if hertz < _LOG_HERTZ else _LOG_MEL + np.log(hertz / _LOG_HERTZ) * (27.0 / np.log(6.4))


def _slaney_hertz(mels: np.ndarray) -> np.ndarray:
    return np.where(mels >= _LOG_MEL, _LOG_HERTZ * np.exp(np.log(6.4) / 27.0 * (mels - _LOG_MEL)), 200.0 * mels / 3.0)


def mel_filter_gain(n_mels: int = 80) -> torch.Tensor:
    """How much of a flat (white) spectrum each mel filter passes."""
    return _mel_filters(n_mels).sum(dim=0)


def log_mel_power(wave: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """log10 mel power (n_mels, T) of an unpadded 16 kHz clip: Whisper's STFT (25 ms Hann, 10 ms hop)."""
    window = torch.hann_window(WINDOW)
    stft = torch.stft(wave, WINDOW, HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    return torch.clamp(_mel_filters(n_mels).T @ power, min=1e-10).log10()


def whisper_scale(log_power: torch.Tensor) -> torch.Tensor:
    """Whisper's normalisation: floor at max - 8 (in log10 units), then scaled to about [-1, 1]."""
    log_power = torch.maximum(log_power, log_power.max() - 8.0)
    return (log_power + 4.0) / 4.0


def whisper_log_mel(wave: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """Whisper's log-mel spectrogram (n_mels, T) of an unpadded 16 kHz clip.

    The same computation as transformers' WhisperFeatureExtractor (25 ms Hann window, 10 ms hop,
    log10, floor at max - 8, scaled to about [-1, 1]) without its 30 s padding, and ~50x faster
    than calling the extractor clip by clip.
    """
    return whisper_scale(log_mel_power(wave, n_mels))
