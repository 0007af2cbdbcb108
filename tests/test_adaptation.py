"""Domain adaptation: the target's data (labels dropped), every method, the validators, honest selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from automl_tl.domains import NO_SHIFT_AUC, SHIFT, UNLABELLED, Candidate, guard
from automl_tl.search.adaptation import ADAPTERS, DomainShift, coral
from automl_tl.search.compute import Compute
from automl_tl.search.features import FeatureStore, pad_hidden
from automl_tl.search.space import TrialParams
from automl_tl.search.train import input_mode, train_trial
from automl_tl.search.validators import UNSUPERVISED, bnm, domain_auc, domain_probabilities, im, importance_weighted, snd
from automl_tl.vocabulary import DIMENSIONS
from automl_tl.vocabulary.adaptations import ADAPTATIONS, VALIDATORS


@pytest.fixture
def recipe(fast_recipe: str) -> str:
    """The core suite's fast toy search (conftest), as a recipe that names its modality."""
    return 'modality = "toy"\n' + fast_recipe


def test_a_search_with_a_target_adapts_chooses_without_its_labels_and_tests_on_it_once(toy, run_cli, write_recipe, recipe, domains, tmp_path):
    code, out, err = run_cli("search", "-r", write_recipe(recipe), "--data", domains["source"], "--target", domains["target"],
                             "--target-test", domains["target_test"], "-n", "6", "--run-dir", tmp_path / "run")
    assert code == 0, err + out
    assert "labels dropped before training and selection" in out
    assert "target test (labelled, evaluation only)" in " ".join(out.split())  # the test line wraps in the terminal
    assert "chosen: trial" in out and "the im validator on the unlabelled target" in out
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["target"]["n"] == 36
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "run").glob("trials/*/record.json"))]
    assert records[0]["params"]["adaptation"] == "none"  # the source-only baseline runs first
    assert {r["params"]["adaptation"] for r in records} > {"none"}
    header = next(line for line in out.splitlines() if "source val" in line and "state" in line)
    assert "adaptation" in header and "target test (eval only)" in header


def test_a_target_the_frozen_features_cannot_tell_from_the_source_gets_the_search_without_a_target(toy, run_cli, write_recipe, recipe, domains, tmp_path):
    """A copy of the source has no shift to adapt to: the shift check says so, and the search is the one
    without a target (the same trials and choice), its records and report saying why."""
    written = write_recipe(recipe)
    code, out, err = run_cli("search", "-r", written, "--data", domains["source"], "--target", domains["source"],
                             "-n", "4", "--run-dir", tmp_path / "copy")
    assert code == 0, err + out
    said = " ".join(out.split())
    assert "no shift to adapt to" in said and "trials chosen by macro_f1" in said and "among trials within" not in said
    recorded = json.loads((tmp_path / "copy" / "config.json").read_text())
    assert recorded[SHIFT]["auc"] < NO_SHIFT_AUC and recorded["config"]["search"]["validator"] == "source"
    code, out, err = run_cli("search", "-r", written, "--data", domains["source"], "-n", "4", "--run-dir", tmp_path / "alone")
    assert code == 0, err + out
    searched = [[(r["params"], r["score"]) for r in map(json.loads, (p.read_text() for p in sorted((tmp_path / run).glob("trials/*/record.json"))))]
                for run in ("copy", "alone")]
    assert searched[0] == searched[1] and len(searched[0]) == 4
    for run, target in (("copy", ("--target", domains["source"])), ("alone", ())):  # resumed, each reads its first start's check
        code, out, err = run_cli("search", "-r", written, "--data", domains["source"], *target, "-n", "5", "--run-dir", tmp_path / run)
        assert code == 0, err + out
    resumed = [[r["params"] for r in map(json.loads, (p.read_text() for p in sorted((tmp_path / run).glob("trials/*/record.json"))))]
               for run in ("copy", "alone")]
    assert resumed[0] == resumed[1] and len(resumed[0]) == 5
    tests = [json.loads((tmp_path / run / "test.json").read_text()) for run in ("copy", "alone")]
    assert (tests[0]["trial"], tests[0]["accuracy"]) == (tests[1]["trial"], tests[1]["accuracy"])
    code, out, err = run_cli("report", tmp_path / "copy", "--out", tmp_path / "report.md")
    assert code == 0, err
    assert "no shift to adapt to" in (tmp_path / "report.md").read_text()
    code, out, err = run_cli("leaderboard", tmp_path / "copy")
    assert code == 0, err
    assert "no shift to adapt to" in " ".join(out.split())


