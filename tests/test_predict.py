"""Using a trained model: `automl-tl predict`, `automl-tl export` and `automl_tl.load_model` on the toy plugin."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from automl_tl.vocabulary import TrialParams

TOY_PARAMS = dict(backbone="toy-net", head_lr=1e-2, weight_decay=0.0, epochs=1, batch_size=4, head="linear")


@pytest.fixture
def toy_run(toy, run_cli, write_recipe, fast_recipe, tmp_path) -> Path:
    code, _, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "-n", "3", "--run-dir", "run")
    assert code == 0, err
    return tmp_path / "run"


def write_inputs(folder: Path, examples) -> list[Path]:
    """Each example as the ``.json`` file the toy plugin predicts from."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, example in enumerate(examples):
        path = folder / f"{i:03d}.json"
        path.write_text(json.dumps({"x": example.item}))
        paths.append(path)
    return paths


def run_test_examples(toy_run: Path):
    """The run's own test split, as the search made it (same seed, same synthetic data)."""
    from automl_tl.config import RunConfig
    from automl_tl.registry import get_plugin
    from automl_tl.search.inputs import SearchRequest, load_data

    saved = json.loads((toy_run / "config.json").read_text())
    request = SearchRequest(config=RunConfig.model_validate(saved["config"]), data_home=toy_run)
    return load_data(get_plugin("toy"), request).splits.test


@pytest.mark.parametrize("strategy, freeze_depth, pooling", [
    ("feature_extraction", 3, "default"), ("feature_extraction", 3, "weighted"), ("partial", 1, "mean"),
    ("partial", 2, "weighted"), ("full", 0, "default"), ("feature_extraction", 3, "attention"), ("partial", 2, "attention"),
])
def test_the_whole_network_predicts_what_the_search_evaluated(backbone, examples, strategy, freeze_depth, pooling):
    """Network (stem, frozen prefix, tail) gives the classes the engine's cached test evaluation gives."""
    from automl_tl.model.network import Network
    from automl_tl.search.features import FeatureStore
    from automl_tl.search.model import Tail
    from automl_tl.search.train import input_mode, predict

    params = TrialParams(strategy=strategy, freeze_depth=freeze_depth, pooling=pooling, **TOY_PARAMS)
    torch.manual_seed(0)
    tail = Tail(backbone, params, 3)
    store = FeatureStore(backbone, {"test": examples}, ["a", "b", "c"])
    store.cached_depths = {freeze_depth} if freeze_depth > 0 else set()
    expected = predict(tail, store, "test", input_mode(params), params)
    network = Network(backbone, params, 3, [tail.state_dict()])
    pre = backbone.preprocessor
    with torch.inference_mode():
        probabilities = network(pre.collate([pre.transform(pre.load(e.item), False) for e in examples]))
    assert probabilities.shape == (len(examples), 3)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(len(examples)))
    assert probabilities.argmax(dim=1).tolist() == expected.tolist()


@pytest.mark.parametrize("strategy, freeze_depth, pooling", [("feature_extraction", 3, "mean"), ("partial", 1, "weighted"), ("full", 0, "default")])
def test_a_network_of_several_tails_averages_their_probabilities(backbone, examples, strategy, freeze_depth, pooling):
    """Fold models delivered together: one frozen prefix, each tail's class probabilities averaged."""
    from automl_tl.model.network import Network
    from automl_tl.search.model import Tail

    params = TrialParams(strategy=strategy, freeze_depth=freeze_depth, pooling=pooling, **TOY_PARAMS)
    torch.manual_seed(0)
    states = [Tail(backbone, params, 3).state_dict() for _ in range(3)]
    pre = backbone.preprocessor
    batch = pre.collate([pre.transform(pre.load(e.item), False) for e in examples])
    with torch.inference_mode():
        alone = [Network(backbone, params, 3, [state])(batch) for state in states]
        together = Network(backbone, params, 3, states)(batch)
    assert not torch.allclose(alone[0], alone[1])  # the tails differ, so the average is not any one of them
    torch.testing.assert_close(together, torch.stack(alone).mean(dim=0))


