import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from automl_tl.config import DataConfig
from automl_tl.contract import DataRequest
from automl_tl.errors import DataError
from automl_tl.splits import make_splits
from automl_tl_speech import SpeechOptions, SpeechPlugin
from automl_tl_speech.data import load_path

from speech_fixtures import fsdd_folder, tone


def test_class_folders(tmp_path: Path) -> None:
    for i in range(3):
        tone(tmp_path / "low" / f"{i}.wav", "low")
        tone(tmp_path / "high" / f"{i}.flac", "high")
    data = load_path(tmp_path, skip_bad_files=False)
    assert sorted({e.label for e in data.examples}) == ["high", "low"]
    assert len(data.examples) == 6 and all(e.group is None for e in data.examples)


def test_fsdd_names_give_speaker_groups(tmp_path: Path) -> None:
    data = load_path(fsdd_folder(tmp_path), skip_bad_files=False)
    assert data.group_name == "speaker"
    assert {e.group for e in data.examples} == {"ann", "bob", "cat", "dan"}
    splits = make_splits(data, DataConfig(test_groups=["dan"]), seed=0)
    train, val, test = ({e.group for e in s} for s in (splits.train, splits.validation, splits.test))
    assert test == {"dan"} and not (train & val) and not (train & test) and not (val & test)


def test_csv_and_jsonl_manifests_resolve_paths_relative_to_the_manifest(tmp_path: Path) -> None:
    for i in range(2):
        tone(tmp_path / "audio" / f"l{i}.wav", "low")
        tone(tmp_path / "audio" / f"h{i}.wav", "high")
    (tmp_path / "m.csv").write_text("path,label,group\naudio/l0.wav,low,a\naudio/l1.wav,low,b\naudio/h0.wav,high,a\naudio/h1.wav,high,b\n")
    rows = [{"path": f"audio/{n}.wav", "label": lab} for n, lab in (("l0", "low"), ("h0", "high"))]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    csv_data = load_path(tmp_path / "m.csv", skip_bad_files=False)
    assert {(Path(e.item).name, e.label, e.group) for e in csv_data.examples} >= {("l0.wav", "low", "a"), ("h1.wav", "high", "b")}
    assert len(load_path(tmp_path / "m.jsonl", skip_bad_files=False).examples) == 2


def test_conflicting_labels_in_a_manifest_are_refused(tmp_path: Path) -> None:
    tone(tmp_path / "a.wav", "low")
    (tmp_path / "m.csv").write_text("path,label\na.wav,low\na.wav,high\n")
    with pytest.raises(DataError, match="labelled both"):
        load_path(tmp_path / "m.csv", skip_bad_files=False)


def test_bad_file_is_named_or_skipped_and_counted(tmp_path: Path) -> None:
    for i in range(2):
        tone(tmp_path / "low" / f"{i}.wav", "low")
        tone(tmp_path / "high" / f"{i}.wav", "high")
    (tmp_path / "high" / "corrupt.wav").write_bytes(b"RIFF....garbage")
    (tmp_path / "low" / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError, match="corrupt.wav|empty.wav"):
        load_path(tmp_path, skip_bad_files=False)
    data = load_path(tmp_path, skip_bad_files=True)
    assert len(data.examples) == 4 and len(data.skipped) == 2


def test_a_symlink_in_a_class_folder_is_followed_once_and_never_relabels(tmp_path: Path) -> None:
    """``low/up -> ..`` multiplied the clips into every split; ``low/more -> ../high`` used high clips as low too."""
    for i in range(2):
        tone(tmp_path / "low" / f"{i}.wav", "low")
        tone(tmp_path / "high" / f"{i}.wav", "high")
    os.symlink("..", tmp_path / "low" / "up")
    data = load_path(tmp_path, skip_bad_files=False)
    assert len(data.examples) == 4 and "1 symlink loop(s) not followed: low/up" in data.description
    os.symlink("../high", tmp_path / "low" / "more")
    with pytest.raises(DataError, match=r"one file is labelled both 'high' \(as high/0.wav\) and 'low' \(as low/more/0.wav\)"):
        load_path(tmp_path, skip_bad_files=False)


