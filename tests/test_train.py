"""Training a trial: input paths, failures that do not stop the search, pruning, BatchNorm statistics."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import torch

from automl_tl.backbone import Backbone
from automl_tl.search.compute import Compute, resolve_bf16
from automl_tl.search.epochs import BestEpoch, UsableEpochs, best_epoch
from automl_tl.search.features import FeatureStore
from automl_tl.search.kernels import MATH_ATTENTION_UP_TO, attention_kernel
from automl_tl.search.metrics import scores
from automl_tl.search.model import Tail
from automl_tl.search.space import TrialParams
from automl_tl.search.train import input_mode, predict, train_trial


def make_store(backbone: Backbone, toy_modality) -> FeatureStore:
    examples = toy_modality.synthetic(n_per_class=8, seed=0, noise=0.5)
    return FeatureStore(backbone, {"train": examples[::2], "validation": examples[1::2]}, list(toy_modality.CLASSES))


def params(**overrides) -> TrialParams:
    values = dict(backbone="toy-net", strategy="partial", freeze_depth=1, head_lr=3e-3, weight_decay=1e-4, epochs=2,
                  batch_size=8, head="linear", pooling="mean", backbone_lr=1e-3)
    values.update(overrides)
    return TrialParams(**values)


def run(p: TrialParams, store: FeatureStore, epochs_seen: list | None = None):
    return train_trial(p, store, 3, "macro_f1", seed=0,
                       on_epoch=lambda entry, state, predicted: None if epochs_seen is None else epochs_seen.append(entry))


@pytest.mark.parametrize(
    ("overrides", "mode"),
    [
        (dict(strategy="feature_extraction", freeze_depth=3, backbone_lr=None, pooling="weighted"), "pooled"),
        (dict(strategy="partial", freeze_depth=2, pooling="weighted"), "prefix"),
        (dict(strategy="partial", freeze_depth=1, head="mlp", head_hidden=16, dropout=0.1), "prefix"),
        (dict(strategy="full", freeze_depth=0, augment=True, pooling="default"), "live"),
        (dict(strategy="lp_ft", freeze_depth=0, epochs=1), "live"),
        (dict(strategy="lp_ft", freeze_depth=2, epochs=2), "prefix"),
        (dict(strategy="feature_extraction", freeze_depth=3, backbone_lr=None, pooling="attention"), "pooled"),
        (dict(strategy="partial", freeze_depth=2, pooling="attention"), "prefix"),
        (dict(strategy="full", freeze_depth=0, pooling="attention"), "live"),
        (dict(strategy="lp_ft", freeze_depth=1, epochs=2, pooling="attention"), "prefix"),
    ],
)
def test_every_input_path_trains_and_reports_each_epoch(toy_modules, overrides, mode):
    toy_modality, toy_network = toy_modules
    store = make_store(toy_network.build(), toy_modality)
    p = params(**overrides)
    assert input_mode(p) == mode
    epochs: list = []
    outcome = run(p, store, epochs)
    assert [e["epoch"] for e in epochs] == list(range(1, p.epochs + 1))
    assert epochs == outcome.history  # the callback sees each epoch's whole record, as it is kept
    curve = [e["macro_f1"] for e in epochs]
    assert outcome.best_epoch == 1 + best_epoch(curve)
    assert outcome.history[outcome.best_epoch - 1]["macro_f1"] == outcome.scores["macro_f1"]
    assert outcome.trainable_params > 0 and outcome.state


def test_lp_ft_with_frozen_blocks_probes_and_fine_tunes_on_the_warm_cache_alone(toy_modules):
    toy_modality, toy_network = toy_modules
    store = make_store(toy_network.build(), toy_modality)
    store.cached_depths = {2}
    for split in ("train", "validation"):
        store.pooled(split)  # the search's warm-up: one pass per split keeps the planned prefix too
    passes = store.passes
    outcome = run(params(strategy="lp_ft", freeze_depth=2, epochs=2), store)
    assert store.passes == passes
    assert outcome.trainable_params == sum(p.numel() for p in Tail(store.backbone, params(strategy="lp_ft", freeze_depth=2), 3).parameters())


def test_pretrained_weights_are_never_modified_by_a_trial(toy_modules):
    toy_modality, toy_network = toy_modules
    backbone = toy_network.build()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    run(params(strategy="full", freeze_depth=0, head_lr=1e-2, backbone_lr=1e-2), make_store(backbone, toy_modality))
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_best_epochs_weights_reproduce_its_validation_score(toy_modules):
    toy_modality, toy_network = toy_modules
    backbone = toy_network.build()
    store = make_store(backbone, toy_modality)
    p = params(strategy="partial", freeze_depth=2, epochs=3)
    outcome = run(p, store)
    tail = Tail(backbone, p, 3)
    tail.load_state_dict(outcome.state)
    predicted = predict(tail, store, "validation", input_mode(p), p)
    assert scores(store.labels("validation").numpy(), predicted, 3) == pytest.approx(outcome.scores)


@pytest.mark.parametrize(
    ("curve", "best"),
    [
        ([0.743, 0.893, 0.823, 0.850, 0.867, 0.873], 6),  # a one-epoch spike (CIFAR subset, measured) is not the best
        ([0.90, 0.95, 0.96, 0.93, 0.90], 3),  # past the peak the model overfits: the peak's plateau wins
        ([0.50], 1),
        ([0.80, 0.70], 1),
    ],
)
def test_the_best_epoch_is_chosen_on_the_smoothed_curve_with_its_own_weights(curve, best) -> None:
    chosen = BestEpoch("accuracy")
    for epoch, score in enumerate(curve, start=1):
        chosen.add({"accuracy": score}, {"epoch": torch.tensor(epoch)}, np.array([epoch]))
    outcome = chosen.outcome()
    assert outcome.best_epoch == best
    assert outcome.scores == {"accuracy": curve[best - 1]}  # the raw score of that epoch is the trial's value
    assert int(outcome.state["epoch"]) == best
    assert outcome.predictions is not None and list(outcome.predictions) == [best]  # that epoch's predictions
    assert best_epoch(curve) == best - 1  # what a pruned trial's partial curve is judged by
    # the last epoch's weights too, for cross-validation, where they are not the best's
    assert outcome.last_state is None if best == len(curve) else int(outcome.last_state["epoch"]) == len(curve)


def _refit_length(correct_by_epoch: list[int], truth: bool = True) -> tuple[int, int]:
    """(best epoch, refit epochs) of a 200-example curve whose epochs get the first ``n`` examples right."""
    labels = np.zeros(200, dtype=np.int64)
    chosen = BestEpoch("accuracy", labels if truth else None, 2)
    for epoch, correct in enumerate(correct_by_epoch, start=1):
        predictions = np.where(np.arange(200) < correct, 0, 1)
        chosen.add({"accuracy": correct / 200}, {"epoch": torch.tensor(epoch)}, predictions)
    outcome = chosen.outcome()
    assert outcome.refit_epochs is not None
    return outcome.best_epoch, outcome.refit_epochs


def test_a_refit_trains_the_whole_schedule_when_the_last_epoch_is_within_noise_of_the_best() -> None:
    # a flat curve whose first epochs "win" by a few examples (the FSDD case): the refit is not cut to epoch 1
    assert _refit_length([197, 198, 196, 197, 197, 197]) == (1, 6)


def test_a_refit_stops_at_the_best_epoch_when_the_last_is_worse_beyond_noise() -> None:
    assert _refit_length([150, 190, 192, 160, 120]) == (3, 3)  # past the peak the model overfits
    assert _refit_length([150, 160, 190]) == (3, 3)  # the best epoch is the last
    assert _refit_length([197, 198, 196, 197, 197, 197], truth=False) == (1, 1)  # nothing to compare on



def _usable(correct_by_epoch: list[int], floor: float = 0.0, objective: str = "accuracy") -> list[int]:
    """The epochs `UsableEpochs` takes on a 300-example curve whose epochs get the first ``n`` examples right."""
    usable = UsableEpochs(floor, objective, np.zeros(300, dtype=np.int64), 2)
    return [epoch for epoch, correct in enumerate(correct_by_epoch, start=1)
            if usable.takes(correct / 300, np.where(np.arange(300) < correct, 0, 1))]


def test_a_later_epoch_within_noise_of_the_trials_best_becomes_the_usable_model() -> None:
    # the CIFAR subset's curve (0.753, 0.863, 0.807, 0.86, 0.86): epoch 2's one-epoch lead does not hold the checkpoint
    assert _usable([226, 259, 242, 258, 258]) == [1, 2, 4, 5]
    assert _usable([226, 259, 242, 258, 258], floor=0.86) == [2]  # none but epoch 2 beats the best completed trial
    assert _usable([200, 280, 230, 235]) == [1, 2]  # worse beyond noise: the best epoch stays the model
    assert _usable([226, 259, 258], objective="validator") == [1, 2]  # nothing to compare on: a new high only
    assert _usable([226, 259], floor=math.inf) == []  # adapting, or nothing in the backbone trains

@pytest.mark.parametrize(("batchnorm", "changes"), [(None, False), ("frozen", False), ("adapt", True)])
def test_batchnorm_statistics_stay_frozen_unless_the_trial_adapts_them(toy_modules, batchnorm, changes):
    toy_modality, toy_network = toy_modules
    backbone = toy_network.build(batchnorm=True)
    assert backbone.has_batchnorm()
    store = make_store(backbone, toy_modality)
    outcome = run(params(strategy="partial", freeze_depth=1, batchnorm=batchnorm, epochs=1), store)
    for i, block in enumerate(backbone.blocks[1:]):  # the tail's blocks.0 is the backbone's blocks.1
        for stat in ("running_mean", "running_var"):
            trained = outcome.state[f"blocks.{i}.bn.{stat}"]
            assert torch.equal(trained, getattr(block.bn, stat)) != changes, (batchnorm, i, stat)
    assert int(outcome.state["blocks.0.bn.num_batches_tracked"]) == (2 if changes else 0)  # 12 examples / 8


def test_nan_loss_fails_the_trial_with_a_reason_and_the_search_goes_on(toy, run_cli, write_recipe, monkeypatch, tmp_path):
    from automl_tl.search import objective, train

    real_train_trial, real_features = objective.train_trial, train._features
    calls: list[int] = []

    def poisoned(*args, **kwargs):
        return real_features(*args, **kwargs) * float("nan")

    def second_trial_diverges(*args, **kwargs):
        calls.append(1)
        monkeypatch.setattr(train, "_features", poisoned if len(calls) == 2 else real_features)
        return real_train_trial(*args, **kwargs)

    monkeypatch.setattr(objective, "train_trial", second_trial_diverges)
    recipe = write_recipe('[search]\npruner = "none"\n[space]\nstrategy = "feature_extraction"\nepochs = [1, 2]\n')
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "3", "--run-dir", "run")
    assert code == 0, err
    assert "Traceback" not in out + err

    record = json.loads((tmp_path / "run/trials/0001/record.json").read_text())
    assert record["state"] == "fail" and record["reason"] == "loss became nan in epoch 1"
    assert [json.loads((tmp_path / f"run/trials/{n:04d}/record.json").read_text())["state"] for n in (0, 2)] == ["complete"] * 2

    code, out, err = run_cli("leaderboard", "run", "--format", "json")
    board = json.loads(out)
    failed = [r for r in board["rows"] if r["state"] == "fail"]
    assert [(r["trial"], r["reason"]) for r in failed] == [(1, "loss became nan in epoch 1")]
    assert board["counts"] == {"complete": 2, "pruned": 0, "running": 0, "fail": 1}
    assert board["rows"][-1]["trial"] == 1  # failed trials rank last
    assert board["test"] is not None and board["test"]["trial"] != 1


def noisy_probes(search: str, epochs: int, batch_size: int) -> str:
    """A toy search of linear probes over a wide learning-rate range on noisy data: many trials to prune."""
    return f"""
