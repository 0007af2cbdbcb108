"""bench/adaptation.py's per-group table and bench/datasets.py's speech sets (issues #19, #24)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from automl_tl.contract import Example


@pytest.fixture
def bench_adaptation(bench_module) -> ModuleType:
    return bench_module("adaptation")


@pytest.fixture
def bench_datasets(bench_module) -> ModuleType:
    return bench_module("datasets")


def test_group_scores_count_each_groups_right_answers(bench_adaptation) -> None:
    examples = [Example("a", "1", "theo"), Example("b", "2", "theo"), Example("c", "1", "george"), Example("d", "3")]
    assert bench_adaptation.group_scores(examples, ["1", "1", "1", "3"]) == {"(none)": (1, 1), "george": (1, 1), "theo": (1, 2)}
    with pytest.raises(ValueError):  # a prediction missing is an error, not a shorter table
        bench_adaptation.group_scores(examples, ["1"])


def test_the_chosen_models_predictions_reproduce_its_target_test_score_group_by_group(
    bench_adaptation, toy, run_cli, write_recipe, fast_recipe, domains, tmp_path,
) -> None:
    code, out, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "--data", domains["source"],
                             "--target", domains["target"], "--target-test", domains["target_test"], "-n", "2", "--run-dir", "run")
    assert code == 0, err + out
    tested = bench_adaptation.tested(tmp_path / "run")
    target = json.loads((tmp_path / "run" / "test.json").read_text())["target"]
    rows = json.loads(domains["target_test"].read_text())
    assert len(tested.examples) == target["n"] == len(rows)  # the target test set, not the source's test split
    assert tested.accuracy == pytest.approx(tested.recorded) and tested.recorded == target["accuracy"]
    groups = {row["group"] for row in rows}
    assert set(tested.groups) == groups and sum(n for _, n in tested.groups.values()) == len(rows)
    assert tested.same_examples(tested)
    other = bench_adaptation.Tested(tested.examples[1:], {}, 0.0)
    assert not other.same_examples(tested)


def _fake_fsdd(home: Path) -> Path:
    """A data home whose fsdd/recordings has digits 0-2 by four speakers, two of them the test speakers."""
    import soundfile as sf

    recordings = home / "fsdd" / "recordings"
    recordings.mkdir(parents=True)
    tone = (0.3 * np.sin(np.linspace(0, 400 * np.pi, 2400))).astype(np.float32)  # 0.3 s at 8 kHz
    for speaker in ("george", "theo", "jackson", "lucas"):
        for digit in range(3):
            sf.write(recordings / f"{digit}_{speaker}_0.wav", tone, 8000, subtype="PCM_16")
    return home / "fsdd"


def test_the_speech_pair_has_a_synthetic_source_and_fsdds_speakers_split_into_target_and_target_test(
    bench_datasets, tmp_path,
) -> None:
    synth = pytest.importorskip("automl_tl_speech.synth")
    if not synth.available():
        pytest.skip("eSpeak NG not available (pip install espeakng-loader, or apt install espeak-ng)")
    import soundfile as sf
    from automl_tl_speech.data import load_path

    fsdd = _fake_fsdd(tmp_path / "home")
    pair = tmp_path / "out" / "pair"
    pair.parent.mkdir()
    bench_datasets.speech_pair(pair, fsdd, per_class=2, seed=0)
    assert sorted(p.name for p in pair.iterdir()) == ["source", "target", "target-test"]
    assert list(pair.parent.iterdir()) == [pair], "the staging folder was left behind"

    source = load_path(pair / "source", skip_bad_files=False).examples
    voices = {synth.speaker_id(v) for v in synth.VOICES}
    assert sorted(e.label for e in source) == sorted([str(d) for d in range(10)] * 2)
    assert {e.group for e in source} <= voices and len({e.group for e in source}) > 1
    assert {sf.info(str(e.item)).samplerate for e in source} == {bench_datasets.SPEECH_PAIR_RATE}

    for part, speakers in (("target", {"jackson", "lucas"}), ("target-test", {"george", "theo"})):
        examples = load_path(pair / part, skip_bad_files=False).examples
        assert {e.group for e in examples} == speakers
        assert sorted(e.label for e in examples) == ["0", "0", "1", "1", "2", "2"]
        for example in examples:  # links into FSDD, each under its own file name: the label and speaker come along
            link = Path(example.item)
            assert link.is_symlink() and link.resolve() == (fsdd / "recordings" / link.name).resolve()


def test_speech_voices_hold_a_quarter_of_the_voices_out_for_test(bench_datasets, tmp_path) -> None:
    synth = pytest.importorskip("automl_tl_speech.synth")
    if not synth.available():
        pytest.skip("eSpeak NG not available (pip install espeakng-loader, or apt install espeak-ng)")
    from automl_tl_speech.data import load_path

    folder = tmp_path / "out" / "voices"
    folder.parent.mkdir()
    bench_datasets.speech_voices(folder, per_class=2, seed=0)
    assert sorted(p.name for p in folder.iterdir()) == ["all", "test", "train"]
    assert list(folder.parent.iterdir()) == [folder], "the staging folder was left behind"
    train, test = (load_path(folder / part, skip_bad_files=False).examples for part in ("train", "test"))
    voices = {e.group for e in train} | {e.group for e in test}
    assert not {e.group for e in train} & {e.group for e in test}, "a voice in both: test would not be unseen voices"
    assert len({e.group for e in test}) == max(1, len(voices) // 4)
    assert sorted(e.label for e in train + test) == sorted([str(d) for d in range(10)] * 2)
    for example in train + test:  # relative links into all/: the set can be moved as one folder
        link = Path(example.item)
        assert link.is_symlink() and link.resolve() == (folder / "all" / "recordings" / link.name).resolve()


def test_fsdd_speakers_are_the_classes_and_the_test_digits_are_words_no_training_clip_says(bench_datasets, tmp_path,
                                                                                          monkeypatch) -> None:
    from automl_tl_speech.data import load_path

    fsdd = _fake_fsdd(tmp_path / "home")
    monkeypatch.setattr(bench_datasets, "SPEAKER_TEST_DIGITS", ("2",))
    folder = tmp_path / "speakers"
    bench_datasets.fsdd_speakers(folder, fsdd)
    assert sorted(p.name for p in folder.iterdir()) == ["test", "train", "train.csv"]
    for part, digits in (("train", {"0", "1"}), ("test", {"2"})):
        examples = load_path(folder / part, skip_bad_files=False).examples
        assert sorted(e.label for e in examples) == sorted(["george", "theo", "jackson", "lucas"] * len(digits))
        assert {Path(e.item).name.split("_")[0] for e in examples} == digits
        assert all(Path(e.item).resolve().parent == (fsdd / "recordings").resolve() for e in examples)
    manifest = load_path(folder / "train.csv", skip_bad_files=False).examples  # the training clips, grouped by the word said
    assert sorted((Path(e.item).resolve(), e.label) for e in manifest) == sorted(
        (Path(e.item).resolve(), e.label) for e in load_path(folder / "train", skip_bad_files=False).examples)
    assert all(e.group == Path(e.item).name.split("_")[0] for e in manifest) and {e.group for e in manifest} == {"0", "1"}


def test_an_existing_folder_that_is_no_speech_pair_is_refused_before_anything_is_made(bench_datasets, tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "pair").mkdir()
    (tmp_path / "pair" / "notes.txt").write_text("mine")
    monkeypatch.setattr(sys, "argv", ["datasets.py", "speech-pair", "--per-class", "1", "--out", str(tmp_path / "pair")])
    with pytest.raises(SystemExit) as exit_info:
        bench_datasets.main()
    assert exit_info.value.code == 2
    assert "holds no finished speech-pair set" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "pair").iterdir()) == ["notes.txt"]
