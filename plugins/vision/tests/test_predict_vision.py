"""A tiny ViT used after its search: ONNX bundle, a folder of images with one broken file, a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")


def test_search_export_predict(tmp_path: Path, run_cli, tiny_vit: Path, image_folder: Path, class_folders) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('[search]\npruner = "none"\n[space]\nepochs = 1\nbatch_size = 8\nstrategy = "partial"\n'
                      '[options]\nresolution = 32\n')
    code, out, err = run_cli("search", "--modality", "vision", "--data", str(image_folder), "--backbone", str(tiny_vit),
                             "--n-trials", "1", "--recipe", str(recipe), "--run-dir", "run")
    assert code == 0, err + out
    code, out, err = run_cli("export", "run", "--out", "bundle")
    assert code == 0, err + out
    assert float(out.split("max |Δ probability| ")[1].split()[0]) <= 1e-4
    card = (tmp_path / "bundle" / "README.md").read_text()
    assert "pipeline_tag: image-classification" in card

    new = class_folders(tmp_path / "new", per_class=2)
    (new / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows = {}
    for model in ("run", "bundle"):
        code, out, err = run_cli("predict", model, str(new))
        assert code == 1 and "Traceback" not in out + err
        rows[model] = [json.loads(line) for line in out.splitlines()]
        assert len(rows[model]) == 7 and sum(1 for r in rows[model] if r["error"]) == 1
        assert next(r for r in rows[model] if r["error"])["input"].endswith("broken.png")
    for a, b in zip(rows["run"], rows["bundle"], strict=True):
        assert a["label"] == b["label"] and (a["score"] is None or abs(a["score"] - b["score"]) <= 1e-4)

    manifest = tmp_path / "todo.csv"
    manifest.write_text("path\n" + "\n".join(str(p) for p in sorted((new / "green").glob("*.png"))) + "\n")
    code, out, err = run_cli("predict", "bundle", str(manifest), "--format", "csv")
    assert code == 0, err
    assert out.splitlines()[0] == "input,label,score,error" and len(out.splitlines()) == 3
