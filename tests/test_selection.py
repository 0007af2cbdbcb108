"""Selection that generalises: the simplest model within validation noise of the best, and intervals."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl_tl.search.metrics import interval, paired_difference
from automl_tl.search.selection import PREDICTIONS, choose

RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 4, 400)


def predictions(accuracy: float, seed: int) -> np.ndarray:
    """Predictions right on about ``accuracy`` of `LABELS`, wrong elsewhere."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(LABELS)) > accuracy
    return np.where(wrong, (LABELS + 1) % 4, LABELS)


def trial(number: int, predicted: np.ndarray, params: int, baseline: bool = False) -> optuna.trial.FrozenTrial:
    value = float(np.mean(predicted == LABELS))
    attrs = {PREDICTIONS: predicted.tolist(), "trainable_params": params,
             "params": {"strategy": "feature_extraction" if baseline else "full"}}
    if baseline:
        attrs["baseline"] = "linear probe"
    made = create_trial(state=TrialState.COMPLETE, value=value, params={"x": 0.5},
                        distributions={"x": FloatDistribution(0, 1)}, user_attrs=attrs)
    made.number = number
    return made


def test_a_fine_tune_within_noise_of_the_probe_loses_to_the_probe():
    probe = trial(0, predictions(0.90, 1), params=3_000, baseline=True)
    fine_tune = predictions(0.90, 1).copy()
    fine_tune[np.flatnonzero(fine_tune != LABELS)[:3]] = LABELS[np.flatnonzero(fine_tune != LABELS)[:3]]  # 3 more right
    tuned = trial(1, fine_tune, params=5_000_000)
    choice = choose([probe, tuned], LABELS, 4, "accuracy")
    assert choice is not None and choice.best is tuned and choice.trial is probe
    assert "linear probe" in choice.reason and "within noise" in choice.reason


def test_only_a_smaller_model_within_noise_is_kept_over_the_best():
    """Two fine-tunes of one size (heads apart) are not a simpler and a more complex model: the best stays;
    one with half the trainable parameters or fewer is the simpler model."""
    best = trial(1, predictions(0.92, 2), params=3_387_000)
    close = predictions(0.92, 2).copy()
    close[np.flatnonzero(close == LABELS)[:3]] = (LABELS[np.flatnonzero(close == LABELS)[:3]] + 1) % 4  # 3 fewer right
    same_size = trial(4, close, params=3_374_000)
    choice = choose([best, same_size], LABELS, 4, "accuracy")
    assert choice is not None and choice.trial is best and same_size in choice.within
    assert "no smaller models" in choice.reason
    half = trial(5, close, params=1_693_000)
    choice = choose([best, same_size, half], LABELS, 4, "accuracy")
    assert choice is not None and choice.trial is half and "the simpler model is kept" in choice.reason

def test_a_fine_tune_clearly_above_the_probe_is_chosen():
    probe = trial(0, predictions(0.70, 1), params=3_000, baseline=True)
    tuned = trial(1, predictions(0.95, 2), params=5_000_000)
    choice = choose([probe, tuned], LABELS, 4, "accuracy")
    assert choice is not None and choice.trial is tuned and choice.best is tuned
    assert choice.reason.startswith("trial 1: the best accuracy on validation")


def test_trials_recorded_without_predictions_fall_back_to_the_best_score():
    old = [trial(0, predictions(0.8, 1), 10), trial(1, predictions(0.9, 2), 20)]
    for t in old:
        del t.user_attrs[PREDICTIONS]
    choice = choose(old, LABELS, 4, "accuracy")
    assert choice is not None and choice.trial.number == 1
    assert choose([], LABELS, 4, "accuracy") is None


