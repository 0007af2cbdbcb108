"""Fuzzing the speech loader: any manifest, any bytes in an audio file, gives clips or one `DataError`.

(Also here: the hostile folders and manifests found while fuzzing, as plain tests.)

Files come from four sources: random bytes, a real WAV cut at a random byte (a download that
stopped), a real WAV with random bytes overwritten (a damaged disk), and a float WAV holding a NaN
or infinite sample. The class folders also hold random symlinks (loops, links across classes, to
files, dangling). Every clip the loader accepts must then decode to finite samples, or fail to
decode with a `DataError` naming it, never anything else; and each file is used once, under the
label of the folder it really lies in.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automl_tl.contract import LabelledData
from automl_tl.errors import DataError
from automl_tl_speech.audio import read_audio
from automl_tl_speech.data import load_path

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _wav(seconds: float = 0.3, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buffer, (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _float_wav(bad: float) -> bytes:
    buffer = io.BytesIO()
    wave = np.full(2400, 0.2, dtype=np.float32)
    wave[100] = bad
    sf.write(buffer, wave, 8000, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


WAV = _wav()
audio_bytes = st.one_of(
    st.sampled_from([np.nan, np.inf, -np.inf]).map(_float_wav),
    st.binary(max_size=200),
    st.integers(0, len(WAV)).map(lambda n: WAV[:n]),
    st.lists(st.tuples(st.integers(0, len(WAV) - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda flips: bytes(b if i not in dict(flips) else dict(flips)[i] for i, b in enumerate(WAV))
    ),
)
links = st.lists(
    st.tuples(st.sampled_from(["low", "high"]),
              st.sampled_from(["..", ".", "../low", "../high", "../..", "good.wav", "../high/good.wav", "gone.wav"])),
    max_size=3,
)
"""Symlinks to put in the class folders: (folder, target)."""
cells = st.one_of(st.sampled_from(["a.wav", "b.wav", "missing.wav", "../b.wav", "", "a.wav\n", "a\x00.wav"]), st.text(max_size=8))


def _accepted(data: LabelledData) -> None:
    """Whatever was accepted decodes, or fails with a `DataError` naming the file."""
    for example in data.examples:
        try:
            wave = read_audio(Path(example.item), 16000)
        except DataError as exc:
            assert str(example.item) in exc.message
            continue
        assert wave.ndim == 1 and wave.numel() > 0 and bool(wave.isfinite().all())


@FUZZ
@given(files=st.lists(audio_bytes, min_size=1, max_size=4), links=links, skip=st.booleans())
def test_any_audio_bytes_give_clips_or_one_data_error(files: list[bytes], links: list[tuple[str, str]], skip: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "data"
        for label in ("low", "high"):
            (root / label).mkdir(parents=True)
            (root / label / "good.wav").write_bytes(WAV)
        for i, content in enumerate(files):
            (root / ("low", "high")[i % 2] / f"fuzz{i}.wav").write_bytes(content)
        for i, (where, target) in enumerate(links):
            os.symlink(target, root / where / f"link{i}{'.wav' if target.endswith('.wav') else ''}")
        try:
            data = load_path(root, skip_bad_files=skip)
        except DataError as exc:
            assert not skip or "labelled both" in exc.message, "with --skip-bad-files a bad file is skipped, not fatal"
            assert exc.message
            return
        assert len(data.examples) + len(data.skipped) == 2 + len(files)  # links add no file, and lose none
        real = [Path(os.path.realpath(e.item)) for e in data.examples]
        assert len(set(real)) == len(real) and all(r.parent.name == e.label for r, e in zip(real, data.examples))
        _accepted(data)


@FUZZ
@given(
    kind=st.sampled_from(["csv", "jsonl"]),
    header=st.sampled_from(["path,label", "path,label,group", "label,path", "file,label", ""]),
    rows=st.lists(st.lists(cells, min_size=0, max_size=4), max_size=6),
    raw=st.one_of(st.none(), st.binary(max_size=120)),
)
def test_any_manifest_gives_clips_or_one_data_error(kind: str, header: str, rows: list[list[str]], raw: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "a.wav").write_bytes(WAV)
        (root / "b.wav").write_bytes(WAV)
        manifest = root / f"manifest.{kind}"
        if raw is not None:
            manifest.write_bytes(raw)
        elif kind == "csv":
            manifest.write_text("\n".join([header, *(",".join(row) for row in rows)]), encoding="utf-8")
        else:
            names = header.split(",")
            manifest.write_text("\n".join(json.dumps(dict(zip(names, row))) for row in rows), encoding="utf-8")
        try:
            data = load_path(manifest, skip_bad_files=False)
        except DataError as exc:
            assert exc.message
            return
        assert data.examples and all(isinstance(e.label, str) and e.label for e in data.examples)
        _accepted(data)


def test_hostile_folders_are_refused_or_reported(tmp_path: Path) -> None:
    """The cases the fuzzer would take long to find: a 10 ms clip, an empty class folder, a 31 s clip."""
    for label in ("low", "high"):
        for i in range(2):
            (tmp_path / label).mkdir(exist_ok=True)
            (tmp_path / label / f"{i}.wav").write_bytes(WAV)
    (tmp_path / "cat").mkdir()
    short = tmp_path / "low" / "short.wav"
    short.write_bytes(_wav(seconds=0.01))
    (tmp_path / "high" / "long.wav").write_bytes(_wav(seconds=31))

    with pytest.raises(DataError, match=r"short.wav is too short \(10 ms, at least 50 ms\)"):
        load_path(tmp_path, skip_bad_files=False)
    data = load_path(tmp_path, skip_bad_files=True)
    assert data.skipped == [f"{short}: is too short (10 ms, at least 50 ms)"]
    assert "empty class folder(s) ignored: cat" in data.description
    assert "1 clip(s) longer than 30 s: only their first 30 s are used" in data.description
    assert read_audio(tmp_path / "high" / "long.wav", 16000).numel() == 30 * 16000  # and only that much is read


def test_repeated_manifest_rows_are_counted_and_an_unreadable_manifest_is_one_error(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a.wav").write_bytes(WAV)
    (tmp_path / "b.wav").write_bytes(WAV)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.wav,x\nb.wav,y\na.wav,x\n")
    data = load_path(manifest, skip_bad_files=False)
    assert len(data.examples) == 2 and "1 repeated row(s) ignored" in data.description

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(DataError, match=r"cannot read manifest .*m.csv: Permission denied"):
        load_path(manifest, skip_bad_files=False)
