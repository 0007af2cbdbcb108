"""The on-disk feature cache: equal to fresh features, keyed by all that changes them, reused on resume."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
import torch

from automl_tl.backbone import Backbone
from automl_tl.contract import Example
from automl_tl.search.cache import DiskCache
from automl_tl.search.features import FeatureStore

FP16 = {"atol": 2e-2, "rtol": 1e-2}


def store(backbone: Backbone, examples: list[Example], disk: DiskCache | None) -> FeatureStore:
    half = len(examples) // 2
    made = FeatureStore(backbone, {"train": examples[:half], "validation": examples[half:]}, ["a", "b", "c"], batch_size=4, disk=disk)
    made.cached_depths = {1, 2}
    return made


def test_disk_round_trip_keeps_shapes_and_values(tmp_path):
    disk = DiskCache(tmp_path / "cache")
    arrays = {"a": np.arange(12, dtype=np.float16).reshape(3, 4), "b": np.array([0, 2, 5])}
    assert disk.save("k", arrays)
    loaded = disk.load("k")
    assert loaded is not None
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)
    assert disk.load("other") is None


@pytest.mark.parametrize("damage", ["truncate", "manifest", "missing"])
def test_a_damaged_entry_is_detected_removed_and_rebuilt(tmp_path, backbone, examples, damage):
    disk = DiskCache(tmp_path / "cache")
    first = store(backbone, examples, disk)
    expected = first.pooled("train")[1].clone()
    entry = disk.root / first._key("train", "pooled")
    target = entry / "default.npy"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-7])
    elif damage == "manifest":
        (entry / "manifest.json").write_text("{not json")
    else:
        target.unlink()

    again = store(backbone, examples, disk)
    torch.testing.assert_close(again.pooled("train")[1], expected)
    assert again.passes == 1  # recomputed, not trusted
    assert disk.load(first._key("train", "pooled")) is not None  # and written back whole


def test_cached_features_equal_fresh_ones(tmp_path, backbone, examples):
    fresh = store(backbone, examples, None)
    cached = store(backbone, examples, DiskCache(tmp_path / "cache"))
    cached.pooled("train")
    cached.pooled("validation")
    reread = store(backbone, examples, DiskCache(tmp_path / "cache"))
    for split in ("train", "validation"):
        blocks, default = reread.pooled(split)
        fresh_blocks, fresh_default = fresh.pooled(split)
        torch.testing.assert_close(default, fresh_default)
        for got, want in zip(blocks, fresh_blocks, strict=True):
            torch.testing.assert_close(got, want)
        for depth in (1, 2):
            for got, want in zip(reread.hidden(split, depth), fresh.hidden(split, depth), strict=True):
                assert got.shape == want.shape
                torch.testing.assert_close(got.float(), want.float(), **FP16)
    assert reread.passes == 0
    assert reread.has_mask is True


def test_per_batch_forward_equals_the_cached_prefix(backbone, examples):
    """The naive path (caching off) feeds trials the same features the cache holds."""
    made = store(backbone, examples, None)
    batch = [0, 3, 5]
    computed = made.forward("train", batch, depth=backbone.depth, weighted=True)
    blocks, default = made.pooled("train")
    torch.testing.assert_close(computed["default_pooled"], default[batch])
    torch.testing.assert_close(computed["prefix_pooled"], torch.stack(blocks, dim=1)[batch])
    prefix = made.forward("train", batch, depth=1, weighted=False)
    torch.testing.assert_close(prefix["prefix_pooled"], blocks[0][batch])
    assert prefix["default_pooled"] is None


def test_changed_preprocessing_depth_or_data_misses_the_cache(tmp_path, backbone, examples, toy_modules):
    disk = DiskCache(tmp_path / "cache")
    store(backbone, examples, disk).pooled("train")

    hit = store(backbone, examples, disk)
    hit.hidden("train", 2)
    assert hit.passes == 0

    deeper = store(backbone, examples, disk)
    deeper.hidden("train", 3)  # depth 3 was never planned, so never kept
    assert deeper.passes == 1

    backbone.preprocessor.fingerprint = "toy-pre-v2"  # e.g. another sample rate or resolution
    changed = store(backbone, examples, disk)
    changed.pooled("train")
    assert changed.passes == 1

    other_data = store(backbone, toy_modules[0].synthetic(n_per_class=5, seed=4), disk)
    other_data.pooled("train")
    assert other_data.passes == 1


def test_an_unwritable_cache_slows_the_search_but_does_not_stop_it(tmp_path, backbone, examples):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    made = store(backbone, examples, DiskCache(blocker))
    blocks, _ = made.pooled("train")
    assert len(blocks) == backbone.depth


def test_a_resumed_run_reuses_the_cache(fast_recipe, toy, run_cli, write_recipe, tmp_path, monkeypatch):
    passes: list[str] = []
    original = FeatureStore._pass

    def counting(self, split, keep, full):
        passes.append(split)
        return original(self, split, keep, full)

    monkeypatch.setattr(FeatureStore, "_pass", counting)
    recipe = write_recipe(fast_recipe)
    code, _, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert code == 0, err
    assert passes and (tmp_path / "run" / "cache").is_dir()
    first = len(passes)
    code, _, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "5", "--run-dir", "run")
    assert code == 0, err
    # train and validation come from disk; only the test split, first needed now, may be computed
    assert set(passes[first:]) <= {"test"}


def test_caching_off_computes_features_per_batch_and_writes_no_cache(fast_recipe, toy, run_cli, write_recipe, tmp_path):
    recipe = write_recipe(fast_recipe)
    code, _, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "3", "--run-dir", "run", "--no-cache")
    assert code == 0, err
    assert not (tmp_path / "run" / "cache").exists()
    study = optuna.load_study(study_name="toy-default", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 3
    assert json.loads((tmp_path / "run" / "test.json").read_text())["accuracy"] > 0.5


def test_a_fresh_study_starts_with_a_linear_probe(fast_recipe, toy, run_cli, write_recipe, tmp_path):
    code, _, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "-n", "2", "--run-dir", "run")
    assert code == 0, err
    study = optuna.load_study(study_name="toy-default", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    first = study.trials[0]
    assert first.user_attrs["baseline"] == "linear probe"
    assert first.user_attrs["params"]["strategy"] == "feature_extraction"
    assert first.user_attrs["params"]["head"] == "linear"
    assert "baseline" not in study.trials[1].user_attrs


@pytest.mark.parametrize(("strategies", "started"), [(None, ["partial", "full"]), (["feature_extraction", "partial"], ["partial"])])
def test_a_plugins_starting_points_follow_the_probe_unless_the_space_excludes_them_and_run_whole(
    register_plugin, run_cli, write_recipe, tmp_path, monkeypatch, strategies, started,
):
    import toy_modality

    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)  # a pruner that stops every trial it may

    register_plugin("toy-start", {"starting-toy": "toy_modality:StartingToy"})
    recipe = 'modality = "starting-toy"\n[search]\nseed = 0\n[space]\nbatch_size = 8\n'
    if strategies:
        recipe += f"strategy = {json.dumps(strategies)}\n"
    n = len(started) + 2
    code, _, err = run_cli("search", "-r", write_recipe(recipe), "-n", str(n), "--run-dir", "run")
    assert code == 0, err
    study = optuna.load_study(study_name="starting-toy-default", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert trials[0].user_attrs["baseline"] == "linear probe"
    points = {"partial": toy_modality.StartingToy.PARTIAL, "full": toy_modality.StartingToy.FULL}
    for trial, strategy in zip(trials[1:], started):
        assert trial.user_attrs["starting_point"] == "starting-toy"
        ran = trial.user_attrs["params"]
        assert {k: ran[k] for k in points[strategy]} == points[strategy]
        assert trial.state == optuna.trial.TrialState.COMPLETE
    assert all("starting_point" not in t.user_attrs for t in trials[1 + len(started):])
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in trials[1 + len(started):])