def test_intervals_cover_the_score_and_narrow_with_more_examples():
    truth = RNG.integers(0, 3, 2000)
    predicted = np.where(RNG.random(2000) < 0.85, truth, (truth + 1) % 3)
    small = interval(truth[:100], predicted[:100], 3, "accuracy")
    large = interval(truth, predicted, 3, "macro_f1")
    assert small["low"] <= np.mean(truth[:100] == predicted[:100]) <= small["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]
    assert small["unit"] == "examples" and small["level"] == 0.95


def test_groups_are_resampled_whole_once_there_are_enough_of_them():
    truth = RNG.integers(0, 2, 200)
    predicted = truth.copy()
    two = interval(truth, predicted, 2, "accuracy", groups=["a", "b"] * 100)
    many = interval(truth, predicted, 2, "accuracy", groups=[f"g{i % 10}" for i in range(200)])
    assert two["unit"] == "examples" and many["unit"] == "groups"
    assert many["low"] == many["high"] == 1.0


def test_the_paired_difference_of_a_model_with_itself_is_zero():
    predicted = predictions(0.8, 3)
    assert paired_difference(LABELS, predicted, predicted, 4, "macro_f1") == (0.0, 0.0, 0.0)
    gain, low, high = paired_difference(LABELS, predictions(0.99, 4), predictions(0.6, 5), 4, "accuracy")
    assert 0 < low <= gain <= high
    assert gain == pytest.approx(np.mean(predictions(0.99, 4) == LABELS) - np.mean(predictions(0.6, 5) == LABELS))


def test_folds_hold_each_example_out_once_keep_groups_whole_and_the_validation_split_is_the_first():
    """The validation split (the last examples, as train + validation are joined) is a fold as it is, so a trial
    trained on the train split is a fold model; the rest is folded by whole groups, or stratified without them."""
    from automl_tl.contract import Example
    from automl_tl.search.crossval import fold_indices

    grouped = [Example(i, "ab"[i % 2], f"g{i % 7}") for i in range(70)]
    grouped = [e for e in grouped if e.group != "g6"] + [e for e in grouped if e.group == "g6"]  # g6 is the validation split
    folds = fold_indices(grouped, 10, 5, seed=0)
    assert len(folds) == 5 and folds[0] == list(range(60, 70))
    assert sorted(i for fold in folds for i in fold) == list(range(70))
    for fold in folds:  # a group never straddles two folds
        groups = {grouped[i].group for i in fold}
        assert all(grouped[i].group not in groups for other in folds if other is not fold for i in other)
    plain = [Example(i, "abc"[i % 3]) for i in range(36)]
    folds = fold_indices(plain, 6, 5, seed=0)
    assert folds[0] == list(range(30, 36)) and sorted(i for fold in folds for i in fold) == list(range(36))
    assert all({plain[i].label for i in fold} == {"a", "b", "c"} for fold in folds)  # stratified
    mixed = [Example(i, "ab"[i % 2], f"g{i % 7}") for i in range(70)]  # validation groups also in train: no group folds
    assert fold_indices(mixed, 10, 5, seed=0)[0] == list(range(60, 70))


def test_a_trial_that_ran_its_whole_schedule_is_its_validation_folds_model(tmp_path):
    """Its last epoch's weights are a fold model for the validation fold: where the run kept them, and not for a
    trial cut short or one a refit would train for fewer epochs."""
    import torch

    from automl_tl.search.crossval import validation_fold

    whole = trial(0, predictions(0.9, 1), params=10)
    whole.user_attrs.update({"params": {"epochs": 3}, "history": [{}] * 3, "best_epoch": 2, "refit_epochs": 3})
    weights, last = tmp_path / "weights.pt", tmp_path / "last.pt"
    assert validation_fold(whole, weights, last) is None  # not kept (only the best trial's are)
    torch.save({"w": torch.ones(1)}, weights)  # the best epoch's: not the last's
    assert validation_fold(whole, weights, last) is None
    torch.save({"w": torch.zeros(1)}, last)
    assert validation_fold(whole, weights, last)["w"].item() == 0
    whole.user_attrs["best_epoch"] = 3
    last.unlink()
    assert validation_fold(whole, weights, last)["w"].item() == 1  # its best epoch was its last
    for change in ({"history": [{}] * 2}, {"refit_epochs": 2}):  # cut short by the time budget; a refit trains 2 epochs
        cut = trial(1, predictions(0.9, 1), params=10)
        cut.user_attrs.update({**whole.user_attrs, **change})
        assert validation_fold(cut, weights, last) is None


def test_a_tiny_validation_split_is_cross_validated_before_the_choice(small_data, run_cli, write_recipe, tmp_path):
    """Three validation examples cannot choose: the candidates are re-scored on folds of the train split (the
    validation split, which made them candidates, is the fifth fold: a model of the final five, not a judge)."""
    import json

    recipe = write_recipe('[search]\npruner = "none"\nseed = 0\n[data]\nsplit_by = "stratified"\n'
                          '[space]\nstrategy = ["feature_extraction", "partial"]\nepochs = [1, 2]\nbatch_size = 8\n')
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "--data", small_data, "-n", "4", "--run-dir", "run")
    assert code == 0, err
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    folds = test["cross_validation"]
    assert folds["folds"] == 5 and folds["examples"] == 21  # the train split: every labelled example outside test and validation
    assert str(test["trial"]) in folds["scores"] and "4 folds of the train split" in test["chosen"]
    assert "chosen:" in " ".join(out.split())
    counts = [line.split()[-1] for line in out.splitlines() if line.startswith("fold models ")]  # a log's progress: a line each
    # two candidates, four folds each; the validation fold's model is the chosen trial's own where the run kept its
    # weights (the best trial's: the first considered), else trained after the choice
    kept = test["trial"] == test["considered"][0]
    assert folds["validation_fold_model"] == ("its trial" if kept else "trained")
    assert counts == [f"{done}/8" for done in range(1, 9)] + ([] if kept else ["1/1"])


