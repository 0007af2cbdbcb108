"""Speech backbones cut into stem, blocks and pooling for the core.

* Whisper encoders (offline, converted from the bundled CTranslate2 weights): the stem is the
  two convolutions plus positions, the blocks are the transformer layers (the last one ends with
  the encoder's final layer norm), the pooling is a masked mean. Clips run at their real length,
  not Whisper's 30 s window: about 30x less compute for one-second words.
* The wav2vec2 family (wav2vec2, HuBERT, data2vec-audio) from transformers, by hub id or local
  folder: the stem is the convolutional feature encoder, the projection and the positional
  convolution; the blocks are the transformer layers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from automl_tl.backbone import Backbone, Hidden, MeanPool, lengths_to_mask
from automl_tl.errors import UserError
from automl_tl_speech.audio import (
    MAX_SECONDS,
    augment_mel_power,
    augment_wave,
    log_mel_power,
    mel_filter_gain,
    normalise,
    read_audio,
    spec_augment,
    whisper_scale,
)
from automl_tl_speech.whisper import short
from automl_tl_speech.whisper.load import SAMPLE_RATE, load_whisper_encoder, mel_bins

def _additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, T) bool → additive (B, 1, 1, T) key-padding mask, understood by eager and SDPA attention."""
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)[:, None, None, :]


def _augment_rng() -> random.Random:
    """Augmentation draws follow torch's seed, so a trial's run is reproducible."""
    return random.Random(int(torch.randint(0, 2**31 - 1, ())))