def test_predict_from_the_run_matches_test_json(toy_run, run_cli, tmp_path):
    """The run's final model, predicted file by file, scores exactly what test.json says."""
    import automl_tl

    test = run_test_examples(toy_run)
    paths = write_inputs(tmp_path / "test-inputs", test)
    recorded = json.loads((toy_run / "test.json").read_text())
    code, out, err = run_cli("predict", toy_run, tmp_path / "test-inputs", "--top-k", "2")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["input"] for row in rows] == [str(p) for p in paths]
    labels = [row["label"] for row in rows]
    assert np.mean([label == e.label for label, e in zip(labels, test)]) == pytest.approx(recorded["accuracy"])
    classes = ["a", "b", "c"]
    matrix = np.zeros((3, 3), dtype=int)
    for label, example in zip(labels, test):
        matrix[classes.index(example.label), classes.index(label)] += 1
    assert matrix.tolist() == recorded["confusion"]
    first = rows[0]
    assert first["score"] == first["top_k"][0]["score"] and len(first["top_k"]) == 2
    assert first["top_k"][0]["score"] >= first["top_k"][1]["score"]
    assert f"{len(paths)} of {len(paths)} input(s) predicted" in err

    model = automl_tl.load_model(toy_run)  # the Python API gives the same answers
    api = model.predict([e.item for e in test], top_k=3)
    assert [p[0]["label"] for p in api] == labels
    assert model.labels == classes and model.card["test"]["accuracy"] == recorded["accuracy"]


def test_a_refit_is_delivered_averaged_with_the_trials_own_model(toy_run):
    """The final model holds the refit and the chosen trial's own weights (kept as the best trial's), as two members."""
    test = json.loads((toy_run / "test.json").read_text())
    assert test["refit"] and "cross_validation" not in test
    assert test["members"] == 2 and test["ensemble"] == "refit and own"
    refit, own = torch.load(toy_run / "final" / "weights.pt", weights_only=True)
    kept = torch.load(toy_run / "trials" / f"{test['trial']:04d}" / "weights.pt", weights_only=True)
    assert own.keys() == kept.keys() and all(torch.equal(own[k], kept[k]) for k in kept)
    assert not all(torch.equal(refit[k], kept[k]) for k in kept)  # trained again, on more examples

def test_the_refit_counts_its_batches_to_the_end(toy, run_cli, write_recipe, fast_recipe, tmp_path):
    """A refit of a fine-tune can take minutes: its bar's total is the batches it trains, so it ends full."""
    code, out, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "-n", "3", "--run-dir", "run")
    assert code == 0, err
    counts = [line.split()[-1].split("/") for line in out.splitlines() if line.startswith("refit batches ")]
    assert counts and all(total == counts[0][1] for _, total in counts) and counts[-1][0] == counts[-1][1]
    done = [int(d) for d, _ in counts]
    assert done == sorted(set(done)) and len(done) <= 11  # a log gets about ten lines, however many batches


