"""The offline spoken-digit synthesiser (skipped where eSpeak NG is not available)."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from automl_tl_speech import synth

pytestmark = pytest.mark.skipif(
    not synth.available(), reason="eSpeak NG not available (pip install espeakng-loader, or apt install espeak-ng)"
)

NAME = re.compile(r"^(\d)_([a-z0-9]+)_(\d+)\.wav$")  # FSDD's {digit}_{speaker}_{index}.wav


def _wavs(root: Path) -> list[Path]:
    return sorted((root / "recordings").glob("*.wav"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    out = tmp_path_factory.mktemp("synth") / "digits"
    assert synth.synthesize_digits(out, per_class=3, seed=0, progress=lambda d, t: calls.append((d, t))) == out
    return out, calls


def test_layout_and_naming(small: tuple[Path, list[tuple[int, int]]]) -> None:
    out, calls = small
    files = _wavs(out)
    assert len(files) == 30
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "recordings"]
    assert list(out.parent.iterdir()) == [out], "the staging folder was left behind"
    parsed = [NAME.match(p.name) for p in files]
    assert all(parsed), [p.name for p, m in zip(files, parsed) if not m]
    assert Counter(int(m.group(1)) for m in parsed) == {d: 3 for d in range(10)}
    per_voice: dict[tuple[str, str], list[int]] = {}
    for m in parsed:
        per_voice.setdefault((m.group(1), m.group(2)), []).append(int(m.group(3)))
    assert all(sorted(ix) == list(range(len(ix))) for ix in per_voice.values())
    assert calls[0] == (0, 30) and calls[-1] == (30, 30) and [d for d, _ in calls] == list(range(31))
    assert "eSpeak NG" in (out / "README.txt").read_text()


def test_audio_is_plausible_speech(small: tuple[Path, list[tuple[int, int]]]) -> None:
    for path in _wavs(small[0]):
        info = sf.info(path)
        assert (info.channels, info.samplerate, info.subtype) == (1, 16000, "PCM_16"), path.name
        assert 0.2 <= info.duration <= 3.0, (path.name, info.duration)
        audio, _ = sf.read(path, dtype="float32")
        assert np.max(np.abs(audio)) > 0.05, path.name
        # speech stands out from the noise floor: loudest 50 ms window vs. the quietest one
        frames = audio[: len(audio) // 800 * 800].reshape(-1, 800)
        rms = np.sqrt(np.mean(frames**2, axis=1))
        assert rms.max() > 3 * rms.min(), path.name


def test_several_voices_all_known(small: tuple[Path, list[tuple[int, int]]]) -> None:
    speakers = {NAME.match(p.name).group(2) for p in _wavs(small[0])}  # type: ignore[union-attr]
    assert len(speakers) >= 5
    assert speakers <= {synth.speaker_id(v) for v in synth.VOICES}
    assert all(s.isalnum() and "_" not in s for s in speakers)


def test_same_seed_same_bytes_other_seed_differs(small: tuple[Path, list[tuple[int, int]]], tmp_path: Path) -> None:
    again = synth.synthesize_digits(tmp_path / "again", per_class=3, seed=0)
    assert [p.name for p in _wavs(again)] == [p.name for p in _wavs(small[0])]
    for a, b in zip(_wavs(again), _wavs(small[0])):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert (again / "README.txt").read_text() == (small[0] / "README.txt").read_text()
    other = synth.synthesize_digits(tmp_path / "other", per_class=3, seed=1)
    assert [p.read_bytes() for p in _wavs(other)] != [p.read_bytes() for p in _wavs(again)]


def test_sample_rate(tmp_path: Path) -> None:
    out = synth.synthesize_digits(tmp_path / "d", per_class=1, sample_rate=8000)
    files = _wavs(out)
    assert len(files) == 10
    assert {sf.info(p).samplerate for p in files} == {8000}


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    def fail(done: int, total: int) -> None:
        if done == 4:
            raise KeyboardInterrupt  # e.g. Ctrl-C half way through writing

    with pytest.raises(KeyboardInterrupt):
        synth.synthesize_digits(tmp_path / "d", per_class=1, progress=fail)
    assert list(tmp_path.iterdir()) == []


def test_existing_dataset_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        synth.synthesize_digits(out, per_class=1)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is fine: it is replaced
    assert len(_wavs(synth.synthesize_digits(empty, per_class=1))) == 10


def test_resample_length_and_speaker_id() -> None:
    x = np.zeros(22050, dtype=np.float32)
    assert len(synth._resample(x, 22050, 16000)) == 16000
    assert len(synth._resample(x[:1001], 22050, 8000)) == round(1001 * 8000 / 22050)
    assert synth.speaker_id("en-gb-x-rp+Annie") == "engbxrpannie"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng command")
def test_cli_backend(tmp_path: Path) -> None:
    out = synth.synthesize_digits(tmp_path / "d", per_class=1, backend="cli")
    files = _wavs(out)
    assert len(files) == 10 and all(NAME.match(p.name) for p in files)
    assert {sf.info(p).samplerate for p in files} == {16000}