def test_the_shift_check_is_measured_once_and_a_resumed_run_keeps_it(toy, run_cli, write_recipe, recipe, domains, tmp_path, monkeypatch):
    """The decision lives in the study: a resumed run (or a helper) reads it rather than measuring again."""
    import automl_tl.search.engine as engine

    written = write_recipe(recipe)
    args = ("search", "-r", written, "--data", domains["source"], "--target", domains["target"], "--run-dir", tmp_path / "run")
    code, out, err = run_cli(*args, "-n", "2")
    assert code == 0, err + out
    assert "trials chosen by im" in out and "AUC" in out
    monkeypatch.setattr(engine, "domain_shift", lambda store: pytest.fail("measured again"))
    code, out, err = run_cli(*args, "-n", "3")
    assert code == 0, err + out
    assert "trials chosen by im" in out


def test_a_target_too_small_for_the_shift_check_is_adapted_to_as_asked(toy, run_cli, write_recipe, recipe, domains, toy_rows, tmp_path):
    tiny = toy_rows(tmp_path / "tiny.json", seed=1, shift=1.0, n_per_class=1)
    code, out, err = run_cli("search", "-r", write_recipe(recipe), "--data", domains["source"], "--target", tiny,
                             "-n", "4", "--run-dir", tmp_path / "run")
    assert code == 0, err + out
    said = " ".join(out.split())
    assert "too few examples to check for a shift" in said and "trials chosen by im" in said
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "run").glob("trials/*/record.json"))]
    assert {r["params"]["adaptation"] for r in records} > {"none"}


def test_a_model_adapted_by_statistics_predicts_and_exports_for_the_target(toy, run_cli, write_recipe, recipe, domains, tmp_path):
    """The model package maps target features as the search's target evaluation did: same accuracy, ONNX included."""
    written = write_recipe(recipe.replace('strategy = ["feature_extraction", "partial"]', 'strategy = "feature_extraction"')
                          + 'adaptation = ["statistics"]\n')
    code, out, err = run_cli("search", "-r", written, "--data", domains["source"], "--target", domains["target"],
                             "--target-test", domains["target_test"], "-n", "2", "--run-dir", tmp_path / "run")
    assert code == 0, err + out
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    record = json.loads((tmp_path / "run" / "trials" / f"{test['trial']:04d}" / "record.json").read_text())
    assert record["params"]["adaptation"] == "statistics"
    rows = json.loads(domains["target_test"].read_text())
    (tmp_path / "inputs").mkdir()
    for i, row in enumerate(rows):
        (tmp_path / "inputs" / f"{i:03d}.json").write_text(json.dumps({"x": row["x"]}))
    code, out, err = run_cli("predict", tmp_path / "run", tmp_path / "inputs")
    assert code == 0, err
    labels = [json.loads(line)["label"] for line in out.splitlines()]
    assert sum(p == r["label"] for p, r in zip(labels, rows, strict=True)) / len(rows) == pytest.approx(test["target"]["accuracy"])
    code, out, err = run_cli("export", tmp_path / "run", "--out", tmp_path / "bundle", "--format", "onnx")
    assert code == 0, err


def _outcome(run: Path) -> list:
    """What a search decided, without its timings."""
    records = []
    for path in sorted(run.glob("trials/*/record.json")):
        record = json.loads(path.read_text())
        attrs = record["user_attrs"]
        records.append([record["params"], record["score"], attrs.get("scores"), attrs.get("target_test"),
                        [{k: v for k, v in e.items() if k != "seconds"} for e in attrs.get("history", [])]])
    return records + [json.loads((run / "test.json").read_text())]