class WhisperPreprocessor:
    """Clips become log-mel power once (at load, cached by the core); augmentation works on that.

    Whisper's own scaling is applied per call, so an augmented epoch costs a few tensor ops per
    clip rather than a new STFT.
    """

    def __init__(self, n_mels: int) -> None:
        self.n_mels = n_mels
        self.fingerprint = f"whisper-logmel{n_mels}-16k-peak0.9-max{MAX_SECONDS:.0f}s-v1"

    def load(self, item: Any) -> Tensor:
        wave = read_audio(Path(item), SAMPLE_RATE)
        return log_mel_power(wave, self.n_mels)

    def transform(self, raw: Tensor, augment: bool) -> dict[str, Tensor]:
        if not augment:
            return {"input_features": whisper_scale(raw)}
        rng = _augment_rng()
        augmented = augment_mel_power(raw, mel_filter_gain(self.n_mels), rng)
        return {"input_features": spec_augment(whisper_scale(augmented), rng)}

    def collate(self, features: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        batch, mask = short.pad_features([f["input_features"] for f in features])
        return {"input_features": batch, "mel_mask": mask}

    def length(self, raw: Tensor) -> int:
        return int(raw.shape[-1])


class WhisperStem(nn.Module):
    """conv1 → conv2 → + positions, on the real length of each clip."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.conv1 = encoder.conv1
        self.conv2 = encoder.conv2
        self.embed_positions = encoder.embed_positions
        self.dropout = encoder.dropout

    def forward(self, batch: dict[str, Tensor]) -> Hidden:
        mel_mask = batch["mel_mask"]
        return Hidden(short.stem(self, batch["input_features"], mel_mask), short.frame_mask(mel_mask))  # type: ignore[arg-type]


class MaskedLayer(nn.Module):
    """A transformer layer that takes and returns `Hidden`, with padded frames masked out of attention."""

    def __init__(self, layer: nn.Module, final_norm: nn.Module | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.final_norm = final_norm

    def forward(self, hidden: Hidden) -> Hidden:
        states, mask = hidden
        bias = None if mask is None else _additive_mask(mask, states.dtype)
        out = self.layer(states, bias)
        out = out[0] if isinstance(out, tuple) else out  # transformers 4 returned tuples
        if self.final_norm is not None:
            out = self.final_norm(out)
        return Hidden(out, mask)


def whisper_preprocessor(name: str) -> WhisperPreprocessor:
    """Whisper ``name``'s preprocessing, from its catalogue entry: no weights read, no model code imported."""
    return WhisperPreprocessor(mel_bins(name))


def whisper(name: str) -> Backbone:
    encoder = load_whisper_encoder(name)
    encoder.config._attn_implementation = "sdpa"
    layers = list(encoder.layers)
    blocks = [MaskedLayer(layer, encoder.layer_norm if i == len(layers) - 1 else None) for i, layer in enumerate(layers)]
    return Backbone(
        preprocessor=whisper_preprocessor(name),
        stem=WhisperStem(encoder),
        blocks=blocks,
        pool=MeanPool(),
        width=encoder.config.d_model,
        fingerprint=f"{name}:ct2-converted:{encoder.config.d_model}x{len(layers)}",
    )


class Wav2Vec2Preprocessor:
    def __init__(self, sample_rate: int, do_normalize: bool, fingerprint: str) -> None:
        self.sample_rate = sample_rate
        self.do_normalize = do_normalize
        self.fingerprint = fingerprint

    def load(self, item: Any) -> Tensor:
        return read_audio(Path(item), self.sample_rate)

    def transform(self, raw: Tensor, augment: bool) -> dict[str, Tensor]:
        wave = normalise(augment_wave(raw, self.sample_rate, _augment_rng())) if augment else raw
        if self.do_normalize:
            wave = (wave - wave.mean()) / (wave.std() + 1e-7)
        return {"input_values": wave}

    def collate(self, features: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        waves = [f["input_values"] for f in features]
        lengths = torch.tensor([len(w) for w in waves])
        return {
            "input_values": nn.utils.rnn.pad_sequence(waves, batch_first=True),
            "lengths": lengths,
        }

    def length(self, raw: Tensor) -> int:
        return int(raw.shape[0])


class Wav2Vec2Stem(nn.Module):
    """Convolutional feature encoder, projection and positional convolution (and, for the
    post-norm variants, the encoder's input layer norm)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        config = model.config
        self.feature_extractor = model.feature_extractor
        self.feature_projection = model.feature_projection
        self.pos_conv_embed = model.encoder.pos_conv_embed
        self.layer_norm = None if config.do_stable_layer_norm else model.encoder.layer_norm
        self.dropout = model.encoder.dropout
        self.kernels = list(config.conv_kernel)
        self.strides = list(config.conv_stride)

    def frames(self, samples: Tensor) -> Tensor:
        for kernel, stride in zip(self.kernels, self.strides, strict=True):
            samples = torch.div(samples - kernel, stride, rounding_mode="floor") + 1
        return samples

    def forward(self, batch: dict[str, Tensor]) -> Hidden:
        features = self.feature_extractor(batch["input_values"]).transpose(1, 2)
        projected = self.feature_projection(features)
        hidden = projected[0] if isinstance(projected, tuple) else projected
        mask = lengths_to_mask(self.frames(batch["lengths"]).clamp_min(1), hidden.shape[1])
        hidden = hidden * mask[..., None]
        hidden = hidden + self.pos_conv_embed(hidden)
        if self.layer_norm is not None:
            hidden = self.layer_norm(hidden)
        return Hidden(self.dropout(hidden), mask)


def _offline() -> bool:
    return any(os.environ.get(var) == "1" for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def wav2vec2_preprocessor(name: str) -> Wav2Vec2Preprocessor:
    """The sample rate and normalisation of ``name``'s feature extractor (16 kHz, normalised without one)."""
    from transformers import AutoFeatureExtractor

    try:
        extractor = AutoFeatureExtractor.from_pretrained(name, local_files_only=_offline())
        rate, normalize = extractor.sampling_rate, bool(getattr(extractor, "do_normalize", True))
    except OSError:
        rate, normalize = 16_000, True
    return Wav2Vec2Preprocessor(rate, normalize, f"wave{rate}-norm{normalize}-v1")


def wav2vec2_family(name: str) -> Backbone:
    from transformers import AutoConfig, AutoModel

    offline = _offline()
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=offline)
        model = AutoModel.from_pretrained(name, local_files_only=offline)
    except OSError as exc:
        raise UserError(
            f"backbone {name!r} is not available{' offline' if offline else ''}: {str(exc).splitlines()[0]}",
            hint="use a local folder saved with save_pretrained, or go online once to download it",
        ) from None
    if config.model_type == "wavlm":
        raise UserError("WavLM backbones are not supported yet (their layers share relative position biases)",
                        hint="use wav2vec2, HuBERT or data2vec-audio")
    if not hasattr(model, "feature_extractor") or not hasattr(model, "encoder"):
        raise UserError(f"backbone {name!r} ({config.model_type}) is not a wav2vec2-family audio encoder")
    model.config._attn_implementation = "sdpa"
    layers = list(model.encoder.layers)
    final = model.encoder.layer_norm if config.do_stable_layer_norm else None
    blocks = [MaskedLayer(layer, final if i == len(layers) - 1 else None) for i, layer in enumerate(layers)]
    weights = next((p for p in Path(name).glob("*.safetensors")), None) if Path(name).is_dir() else None
    stamp = f"{weights.stat().st_size}:{weights.stat().st_mtime_ns}" if weights else "hub"
    fingerprint = f"{name}:{config.model_type}:{stamp}"
    return Backbone(
        preprocessor=wav2vec2_preprocessor(name),
        stem=Wav2Vec2Stem(model),
        blocks=blocks,
        pool=MeanPool(),
        width=config.hidden_size,
        fingerprint=fingerprint,
    )
