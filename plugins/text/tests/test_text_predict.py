"""A tiny text model used after its search: ONNX bundle, texts from stdin and from a CSV, blank texts."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from automl_tl.cli.app import app


def test_search_export_predict(run_cli, spam_csv: Path, tiny_bert: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('modality = "text"\n[search]\npruner = "none"\n[space]\nepochs = 1\nbatch_size = [16]\n'
                      'strategy = ["partial"]\n', encoding="utf-8")
    code, output = run_cli("search", "--modality", "text", "--data", str(spam_csv), "--backbone", str(tiny_bert),
                           "--n-trials", "1", "--recipe", str(recipe), "--study", "tiny")
    assert code == 0, output
    run = tmp_path / "runs" / "tiny"
    recorded = json.loads((run / "backbones.json").read_text())[str(tiny_bert)]
    assert recorded["options"]["max_length"] >= 8  # fitted to the training texts, kept for prediction

    code, output = run_cli("export", str(run), "--out", str(tmp_path / "bundle"))
    assert code == 0, output
    assert float(output.split("max |Δ probability| ")[1].split()[0]) <= 1e-4

    texts = ["win a free prize now call", "   ", "see you at lunch tomorrow", "a much longer message " * 20]
    runner = CliRunner()
    rows = {}
    for model in (run, tmp_path / "bundle"):
        result = runner.invoke(app, ["predict", str(model), "-", "--top-k", "2"], input="\n".join(texts) + "\n")
        assert result.exit_code == 1, result.output  # the blank line is a failed row, the rest are predicted
        rows[model] = [json.loads(line) for line in result.stdout.splitlines()]
        assert [r["input"] for r in rows[model]] == texts
        assert rows[model][1]["error"] and rows[model][1]["label"] is None
        assert "3 of 4 input(s) predicted; 1 failed" in result.stderr and "Traceback" not in result.output
    for a, b in zip(*rows.values(), strict=True):
        assert a["label"] == b["label"] and (a["score"] is None or abs(a["score"] - b["score"]) <= 1e-4)

    code, output = run_cli("predict", str(tmp_path / "bundle"), str(spam_csv))  # a CSV in the training format
    assert code == 0, output
    assert sum(1 for line in output.splitlines() if line.startswith("{")) == 60