[search]
seed = 0
{search}
[space]
strategy = "feature_extraction"
head = "linear"
pooling = "default"
epochs = {epochs}
head_lr = [1e-5, 1.0]
batch_size = {batch_size}
[options]
noise = 3.0
"""


@pytest.mark.parametrize("pruner", ["hyperband", "halving", "none"])
def test_pruner_stops_poor_trials_early(toy, run_cli, write_recipe, tmp_path, pruner):
    recipe = write_recipe(noisy_probes(f'pruner = "{pruner}"', epochs=9, batch_size=16))
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "10", "--run-dir", "run")
    assert code == 0, err
    states = {n: json.loads((tmp_path / f"run/trials/{n:04d}/record.json").read_text())["state"] for n in range(10)}
    pruned = [n for n, s in states.items() if s == "pruned"]
    assert bool(pruned) == (pruner != "none"), states
    assert set(states.values()) <= {"complete", "pruned"} and "complete" in states.values()

    code, out, _ = run_cli("leaderboard", "run", "--format", "json")
    rows = {r["trial"]: r for r in json.loads(out)["rows"]}
    complete = rows[next(n for n, s in states.items() if s == "complete")]
    for n in pruned:
        history = rows[n]["history"]
        assert rows[n]["state"] == "pruned"
        assert len(history) < 9 and rows[n]["reason"] == f"after epoch {len(history)}"
        curve = [h["macro_f1"] for h in history]
        assert rows[n]["score"] == curve[best_epoch(curve)]  # judged like a completed trial
        # and recorded like one: each epoch's cost, training loss and every metric
        assert all(h.keys() == complete["history"][0].keys() for h in history)


def test_a_first_rung_prunes_trials_part_way_through_epoch_1(toy, run_cli, write_recipe, tmp_path):
    """The pruner first judges after a quarter of epoch 1 (step 1); epoch e is step 4e; a trial stopped at the
    look has no epoch in its history, scores its look, and the leaderboard says where it stopped."""
    import optuna
    from optuna.trial import TrialState

    recipe = write_recipe(noisy_probes('pruner = "halving"\nfirst_rung = 0.25', epochs=4, batch_size=8))
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "10", "--run-dir", "run")
    assert code == 0, err
    trials = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials
    early = [t for t in trials if t.state == TrialState.PRUNED and t.user_attrs.get("pruned_after") == "0.25 of epoch 1"]
    assert early, [(t.state, t.user_attrs.get("pruned_after")) for t in trials]
    assert all(list(t.intermediate_values) == [1] and t.user_attrs["history"] == [] for t in early)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete and all(sorted(t.intermediate_values) == [1, 4, 8, 12, 16] for t in complete)
    code, out, _ = run_cli("leaderboard", "run", "--format", "json")
    rows = {r["trial"]: r for r in json.loads(out)["rows"]}
    for t in early:
        assert rows[t.number]["reason"] == "after 0.25 of epoch 1" and rows[t.number]["score"] == t.intermediate_values[1]


def _linear_output_dtypes(run) -> tuple[Any, set[torch.dtype]]:
    """What ``run()`` returns, and the dtypes every ``nn.Linear`` produced while it ran."""
    seen: set[torch.dtype] = set()

    def hook(module, args, output):
        if isinstance(module, torch.nn.Linear):
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        return run(), seen
    finally:
        handle.remove()


@pytest.mark.parametrize("strategy", ["partial", "lp_ft"])
def test_bf16_autocast_runs_trainable_blocks_in_bf16_and_keeps_fp32_weights(toy_modules, strategy) -> None:
    toy_modality, toy_network = toy_modules
    store = make_store(toy_network.build(), toy_modality)
    p = params(strategy=strategy, freeze_depth=1 if strategy == "partial" else 0, epochs=3)

    def train(compute: Compute):
        return train_trial(p, store, 3, "macro_f1", seed=0, compute=compute)

    fp32, fp32_dtypes = _linear_output_dtypes(lambda: train(Compute()))
    bf16, bf16_dtypes = _linear_output_dtypes(lambda: train(Compute(bf16=True)))
    assert fp32_dtypes == {torch.float32}
    assert torch.bfloat16 in bf16_dtypes
    assert all(math.isfinite(h["train_loss"]) for h in bf16.history)
    assert all(t.dtype == torch.float32 for t in bf16.state.values() if t.is_floating_point())
    assert bf16.scores["macro_f1"] >= fp32.scores["macro_f1"] - 0.2


def test_head_only_training_stays_fp32_under_bf16(toy_modules) -> None:
    toy_modality, toy_network = toy_modules
    store = make_store(toy_network.build(), toy_modality)
    p = params(strategy="feature_extraction", freeze_depth=toy_network.build().depth, epochs=2)
    _, dtypes = _linear_output_dtypes(lambda: train_trial(
        p, store, 3, "macro_f1", seed=0, compute=Compute(bf16=True)))
    assert dtypes == {torch.float32}


def _flash_allowed_in_tail_blocks(run) -> set[bool]:
    """Whether PyTorch's flash attention kernel was allowed each time a trial's toy block ran during ``run()``.

    Blocks run by a module other than the trial's tail (the store's frozen pass) are left out.
    """
    seen: set[bool] = set()
    tail_blocks: set[int] = set()
    features = Tail.features

    def noting_blocks(tail, *args, **kwargs):  # training reads the head's input through Tail.features
        tail_blocks.update(id(b) for b in tail.blocks)
        return features(tail, *args, **kwargs)

    def hook(module, args):
        if id(module) in tail_blocks:
            seen.add(torch.backends.cuda.flash_sdp_enabled())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    Tail.features = noting_blocks
    try:
        run()
        return seen
    finally:
        handle.remove()
        Tail.features = features


@pytest.mark.parametrize(("bf16", "flash"), [(True, False), (False, True)])
def test_short_sequences_train_with_the_math_attention_kernel_only_under_bf16(toy_modules, bf16, flash) -> None:
    toy_modality, toy_network = toy_modules
    store = make_store(toy_network.build(), toy_modality)
    p = params(strategy="lp_ft", freeze_depth=0, epochs=1)
    allowed = _flash_allowed_in_tail_blocks(lambda: train_trial(
        p, store, 3, "macro_f1", seed=0, compute=Compute(bf16=bf16)))
    assert allowed == {flash}
    assert torch.backends.cuda.flash_sdp_enabled()  # restored afterwards


@pytest.mark.parametrize(
    ("shape", "flash"),
    [((2, MATH_ATTENTION_UP_TO, 8), False), ((2, MATH_ATTENTION_UP_TO + 1, 8), True), ((2, 8, 4, 4), True)],
)
def test_long_sequences_and_images_keep_the_flash_kernel_under_bf16(shape, flash) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16), attention_kernel(torch.zeros(shape)):
        assert torch.backends.cuda.flash_sdp_enabled() is flash


def test_precision_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_bf16("bf16") and not resolve_bf16("fp32")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert not resolve_bf16("auto")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert resolve_bf16("auto")


def test_a_first_rung_looks_part_way_through_epoch_1_for_the_pruner_and_is_not_an_epoch(toy_modules):
    """With ``first_rung`` 0.5 the first call comes after half of epoch 1's batches, scored on all of
    validation; then training goes on, and the history holds whole epochs only."""
    toy_modality, toy_network = toy_modules
    store = make_store(toy_network.build(), toy_modality)  # 12 training examples, batches of 4: 3 per epoch
    p = params(batch_size=4)
    seen: list[dict[str, Any]] = []
    outcome = train_trial(p, store, 3, "macro_f1", seed=0, on_epoch=lambda entry, state, predicted: seen.append(entry), first_rung=0.5)
    assert [entry["epoch"] for entry in seen] == [0.5, 1, 2]
    assert {"accuracy", "macro_f1"} <= set(seen[0]) and "train_loss" not in seen[0]  # a look: scores, no epoch's loss
    assert [entry["epoch"] for entry in outcome.history] == [1, 2]
    plain: list[dict[str, Any]] = []
    again = train_trial(p, store, 3, "macro_f1", seed=0, on_epoch=lambda entry, state, predicted: plain.append(entry))
    assert [entry["epoch"] for entry in plain] == [1, 2]
    assert again.history[-1]["macro_f1"] == outcome.history[-1]["macro_f1"]  # looking does not change the training


@pytest.mark.parametrize("strategy", ["lp_ft", "full"])
def test_training_without_callbacks_raises_a_stop_whose_exception_was_lost(toy_modules, strategy) -> None:
    """A refit or a fold model watches nothing, but a recorded Ctrl-C or SIGTERM still stops it at its next batch."""
    from automl_tl.errors import STOP_ASKED, Terminated

    toy_modality, toy_network = toy_modules
    store = make_store(toy_network.build(), toy_modality)
    STOP_ASKED.ask(Terminated)  # what the SIGTERM handler records, its exception lost
    try:
        with pytest.raises(Terminated):
            train_trial(params(strategy=strategy, freeze_depth=0, epochs=2), store, 3, "macro_f1", seed=0)
    finally:
        STOP_ASKED.clear()