def test_the_targets_labels_are_unused_shuffled_they_give_the_identical_search(toy, run_cli, write_recipe, recipe, domains, toy_rows, tmp_path):
    shuffled = toy_rows(tmp_path / "shuffled.json", seed=1, shift=1.0, shuffle_labels=True)
    assert json.loads(shuffled.read_text()) != json.loads(domains["target"].read_text())
    written = write_recipe(recipe)
    runs = []
    for name, target in (("a", domains["target"]), ("b", shuffled)):
        code, out, err = run_cli("search", "-r", written, "--data", domains["source"], "--target", target,
                                 "--target-test", domains["target_test"], "-n", "5", "--run-dir", tmp_path / name)
        assert code == 0, err + out
        runs.append(_outcome(tmp_path / name))
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda d: d / "missing.json", ("target path",)),
        (lambda d: (d / "empty.json").write_text("[]") and d / "empty.json", ("holds no examples",)),
        (lambda d: (d / "other.json").write_text(json.dumps([{"x": [[0.0] * 8], "label": "zebra"}] * 3)) and d / "other.json",
         ("target classes 'zebra'", "not among the source's classes")),
        (lambda d: (d / "clip.wav").write_bytes(b"RIFF\x00\x01\xff\xfeWAVEfmt ") and d / "clip.wav", ("target", "cannot read")),
        (lambda d: (d / "images").mkdir() or d / "images", ("target", "cannot read")),
    ],
    ids=["missing", "empty", "other-classes", "another-modality-file", "a-folder"],
)
def test_an_unusable_target_is_one_line_and_exit_2(toy, run_cli, write_recipe, recipe, domains, tmp_path, assert_user_error, make, fragments):
    code, out, err = run_cli("search", "-r", write_recipe(recipe), "--data", domains["source"], "--target", make(tmp_path), "-n", "1")
    assert_user_error(code, out, err, *fragments)


@pytest.mark.parametrize(
    ("args", "space", "fragment"),
    [
        (("--target-labelled", "2"), "", "need a target"),
        ((), 'adaptation = ["coral"]', "needs a target domain"),
        (("--target-labelled", "20"), "", "needs more than 20 target examples of each class"),
    ],
)
def test_adaptation_settings_without_what_they_need_are_refused(toy, run_cli, write_recipe, recipe, domains, assert_user_error, args, space, fragment):
    target = ("--target", domains["target"]) if args and args[-1] == "20" else ()
    code, out, err = run_cli("search", "-r", write_recipe(recipe + space), "--data", domains["source"], *target, *args, "-n", "1")
    assert_user_error(code, out, err, fragment)


def test_labelled_target_examples_choose_and_stay_out_of_the_unlabelled_target(toy, run_cli, write_recipe, recipe, domains, tmp_path):
    code, out, err = run_cli("search", "-r", write_recipe(recipe), "--data", domains["source"], "--target", domains["target"],
                             "--target-labelled", "3", "-n", "2", "--run-dir", tmp_path / "run")
    assert code == 0, err + out
    assert "chosen by target_macro_f1" in out
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "run").glob("trials/*/record.json"))]
    for record in records:
        assert record["score"] == record["user_attrs"]["scores"]["target_macro_f1"]


def store_with_target(backbone, toy_modality, labelled: bool = False) -> FeatureStore:
    source = toy_modality.synthetic(n_per_class=8, seed=0, noise=0.5)
    target = [e.__class__(e.item, UNLABELLED, e.group) for e in toy_modality.synthetic(n_per_class=6, seed=1, noise=0.5, shift=1.0)]
    splits = {"train": source[::2], "validation": source[1::2], "target": target}
    if labelled:
        splits["target_validation"] = toy_modality.synthetic(n_per_class=2, seed=2, noise=0.5, shift=1.0)
    return FeatureStore(backbone, splits, list(toy_modality.CLASSES))


STRATEGY_CASES = [
    dict(strategy="feature_extraction", freeze_depth=3, backbone_lr=None, pooling="mean"),
    dict(strategy="partial", freeze_depth=2, pooling="mean"),
    dict(strategy="full", freeze_depth=0, pooling="default"),
]


