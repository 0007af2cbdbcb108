"""Run a transformers ``WhisperEncoder`` on clips shorter than 30 s, batched with padding.

``WhisperEncoder.forward`` rejects anything but 3000 mel frames (30 s): Whisper was trained on
zero-padded 30 s windows. For short clips (a spoken digit lasts under a second) that wastes ~30x
compute, so we run the encoder's own modules on the real length instead: the conv stem, the first
``T`` sinusoidal positions, the layers and the final layer norm. On a full 30 s input this is the
same computation as ``forward``; on a short one the features differ from what Whisper sees on a
padded window, which is fine for fine-tuning and feature extraction.

Batches of clips of different lengths are right-padded, and padding must not change any clip's
result, so that a clip's features do not depend on its batch mates:

* the stem zeroes padded mel frames and padded ``conv1`` activations, so each convolution sees
  zeros past a clip's end, exactly like its own zero padding when the clip is run alone;
* every layer gets an additive key-padding bias, so real frames never attend to padded ones.

``WhisperEncoderLayer.forward(hidden_states, attention_mask, **kwargs)`` (transformers 5.x) passes
``attention_mask`` unchanged to the attention kernel: for ``eager`` it is added to the (B, H, T, T)
scores, for ``sdpa`` it is ``scaled_dot_product_attention``'s ``attn_mask``. An additive float
(B, 1, 1, T) tensor (0 for real keys, the dtype's minimum for padded ones) broadcasts correctly in
both. Flash and flex attention want other mask formats, so masked calls reject them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

if TYPE_CHECKING:  # the modules are passed in: importing transformers' Whisper code costs seconds a bundle does not need
    from transformers.models.whisper.modeling_whisper import WhisperEncoder, WhisperEncoderLayer

__all__ = [
    "attention_bias",
    "encode",
    "frame_mask",
    "output_lengths",
    "pad_features",
    "run_layer",
    "run_layers",
    "stem",
]

_MASKABLE_ATTENTION = frozenset({"eager", "sdpa"})
_Length = TypeVar("_Length", int, torch.Tensor)


def output_lengths(mel_lengths: _Length) -> _Length:
    """Encoder frames produced from ``mel_lengths`` mel frames (``conv2`` has stride 2)."""
    return (mel_lengths - 1) // 2 + 1


def _lengths(mask: torch.Tensor) -> torch.Tensor:
    """Lengths of a right-padded (B, T) mask; other masks would silently misalign the stem."""
    mask = mask.bool()
    lengths = mask.sum(-1)
    prefix = torch.arange(mask.shape[-1], device=mask.device) < lengths[:, None]
    if not torch.equal(mask, prefix):
        raise ValueError("mask must be right-padded: True for a prefix of each row, then False")
    if bool((lengths == 0).any()):
        raise ValueError("mask has an empty row: every example needs at least one real frame")
    return lengths


def frame_mask(mel_mask: torch.Tensor) -> torch.Tensor:
    """The (B, T) bool mask of encoder frames from a right-padded (B, n_mel_frames) mask."""
    lengths = output_lengths(_lengths(mel_mask))
    n_frames = output_lengths(mel_mask.shape[-1])
    return torch.arange(n_frames, device=mel_mask.device) < lengths[:, None]


def pad_features(features: Sequence[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-clip (n_mels, T_i) features into (B, n_mels, T_max) plus its (B, T_max) mask.

    Prefer this to the feature extractor's own batch padding when a clip must give exactly the
    same result alone and in a batch: the extractor marks ``ceil(n / hop)`` frames real but yields
    ``n // hop`` for the clip alone, and its last real frame then sees padding in the STFT window.
    """
    lengths = torch.tensor([f.shape[-1] for f in features])
    batch = features[0].new_full((len(features), features[0].shape[0], int(lengths.max())), value)
    for row, clip in zip(batch, features, strict=True):
        row[:, : clip.shape[-1]] = clip
    mask = torch.arange(batch.shape[-1]) < lengths[:, None]
    return batch, mask.to(batch.device)


def stem(encoder: WhisperEncoder, input_features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``conv1 -> gelu -> conv2 -> gelu -> + positions[:T]`` on (B, n_mels, n_mel_frames) features.

    Returns (B, T, d_model) with ``T = (n_mel_frames - 1) // 2 + 1``. ``mask`` (B, n_mel_frames),
    True on real frames (e.g. from `pad_features`), makes padded clips give the same frames as
    unpadded ones (see the module docstring).
    """
    n_frames = output_lengths(input_features.shape[-1])
    if n_frames > encoder.embed_positions.num_embeddings:
        raise ValueError(f"input longer than Whisper's {encoder.embed_positions.num_embeddings} positions")
    keep = None
    if mask is not None:
        _lengths(mask)  # validate
        keep = mask.to(device=input_features.device, dtype=input_features.dtype)[:, None, :]
        input_features = input_features * keep
    hidden = nn.functional.gelu(encoder.conv1(input_features))
    if keep is not None:
        hidden = hidden * keep
    hidden = nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
    hidden = hidden + encoder.embed_positions.weight[:n_frames]
    return nn.functional.dropout(hidden, p=encoder.dropout, training=encoder.training)


def attention_bias(frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive (B, 1, 1, T) key-padding bias for ``WhisperEncoderLayer``: 0 real, dtype min padded.

    The dtype's minimum rather than ``-inf`` keeps softmax finite even for padded query rows.
    """
    bias = torch.zeros(frames.shape, dtype=dtype, device=frames.device)
    bias = bias.masked_fill(~frames.bool(), torch.finfo(dtype).min)
    return bias[:, None, None, :]


def run_layer(layer: WhisperEncoderLayer, hidden: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """One encoder layer; ``bias`` from `attention_bias` (None: attend everywhere).

    Calls the module (not ``forward``) so gradient checkpointing, if enabled, still applies.
    """
    implementation = layer.self_attn.config._attn_implementation
    if bias is not None and implementation not in _MASKABLE_ATTENTION:
        raise NotImplementedError(f"padding masks need eager or sdpa attention, not {implementation!r}")
    return layer(hidden, bias)


def run_layers(
    encoder: WhisperEncoder,
    hidden: torch.Tensor,
    frames: torch.Tensor | None = None,
    start: int = 0,
    stop: int | None = None,
) -> torch.Tensor:
    """Layers ``start:stop`` of the encoder (not the final layer norm) on (B, T, d_model) frames.

    The range lets callers run frozen lower layers under ``torch.no_grad`` and train the rest.
    LayerDrop applies in training mode, as in ``WhisperEncoder.forward``.
    """
    bias = None if frames is None else attention_bias(frames, hidden.dtype)
    for layer in encoder.layers[start:stop]:
        if encoder.training and encoder.layerdrop > 0.0 and torch.rand([]) < encoder.layerdrop:
            continue
        hidden = run_layer(layer, hidden, bias)
    return hidden


def encode(encoder: WhisperEncoder, input_features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Last hidden state (B, T, d_model) for features of any length up to 30 s.

    ``mask`` is the (B, n_mel_frames) right-padding mask of the features (from `pad_features`,
    or the feature extractor's ``attention_mask``); `frame_mask` gives the matching (B, T) mask of
    the output. Padded output frames are set to zero.
    """
    mask = None if mask is None else mask.to(input_features.device)
    frames = None if mask is None else frame_mask(mask)
    hidden = run_layers(encoder, stem(encoder, input_features, mask), frames)
    hidden = encoder.layer_norm(hidden)
    if frames is not None:
        hidden = hidden.masked_fill(~frames[..., None], 0.0)
    return hidden