def test_test_json_scores_the_delivered_model_not_the_search_cache(toy, run_cli, write_recipe, tmp_path, monkeypatch):
    """The search ranks trials on its feature cache; test.json must be what the network itself predicts.

    The cache is made lossy on purpose (noise on every pooled feature), so a test evaluation that
    read it would disagree with `automl-tl predict` on the same examples.
    """
    from automl_tl.search.features import FeatureStore

    exact = FeatureStore.pooled

    def lossy(self, split):
        pooled, default = exact(self, split)
        noise = torch.Generator().manual_seed(0)
        return [p + 3 * torch.randn(p.shape, generator=noise) for p in pooled], default + 3 * torch.randn(default.shape, generator=noise)

    monkeypatch.setattr(FeatureStore, "pooled", lossy)
    recipe = 'modality = "toy"\n[search]\nn_trials = 2\nseed = 0\npruner = "none"\n' \
             '[space]\nstrategy = "feature_extraction"\nepochs = 2\nbatch_size = 16\n'
    code, _, err = run_cli("search", "-m", "toy", "-r", write_recipe(recipe), "--run-dir", "run")
    assert code == 0, err
    run = tmp_path / "run"
    test = run_test_examples(run)
    write_inputs(tmp_path / "test-inputs", test)
    code, out, err = run_cli("predict", run, tmp_path / "test-inputs")
    assert code == 0, err
    classes = ["a", "b", "c"]
    matrix = np.zeros((3, 3), dtype=int)
    for row, example in zip((json.loads(line) for line in out.splitlines()), test):
        matrix[classes.index(example.label), classes.index(row["label"])] += 1
    assert matrix.tolist() == json.loads((run / "test.json").read_text())["confusion"]


def test_export_then_predict_from_the_bundle(toy_run, run_cli, tmp_path, toy_modules):
    """run → ONNX bundle (checked ≤ 1e-4 against PyTorch) → the same predictions; also as TorchScript.

    The toy plugin has no `build_preprocessor` of its own, as a plugin written before the hook:
    its bundle is read through the default, which builds the backbone.
    """
    assert "build_preprocessor" not in vars(toy_modules[0].ToyPlugin)
    test = run_test_examples(toy_run)
    write_inputs(tmp_path / "inputs", test)
    code, from_run, err = run_cli("predict", toy_run, tmp_path / "inputs", "--probs")
    assert code == 0, err
    for format in ("onnx", "torch"):
        bundle = tmp_path / f"bundle-{format}"
        code, out, err = run_cli("export", toy_run, "--out", bundle, "--format", format)
        assert code == 0, err
        delta = float(out.split("max |Δ probability| ")[1].split()[0])
        assert delta <= 1e-4
        assert f"checked against PyTorch on {len(test)} of {len(test)} test example(s)" in out
        assert sorted(p.name for p in bundle.iterdir()) == sorted(
            ["README.md", "labels.json", "metrics.json", "preprocessing.json", "model.onnx" if format == "onnx" else "model.pt"])
        code, from_bundle, err = run_cli("predict", bundle, tmp_path / "inputs", "--probs")
        assert code == 0, err
        for a, b in zip(from_run.splitlines(), from_bundle.splitlines(), strict=True):
            a, b = json.loads(a), json.loads(b)
            assert a["label"] == b["label"]
            assert max(abs(a["probs"][c] - b["probs"][c]) for c in a["probs"]) <= 1e-4
    card = (tmp_path / "bundle-onnx" / "README.md").read_text()
    recorded = json.loads((toy_run / "test.json").read_text())
    assert card.startswith("---\nlibrary_name: automl-tl\n")
    assert f"value: {round(recorded['accuracy'], 4)}" in card and "## Limitations" in card and "automl-tl predict" in card
    metrics = json.loads((tmp_path / "bundle-onnx" / "metrics.json").read_text())
    assert metrics["test"]["confusion"] == recorded["confusion"] and metrics["data"]["split"]


def test_a_bundle_builds_only_the_preprocessor(toy_run, tmp_path, monkeypatch, toy_modules):
    """A plugin's `build_preprocessor` is all a bundle needs: its backbone is never built (a quick start)."""
    import automl_tl
    from automl_tl.model.export import export_bundle

    toy_modality, toy_network = toy_modules
    export_bundle(toy_run, tmp_path / "bundle")
    examples = [e.item for e in run_test_examples(toy_run)[:6]]
    expected = automl_tl.load_model(tmp_path / "bundle").predict(examples, top_k=3)
    built: list[str] = []

    def build_preprocessor(self, name: str, options) -> toy_network.Pre:
        built.append(name)
        return toy_network.Pre()

    def build_backbone(self, name: str, options):
        raise AssertionError("a bundle built its backbone")

    monkeypatch.setattr(toy_modality.ToyPlugin, "build_preprocessor", build_preprocessor, raising=False)
    monkeypatch.setattr(toy_modality.ToyPlugin, "build_backbone", build_backbone)
    model = automl_tl.load_model(tmp_path / "bundle")
    assert built == ["toy-net"]
    assert model.predict(examples, top_k=3) == expected