@pytest.mark.parametrize("method", list(ADAPTATIONS))
@pytest.mark.parametrize("case", STRATEGY_CASES, ids=["pooled", "prefix", "live"])
def test_every_method_trains_with_every_input_path_and_records_every_validator(toy_modules, method, case):
    toy_modality, toy_network = toy_modules
    store = store_with_target(toy_network.build(), toy_modality, labelled=True)
    tuned = {name: DIMENSIONS[name].default[0] for name in ADAPTATIONS[method].dimensions}
    params = TrialParams(backbone="toy-net", head="linear", head_lr=3e-3, weight_decay=1e-4, epochs=2, batch_size=8,
                         adaptation=method, **{**tuned, "adaptation_weight": 1.0} if tuned else {}, **case)
    outcome = train_trial(params, store, 3, "snd", seed=0)
    assert input_mode(params) in ("pooled", "prefix", "live")
    for name in [*UNSUPERVISED, "dev", "iwcv", "macro_f1", "target_accuracy", "target_macro_f1"]:
        assert name in outcome.scores and outcome.scores[name] == outcome.scores[name], name
    assert any(key.startswith("shift.") for key in outcome.state) == ADAPTATIONS[method].shifts_features


def test_target_batches_are_read_from_the_prefix_cache_outside_the_autocast_region(toy_modules, monkeypatch):
    """The cached prefix is fp16, and stacking it inside the bf16 autocast region fails ("Unexpected
    floating ScalarType in at::autocast::prioritize": every vision partial fine-tune with a target did)."""
    import automl_tl.search.train as train

    toy_modality, toy_network = toy_modules
    store = store_with_target(toy_network.build(), toy_modality)
    store.cached_depths = {2}
    read = []

    def outside_autocast(tensors, has_mask):
        read.append(torch.is_autocast_enabled("cpu"))
        return pad_hidden(tensors, has_mask)

    monkeypatch.setattr(train, "pad_hidden", outside_autocast)
    params = TrialParams(backbone="toy-net", head="linear", head_lr=3e-3, weight_decay=1e-4, epochs=2, batch_size=8,
                         adaptation="entropy", adaptation_weight=1.0, strategy="partial", freeze_depth=2, pooling="mean")
    assert input_mode(params) == "prefix"
    train_trial(params, store, 3, "accuracy", seed=0, compute=Compute(cached=True, bf16=True))
    assert read and not any(read)


def test_each_method_that_trains_on_target_batches_has_its_code_and_its_dimensions_exist():
    assert set(ADAPTERS) == {name for name, a in ADAPTATIONS.items() if a.needs_target_batches}
    for adaptation in ADAPTATIONS.values():
        assert all(d in DIMENSIONS for d in adaptation.dimensions), adaptation.name
    assert list(ADAPTATIONS)[0] == "none" and set(VALIDATORS) == {"source", "dev", "iwcv", *UNSUPERVISED}


def test_a_search_without_a_target_samples_what_it_sampled_before_adaptation_existed(monkeypatch):
    import optuna

    from automl_tl import vocabulary
    from automl_tl.search.space import SearchSpace
    from automl_tl.vocabulary import BackboneShape

    def draws() -> list[dict]:
        space = SearchSpace.resolve(backbones=["net"])
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=4), direction="maximize")
        out = []
        for i in range(8):
            trial = study.ask()
            params = space.sample(trial, {"net": BackboneShape(3, True, True)}).to_dict()
            study.tell(trial, float(i % 3))
            out.append({k: v for k, v in params.items() if k not in ("adaptation", "adaptation_weight", "pseudo_threshold")})
        return out

    now = draws()
    kept = {k: v for k, v in vocabulary.DIMENSIONS.items() if k not in ("adaptation", "adaptation_weight", "pseudo_threshold")}
    monkeypatch.setattr("automl_tl.search.space.DIMENSIONS", kept)
    monkeypatch.setattr("automl_tl.config.DIMENSIONS", kept)
    assert now == draws()


