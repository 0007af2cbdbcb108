"""A tiny wav2vec2 used after its search: ONNX bundle with dynamic lengths, a folder with one broken clip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from automl_tl.cli.app import app

from speech_fixtures import fsdd_folder, tone
from test_backbones import tiny_wav2vec2


def test_search_export_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_wav2vec2(tmp_path / "w2v")
    data = fsdd_folder(tmp_path / "data", speakers=("ann", "bob", "cat", "dan", "eve"))
    recipe = tmp_path / "r.toml"
    recipe.write_text('[search]\npruner = "none"\n[space]\nepochs = 1\nstrategy = ["partial"]\nbatch_size = 16\n')
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    code, out, err = run("search", "--modality", "speech", "--data", str(data), "--backbone", str(model),
                         "--recipe", str(recipe), "--n-trials", "1", "--split-by", "group", "--run-dir", "run")
    assert code == 0, out + err
    code, out, err = run("export", "run", "--out", "bundle")
    assert code == 0, out + err
    assert float(out.split("max |Δ probability| ")[1].split()[0]) <= 1e-4  # clips of 0.3-0.4 s: lengths vary

    clips = tmp_path / "clips"
    for i, label in enumerate(("low", "high", "low")):
        tone(clips / "day1" / f"{i}.wav", label, seconds=0.25 + 0.2 * i, seed=50 + i)
    (clips / "day1" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (clips / "notes.txt").write_text("not audio: not listed")
    rows = {}
    for source in ("run", "bundle"):
        code, out, err = run("predict", source, str(clips), "--probs")
        assert code == 1 and "Traceback" not in out + err
        rows[source] = [json.loads(line) for line in out.splitlines()]
        assert [Path(r["input"]).name for r in rows[source]] == ["0.wav", "1.wav", "2.wav", "broken.wav"]
        assert [bool(r["error"]) for r in rows[source]] == [False, False, False, True]
        assert "cannot decode" in rows[source][3]["error"]
    for a, b in zip(rows["run"], rows["bundle"], strict=True):
        assert a["label"] == b["label"]
        assert a["error"] or max(abs(a["probs"][c] - b["probs"][c]) for c in a["probs"]) <= 1e-4