def test_a_preprocessor_other_than_the_bundles_is_refused(toy_run, tmp_path, monkeypatch, toy_modules):
    import automl_tl
    from automl_tl.errors import UserError
    from automl_tl.model.export import export_bundle

    toy_modality, toy_network = toy_modules
    export_bundle(toy_run, tmp_path / "bundle")
    renamed = toy_network.Pre()
    renamed.fingerprint = "toy-pre-v2"
    monkeypatch.setattr(toy_modality.ToyPlugin, "build_preprocessor", lambda self, name, options: renamed, raising=False)
    with pytest.raises(UserError, match="preprocesses 'toy-net' differently .*toy-pre-v2 instead of toy-pre-v1"):
        automl_tl.load_model(tmp_path / "bundle")


def test_export_checks_every_test_example_unless_capped(toy_run, run_cli, tmp_path, monkeypatch, assert_user_error):
    """An exported network wrong on one mid-length test example only: checking all of them finds it, a cap of 2 does not."""
    from automl_tl.model import export

    test = run_test_examples(toy_run)
    by_length = sorted(test, key=lambda e: len(e.item))
    wrong = torch.tensor(by_length[len(by_length) // 2].item, dtype=torch.float32)
    real_runner = export.onnx_runner

    def runner_wrong_on_one_example(path):
        run = real_runner(path)

        def perturbed(batch):
            p = run(batch)
            for row, (x, n) in enumerate(zip(batch["x"], batch["lengths"])):
                if int(n) == len(wrong) and torch.equal(x[: int(n)], wrong):
                    p[row] = p[row] + 1e-3
            return p

        return perturbed

    monkeypatch.setattr(export, "onnx_runner", runner_wrong_on_one_example)
    assert_user_error(*run_cli("export", toy_run, "--out", tmp_path / "all"), "differ from PyTorch's by up to 1.00e-03")
    assert not (tmp_path / "all").exists()
    code, out, err = run_cli("export", toy_run, "--out", tmp_path / "two", "--check-examples", "2")
    assert code == 0, err
    assert f"checked against PyTorch on 2 of {len(test)} test example(s)" in out


@pytest.mark.parametrize("limit, checked", [(None, 150), (10, 10), (2, 2), (1000, 150)])
def test_the_examples_an_export_is_checked_on(toy_run, toy_modules, monkeypatch, limit, checked):
    """All of a large test split by default; a cap keeps the shortest and the longest and spreads the rest."""
    import automl_tl
    from automl_tl.model.export import _check_examples

    model = automl_tl.load_model(toy_run)
    test = toy_modules[0].synthetic(n_per_class=50, seed=7)
    monkeypatch.setattr(model, "test_examples", lambda: test)
    raws, count = _check_examples(model, limit)
    lengths = [len(raw) for raw in raws]
    assert count == 150 and len(raws) == checked and lengths == sorted(lengths)
    assert (lengths[0], lengths[-1]) == (min(len(e.item) for e in test), max(len(e.item) for e in test))


def test_bad_inputs_are_rows_with_an_error_and_exit_1(toy_run, run_cli, tmp_path, examples):
    folder = tmp_path / "mixed"
    write_inputs(folder, examples[:4])
    (folder / "002.json").write_text("{not json")
    code, out, err = run_cli("predict", toy_run, folder, tmp_path / "missing.json", "--format", "csv")
    assert code == 1 and "Traceback" not in out + err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [bool(r["error"]) for r in rows] == [False, False, True, False, True]
    assert rows[2]["label"] == "" and "cannot read" in rows[2]["error"] and rows[4]["error"] == "no such file or folder"
    assert all(r["label"] in ("a", "b", "c") for i, r in enumerate(rows) if i not in (2, 4))
    assert len(err.strip().splitlines()) == 1 and "3 of 5 input(s) predicted; 2 failed" in err


def test_stdin_csv_out_and_probs(toy_run, tmp_path, examples):
    from typer.testing import CliRunner

    from automl_tl.cli.app import app

    paths = write_inputs(tmp_path / "in", examples[:3])
    args = ["predict", str(toy_run), "-", "--out", str(tmp_path / "rows.csv"), "--format", "csv", "--probs", "--top-k", "2"]
    result = CliRunner().invoke(app, args, input="\n".join(str(p) for p in paths) + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert list(rows[0]) == ["input", "label", "score", "label_2", "score_2", "prob_a", "prob_b", "prob_c", "error"]
    assert [r["input"] for r in rows] == [str(p) for p in paths]
    assert all(abs(sum(float(r[f"prob_{c}"]) for c in "abc") - 1) < 1e-5 for r in rows)


def test_no_inputs_is_a_user_error(toy_run, run_cli, tmp_path, assert_user_error):
    (tmp_path / "empty").mkdir()
    assert_user_error(*run_cli("predict", toy_run, tmp_path / "empty"), "no inputs to predict")


def test_broken_bundles_and_runs_are_one_line_exit_2(toy_run, run_cli, tmp_path, assert_user_error):
    bundle = tmp_path / "bundle"
    assert run_cli("export", toy_run, "--out", bundle)[0] == 0
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"x": [[0.0] * 8] * 3}))

    def broken(change) -> Path:
        copy = tmp_path / f"broken-{len(list(tmp_path.glob('broken-*')))}"
        shutil.copytree(bundle, copy)
        change(copy)
        return copy

    missing = broken(lambda b: (b / "labels.json").unlink())
    assert_user_error(*run_cli("predict", missing, inputs), "incomplete", "labels.json missing")
    corrupt = broken(lambda b: (b / "model.onnx").write_bytes(b"\x08\x07garbage"))
    assert_user_error(*run_cli("predict", corrupt, inputs), "not a usable ONNX model")

    def other_version(b: Path) -> None:
        pre = json.loads((b / "preprocessing.json").read_text())
        (b / "preprocessing.json").write_text(json.dumps({**pre, "plugin_version": "9.9"}))

    assert_user_error(*run_cli("predict", broken(other_version), inputs), "made with toy-modality 9.9", "0.1 is installed")

    def other_plugin(b: Path) -> None:
        pre = json.loads((b / "preprocessing.json").read_text())
        (b / "preprocessing.json").write_text(json.dumps({**pre, "plugin": "sensors"}))

    assert_user_error(*run_cli("predict", broken(other_plugin), inputs), "needs the 'sensors' modality plugin")
    assert_user_error(*run_cli("predict", tmp_path / "nowhere", inputs), "not a run directory or a model bundle")
    assert_user_error(*run_cli("export", toy_run, "--out", bundle), "already exists")
    assert_user_error(*run_cli("export", bundle, "--out", tmp_path / "again"), "already an exported bundle")


def test_leaderboard_and_report_say_where_the_model_is(toy_run, run_cli, tmp_path):
    code, out, err = run_cli("leaderboard", toy_run)
    assert code == 0, err
    assert f"Final model: {toy_run / 'final' / 'weights.pt'}" in out and f"automl-tl predict {toy_run} FILE..." in out
    code, _, err = run_cli("report", toy_run, "--out", tmp_path / "r.md")
    assert code == 0, err
    assert f"automl-tl predict {toy_run} FILE..." in (tmp_path / "r.md").read_text().replace("\\_", "_")  # Markdown escapes a _ in the path