def test_the_validator_chooses_only_among_trials_within_the_source_margin_of_the_best_source_validation():
    baseline = Candidate(0, value=0.50, adaptation="none", source=0.80)
    collapsed = Candidate(1, value=0.90, adaptation="entropy", source=0.60)
    kept = Candidate(2, value=0.70, adaptation="coral", source=0.79)
    assert guard([baseline, collapsed, kept], margin=0.02) == ([baseline, kept], pytest.approx(0.78))
    assert guard([baseline, collapsed], margin=0.02)[0] == [baseline]
    assert guard([baseline, collapsed], margin=None) == ([baseline, collapsed], None)
    confident = Candidate(3, value=0.95, adaptation="entropy", source=0.80)  # within the margin of the source-only trial...
    better = Candidate(4, value=0.60, adaptation="coral", source=0.90)  # ...but a method lifted source validation beyond it
    assert guard([baseline, confident, better], margin=0.02) == ([better], pytest.approx(0.88))
    assert guard([collapsed], margin=0.02) == ([collapsed], pytest.approx(0.58))  # the best is always eligible


def test_validators_prefer_confident_diverse_predictions_to_uniform_or_collapsed_ones():
    confident = torch.eye(4).repeat(5, 1) * 0.9 + 0.025
    uniform = torch.full((20, 4), 0.25)
    collapsed = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(20, 1)
    for validator in (im, bnm):
        assert validator(confident) > validator(uniform) and validator(confident) > validator(collapsed), validator
    assert snd(confident) != snd(uniform)


def test_dev_and_iwcv_weigh_the_source_examples_that_look_like_the_target():
    """Source validation: right on the examples around (-2, 0), wrong on those around (+2, 0), so 0.5 accurate."""
    torch.manual_seed(0)
    left, right = torch.randn(100, 2) * 0.5 + torch.tensor([-2.0, 0.0]), torch.randn(100, 2) * 0.5 + torch.tensor([2.0, 0.0])
    source, correct = torch.cat([left, right]), torch.cat([torch.ones(100), torch.zeros(100)]).bool()
    alike = torch.randn(300, 2) * 0.5 + torch.tensor([[-2.0, 0.0], [2.0, 0.0]]).repeat(150, 1)
    for name in ("dev", "iwcv"):
        assert abs(importance_weighted(source, correct, alike)[name] - 0.5) < 0.1, f"{name}: a target like the source, the source's accuracy"
        assert importance_weighted(source, correct, torch.randn(300, 2) * 0.5 + torch.tensor([-2.0, 0.0]))[name] > 0.8, name
        assert importance_weighted(source, correct, torch.randn(300, 2) * 0.5 + torch.tensor([2.0, 0.0]))[name] < 0.2, name
    lopsided = importance_weighted(source, correct, torch.randn(300, 2) * 0.1 + torch.tensor([2.0, 0.0]))
    assert 0.0 <= lopsided["iwcv"] <= 1.0, "self-normalised: an accuracy whatever the weights"


def test_the_domain_shift_maps_target_statistics_onto_the_source():
    torch.manual_seed(0)
    source, target = torch.randn(500, 4), torch.randn(500, 4) * 3 + 5
    shift = DomainShift(4)
    shift.observe(source, target)
    mapped = shift.to_source(target)
    assert torch.allclose(mapped.mean(0), source.mean(0), atol=1e-4)
    assert torch.allclose(mapped.std(0, unbiased=False), source.std(0, unbiased=False), atol=1e-3)
    assert float(coral(source, source)) == 0.0 and float(coral(source, target)) > 0.0


def test_the_domain_classifier_tells_a_shifted_target_from_the_source_and_not_a_copy_or_a_resample():
    from sklearn.metrics import roc_auc_score

    generator = torch.Generator().manual_seed(0)
    source = torch.randn(300, 16, generator=generator)
    resample = torch.randn(300, 16, generator=generator)
    shifted = resample + torch.tensor([3.0] + [0.0] * 15)  # the best possible AUC is Phi(3 / sqrt 2), 0.98
    assert domain_auc(source, shifted) > 0.95
    assert domain_auc(source, resample) < NO_SHIFT_AUC
    assert domain_auc(source, source.clone()) < NO_SHIFT_AUC
    chance = domain_probabilities(source, shifted)
    truth = [0] * len(source) + [1] * len(shifted)
    assert domain_auc(source, shifted) == pytest.approx(roc_auc_score(truth, chance.numpy()))