def test_without_a_refit_the_folds_only_re_score_and_train_no_model_for_the_validation_fold(small_data, run_cli, write_recipe):
    """``refit = false`` delivers the chosen trial's own weights: a model for the validation fold would be unused."""
    recipe = write_recipe('[search]\npruner = "none"\nseed = 0\nrefit = false\n[data]\nsplit_by = "stratified"\n'
                          '[space]\nstrategy = ["feature_extraction", "partial"]\nepochs = [1, 2]\nbatch_size = 8\n')
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "--data", small_data, "-n", "4", "--run-dir", "run")
    assert code == 0, err
    assert [line.split()[-1] for line in out.splitlines() if line.startswith("fold models ")] == [f"{d}/8" for d in range(1, 9)]
    assert "chosen: trial 0" in " ".join(out.split())  # not the best trial, whose weights alone the run kept
    assert "validation fold" not in out


def test_the_chosen_configurations_fold_models_are_the_final_model(small_data, run_cli, write_recipe, tmp_path):
    """Cross-validation trained the chosen configuration once per fold: those models, averaged, are delivered
    (no refit), and predicting the test split with the run's model gives test.json's score."""
    import json

    import numpy as np
    import torch

    import automl_tl

    recipe = write_recipe('[search]\npruner = "none"\nseed = 0\n[data]\nsplit_by = "stratified"\n'
                          '[space]\nstrategy = ["feature_extraction", "partial"]\nepochs = [1, 2]\nbatch_size = 8\n')
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "--data", small_data, "-n", "4", "--run-dir", "run")
    assert code == 0, err
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["members"] == test["cross_validation"]["folds"] == 5
    saved = torch.load(tmp_path / "run" / "final" / "weights.pt", weights_only=True)
    assert isinstance(saved, list) and len(saved) == 5
    assert "5 fold models averaged" in " ".join(out.split())  # the leaderboard's footer says what was delivered
    assert not (tmp_path / "run" / "workers").exists()  # folds of seconds: no helper's start is worth it
    model = automl_tl.load_model(tmp_path / "run")
    examples = model.test_examples()
    labels = [top[0]["label"] for top in model.predict([e.item for e in examples])]
    assert np.mean([label == e.label for label, e in zip(labels, examples)]) == test["accuracy"]
    code, out, err = run_cli("export", tmp_path / "run", "--out", tmp_path / "bundle", "--format", "onnx")
    assert code == 0, err  # the export checks the bundle's probabilities against the averaged network's
    bundled = automl_tl.load_model(tmp_path / "bundle")
    assert [top[0]["label"] for top in bundled.predict([e.item for e in examples])] == labels


def test_one_held_out_group_is_a_reason_to_cross_validate_over_whole_groups():
    """One validation speaker says little about the next: four speakers give leave-one-speaker-out folds."""
    from automl_tl.contract import Example
    from automl_tl.search.crossval import fold_indices, why

    speakers = [Example(i, "ab"[i % 2], f"s{i % 4}") for i in range(40)]
    validation = [e for e in speakers if e.group == "s3"]
    narrow = trial(0, predictions(0.9, 1), params=10)
    narrow.user_attrs["interval"] = {"low": 0.88, "high": 0.92}
    assert why(narrow, narrow, validation, speakers) == "the validation split holds a single group"
    assert why(narrow, narrow, speakers, speakers) is None  # several validation groups, a narrow interval: trust it
    narrow.user_attrs["interval"] = {"low": 0.70, "high": 0.95}
    assert "wider than" in why(narrow, narrow, speakers, speakers)
    joined = [e for e in speakers if e.group != "s3"] + validation
    folds = fold_indices(joined, len(validation), 5, seed=0)
    assert len(folds) == 4 and all(len({joined[i].group for i in fold}) == 1 for fold in folds)