def test_nan_or_infinite_samples_make_a_bad_file_named_or_skipped(tmp_path: Path) -> None:
    """One NaN sample made every trial's loss NaN: 0 trials complete, exit code 0, no file named."""
    for i in range(2):
        tone(tmp_path / "low" / f"{i}.wav", "low")
        tone(tmp_path / "high" / f"{i}.wav", "high")
    for name, bad in (("nan.wav", np.nan), ("inf.flac", np.inf)):
        wave = np.full(4000, 0.1, dtype=np.float32)
        wave[123] = bad
        sf.write(str(tmp_path / "high" / name), wave, 8000, subtype="FLOAT" if name.endswith("wav") else "PCM_16")
    with pytest.raises(DataError, match=r"audio file .*high/nan.wav holds NaN or infinite samples"):
        load_path(tmp_path, skip_bad_files=False)
    data = load_path(tmp_path, skip_bad_files=True)
    assert data.skipped == [f"{tmp_path / 'high' / 'nan.wav'}: holds NaN or infinite samples"]
    assert len(data.examples) == 5  # FLAC stores integers: its infinity was clipped when written, so it is fine


def test_dangling_links_odd_folders_and_other_files_are_counted(tmp_path: Path) -> None:
    for i in range(2):
        tone(tmp_path / "low" / f"{i}.wav", "low")
        tone(tmp_path / "high" / f"{i}.wav", "high")
    os.symlink("gone.wav", tmp_path / "low" / "x.wav")
    (tmp_path / "high" / "y.wav").mkdir()
    (tmp_path / "high" / "notes.txt").write_text("recorded on a Tuesday")
    description = load_path(tmp_path, skip_bad_files=False).description
    assert "1 dangling symlink(s) ignored: low/x.wav" in description
    assert "1 folder(s) named like data files ignored: high/y.wav" in description
    assert "1 non-audio file(s) ignored: high/notes.txt" in description


def test_a_repeated_manifest_column_is_refused(tmp_path: Path) -> None:
    tone(tmp_path / "a.wav", "low")
    (tmp_path / "m.csv").write_text("path,label,label\na.wav,low,high\n")
    with pytest.raises(DataError, match=r"m.csv: the header names the column 'label' 2 times \(columns 2, 3\)"):
        load_path(tmp_path / "m.csv", skip_bad_files=False)


def test_a_separate_test_folder_is_read_and_replaces_the_held_out_speakers(tmp_path: Path) -> None:
    """``--test other_clips/`` was never read: an FSDD speaker was held out instead."""
    fsdd_folder(tmp_path / "fsdd", speakers=("george", "theo", "jackson", "lucas"))
    for i in range(2):
        tone(tmp_path / "other" / "low" / f"{i}.wav", "low")
        tone(tmp_path / "other" / "high" / f"{i}.wav", "high")
    for path in (None, tmp_path / "fsdd"):
        data = SpeechPlugin().load_data(DataRequest(path=path, data_home=tmp_path, test_path=tmp_path / "other"))
        assert sorted(Path(e.item).relative_to(tmp_path).as_posix() for e in data.test or []) == [
            "other/high/0.wav", "other/high/1.wav", "other/low/0.wav", "other/low/1.wav"]
        assert {e.group for e in data.examples} == {"george", "theo", "jackson", "lucas"}
        assert data.description.endswith(f"; test: 4 clips from class folders in {tmp_path / 'other'}")


def test_no_audio_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no audio found"):
        load_path(tmp_path, skip_bad_files=False)


def test_demo_uses_fsdd_from_the_data_home_with_two_speakers_held_out(tmp_path: Path) -> None:
    fsdd_folder(tmp_path / "fsdd", speakers=("george", "theo", "jackson", "lucas"))
    data = SpeechPlugin().load_data(DataRequest(path=None, data_home=tmp_path))
    assert {e.group for e in data.test or []} == {"george", "theo"}
    assert {e.group for e in data.examples} == {"jackson", "lucas"}
    assert "Free Spoken Digit" in data.description


def test_demo_synthesises_digits_when_fsdd_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from automl_tl_speech import synth

    if not synth.available():
        pytest.skip("eSpeak NG is not installed")
    monkeypatch.setenv("AUTOML_TL_CACHE", str(tmp_path / "cache"))
    data = SpeechPlugin().load_data(DataRequest(path=None, data_home=tmp_path / "empty", options=SpeechOptions(synth_per_class=2)))
    assert "eSpeak" in data.description
    assert len({e.label for e in data.examples}) == 10
    assert len({e.group for e in data.examples}) >= 2