def test_a_single_validation_group_re_scores_the_runner_up_within_noise_or_not():
    """One speaker's interval resamples that speaker's clips: a lead beyond it may not hold on the next speaker,
    so the folds re-score the best two on validation; other doubts re-score only the trials within noise."""
    from automl_tl.search.crossval import SINGLE_GROUP, candidates

    probe = trial(0, predictions(0.80, 1), params=3_000, baseline=True)
    best = trial(1, predictions(0.99, 2), params=5_000_000)
    second, third, fourth = (trial(n, predictions(accuracy, n), params=5_000_000)
                             for n, accuracy in ((2, 0.93), (3, 0.91), (4, 0.88)))
    choice = choose([probe, fourth, third, second, best], LABELS, 4, "accuracy")
    assert choice is not None and choice.within == [best] and choice.ranked == [best, second, third, fourth, probe]
    assert candidates(choice, SINGLE_GROUP) == [best, second]
    assert candidates(choice, "the best trial's 95 % validation interval is wider than 0.10") == [best]
    close = predictions(0.99, 2).copy()
    close[np.flatnonzero(close == LABELS)[:2]] = (LABELS[np.flatnonzero(close == LABELS)[:2]] + 1) % 4  # 2 fewer right
    half = trial(5, close, params=1_000_000)
    choice = choose([probe, fourth, third, second, best, half], LABELS, 4, "accuracy")
    assert choice is not None and choice.trial is half  # the guard's simpler model within noise is the other candidate
    assert candidates(choice, SINGLE_GROUP) == [best, half]


def test_the_guard_falling_back_from_a_fine_tune_to_frozen_features_is_a_reason_to_cross_validate():
    """However large the validation split: which kind of transfer is handed on is not left to its noise."""
    from automl_tl.contract import Example
    from automl_tl.search.crossval import why

    many = [Example(i, "ab"[i % 2], None) for i in range(400)]
    probe = trial(0, predictions(0.90, 1), params=3_000, baseline=True)
    tuned, partial = trial(1, predictions(0.91, 2), params=5_000_000), trial(2, predictions(0.91, 3), params=1_000_000)
    for t in (probe, tuned, partial):
        t.user_attrs["interval"] = {"low": 0.88, "high": 0.93}
    partial.user_attrs["params"]["strategy"] = "partial"
    assert "frozen features over a fine-tune" in why(tuned, probe, many, many)
    assert why(tuned, partial, many, many) is None  # two fine-tunes: the guard's simpler one stands
    assert why(probe, probe, many, many) is None  # frozen features were the best outright


def test_a_finished_search_run_again_does_not_cross_validate_again(small_data, run_cli, write_recipe, tmp_path, monkeypatch):
    """The choice depends only on the trials within noise of the best: once tested, re-running is free."""
    import json

    from automl_tl.search import crossval

    recipe = write_recipe('[search]\npruner = "none"\nseed = 0\n[data]\nsplit_by = "stratified"\n'
                          '[space]\nstrategy = "feature_extraction"\nepochs = [1, 2]\nbatch_size = 8\n')
    args = ("search", "-m", "toy", "-r", recipe, "--data", small_data, "-n", "3", "--run-dir", "run")
    assert run_cli(*args)[0] == 0
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["considered"] and "cross_validation" in test
    calls: list[int] = []
    real = crossval.fold_model
    monkeypatch.setattr(crossval, "fold_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert run_cli(*args)[0] == 0
    assert calls == [] and json.loads((tmp_path / "run" / "test.json").read_text()) == test


def test_of_equal_scores_the_earliest_trial_is_the_best_everywhere():
    """Selection, the weights a run keeps and the live view's usable model name the same trial on a tie."""
    from automl_tl.search.objective import best_completed

    same = predictions(0.9, 1)
    first, second = trial(3, same, params=1_000), trial(7, same, params=1_000)
    choice = choose([second, first], LABELS, 4, "accuracy")
    assert choice is not None and choice.best is first and choice.trial is first
    assert best_completed([second, first]) == (first.value, 3)


@pytest.mark.parametrize("grouped", [False, True], ids=["no-groups", "groups"])
def test_a_validation_split_every_trial_aces_says_it_cannot_rank_them(toy, toy_modules, run_cli, write_recipe, tmp_path, grouped):
    """Trials that all but ace validation tie there whatever they would score on data unlike it: without groups the
    output says so and how to make the split hold out what differs; with groups the split already does."""
    import json

    toy_modality, _ = toy_modules
    rows = [{"x": e.item, "label": e.label, **({"group": e.group} if grouped else {})}
            for e in toy_modality.synthetic(n_per_class=100, groups=30, seed=5, noise=0.1)]
    (tmp_path / "easy.json").write_text(json.dumps(rows))
    recipe = write_recipe('[search]\npruner = "none"\nseed = 0\n[space]\nstrategy = "feature_extraction"\nepochs = [6, 8]\n'
                          'batch_size = 8\nhead = "linear"\n')
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "--data", "easy.json", "-n", "3", "--run-dir", "run")
    assert code == 0, err
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert len(test["considered"]) > 1 and "cross_validation" not in test, out  # tied, and nothing made the choice again
    text = " ".join(out.split())
    assert ("validation cannot rank these" in text and "give each example that as its group" in text) != grouped
