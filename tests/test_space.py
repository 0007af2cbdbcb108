"""The search space: conditional sampling, narrowing and fixing dimensions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
import pytest

from automl_tl.errors import UserError
from automl_tl.search.space import BackboneShape, SearchSpace, TrialParams
from automl_tl.vocabulary import STRATEGIES

optuna.logging.set_verbosity(optuna.logging.ERROR)

DEEP = {"net": BackboneShape(depth=4, uniform_width=True, has_batchnorm=False)}


def sample_many(space: SearchSpace, shapes: Mapping[str, BackboneShape], n: int = 80) -> list[tuple[TrialParams, dict[str, Any]]]:
    """``n`` trials of a random search: each trial's parameters and what Optuna recorded."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        params = space.sample(trial, shapes)
        out.append((params, dict(trial.params)))
        study.tell(trial, 0.0)
    return out


def test_only_dimensions_that_matter_are_sampled():
    samples = sample_many(SearchSpace.resolve(backbones=["net"]), DEEP, n=120)
    strategies = {p.strategy for p, _ in samples}
    assert strategies == {"feature_extraction", "partial", "full", "lp_ft"}
    for params, recorded in samples:
        trains_backbone = params.strategy != "feature_extraction"
        assert (params.backbone_lr is not None) == trains_backbone
        assert ("backbone_lr" in recorded) == trains_backbone
        assert ("freeze_depth" in recorded) == (params.strategy == "partial")
        assert ("freeze_depth[lp_ft]" in recorded) == (params.strategy == "lp_ft")
        if params.strategy == "partial":
            assert 1 <= params.freeze_depth <= 3
        elif params.strategy == "lp_ft":
            assert 0 <= params.freeze_depth <= 3
        elif params.strategy == "feature_extraction":
            assert params.freeze_depth == 4
        else:
            assert params.freeze_depth == 0
        mlp = params.head == "mlp"
        assert (params.head_hidden is not None) == mlp and (params.dropout is not None) == mlp
        assert ("head_hidden" in recorded) == mlp and ("dropout" in recorded) == mlp
        trains_stem = params.strategy in ("full", "lp_ft") and params.freeze_depth == 0
        assert ("augment" in recorded) == trains_stem
        assert params.augment in ((False, True) if trains_stem else (False,))
        assert "batchnorm" not in recorded and params.batchnorm is None  # this backbone has none
        assert 3 <= params.epochs <= 12 and params.batch_size in (16, 32, 64)
        assert 3e-4 <= params.head_lr <= 3e-2


def test_partial_freeze_depth_covers_the_middle_blocks_only():
    samples = sample_many(SearchSpace.resolve({"strategy": "partial"}, backbones=["net"]), DEEP, n=60)
    assert {p.freeze_depth for p, _ in samples} == {1, 2, 3}


@pytest.mark.parametrize(("recipe", "expected"), [([2, 10], {2, 3}), (7, {3}), ([0, 1], {1})])
def test_recipe_freeze_depth_is_kept_within_one_to_depth_minus_one(recipe, expected):
    space = SearchSpace.resolve({"strategy": "partial", "freeze_depth": recipe}, backbones=["net"])
    assert {p.freeze_depth for p, _ in sample_many(space, DEEP, n=30)} == expected


def test_lp_ft_may_keep_the_first_blocks_frozen_so_its_prefix_is_cached():
    samples = sample_many(SearchSpace.resolve({"strategy": "lp_ft"}, backbones=["net"]), DEEP, n=60)
    assert {p.freeze_depth for p, _ in samples} == {0, 1, 2, 3}
    narrowed = SearchSpace.resolve({"strategy": "lp_ft", "freeze_depth": [2, 2]}, backbones=["net"])
    assert {p.freeze_depth for p, _ in sample_many(narrowed, DEEP, n=30)} == {0, 1, 2}
    narrowed_depths = narrowed.dims["freeze_depth"]
    assert STRATEGIES["lp_ft"].freeze_depths(4, narrowed_depths) == [0, 1, 2]
    assert STRATEGIES["partial"].freeze_depths(4, narrowed_depths) == [2]


@pytest.mark.parametrize(
    ("strategies", "expected"),
    [(["feature_extraction", "full"], set()), (["partial"], {1, 2, 3}), (["lp_ft"], {1, 2, 3}),
     (["feature_extraction", "lp_ft"], {1, 2, 3})],
)
def test_the_cache_plans_every_prefix_depth_a_trial_may_ask_for(strategies, expected):
    space = SearchSpace.resolve({"strategy": strategies, "pooling": ["default", "mean", "weighted"]}, backbones=["net"])
    assert space.cached_depths(4) == expected


@pytest.mark.parametrize(
    ("strategies", "expected"),
    [(["feature_extraction", "full"], {4}), (["partial"], {1, 2, 3}), (["lp_ft"], {1, 2, 3, 4}), (["full"], set())],
)
def test_a_sequence_pooling_caches_the_whole_backbone_for_heads_on_frozen_features(strategies, expected):
    """Attention pooling reads the last block's sequence, which no cached vector can stand in for."""
    space = SearchSpace.resolve({"strategy": strategies, "pooling": ["mean", "attention"]}, backbones=["net"])
    assert space.cached_depths(4) == expected


def test_batchnorm_handling_is_searched_only_when_the_backbone_has_batchnorm_and_trains():
    shapes = {"bn": BackboneShape(depth=3, uniform_width=True, has_batchnorm=True)}
    for params, recorded in sample_many(SearchSpace.resolve(backbones=["bn"]), shapes):
        if params.strategy == "feature_extraction":
            assert params.batchnorm is None and "batchnorm" not in recorded
        else:
            assert params.batchnorm in ("frozen", "adapt") and "batchnorm" in recorded


def test_a_scalar_fixes_a_dimension_and_a_list_narrows_it():
    space = SearchSpace.resolve(
        {"head_lr": 0.01, "head": "mlp", "epochs": 5, "strategy": ["full", "partial"], "dropout": [0.1, 0.2]},
        backbones=["net"],
    )
    assert space.dims["head_lr"] == [0.01, 0.01] and space.dims["head"] == ["mlp"]
    for params, recorded in sample_many(space, DEEP, n=40):
        assert params.head_lr == 0.01 and "head_lr" not in recorded
        assert params.head == "mlp" and "head" not in recorded
        assert params.epochs == 5 and "epochs" not in recorded
        assert params.strategy in ("full", "partial")
        assert 0.1 <= params.dropout <= 0.2


def test_layers_apply_in_order_plugin_then_recipe():
    space = SearchSpace.resolve({"epochs": [2, 4], "head": "linear"}, {"epochs": [6, 8]}, backbones=["x", "y"])
    assert space.dims["epochs"] == [6, 8]
    assert space.dims["head"] == ["linear"]
    assert space.choices("backbone") == ["x", "y"]  # filled in when nobody narrowed it
    assert SearchSpace.resolve({"backbone": "y"}, backbones=["x", "y"]).choices("backbone") == ["y"]


def test_backbones_of_different_shapes_share_one_study():
    """A one-block backbone cannot be partially fine-tuned, mixed widths cannot be weighted-pooled:
    the narrower choices must not break Optuna's fixed-choices rule for later trials."""
    shapes = {
        "deep": BackboneShape(depth=4, uniform_width=True, has_batchnorm=False),
        "mixed": BackboneShape(depth=4, uniform_width=False, has_batchnorm=False),
        "single": BackboneShape(depth=1, uniform_width=True, has_batchnorm=False),
    }
    samples = sample_many(SearchSpace.resolve(backbones=list(shapes)), shapes, n=120)
    assert {p.backbone for p, _ in samples} == set(shapes)
    for params, _ in samples:
        if params.backbone == "mixed":
            assert params.pooling != "weighted"
        if params.backbone == "single":
            assert params.strategy != "partial"
    assert any(p.pooling == "weighted" for p, _ in samples if p.backbone == "deep")


def test_partial_only_on_a_one_block_backbone_is_a_user_error():
    space = SearchSpace.resolve({"strategy": "partial"}, backbones=["single"])
    trial = optuna.create_study().ask()
    with pytest.raises(UserError, match="'partial' needs a backbone with 2 or more blocks"):
        space.sample(trial, {"single": BackboneShape(1, True, False)})


CONV = {"net": BackboneShape(depth=4, uniform_width=False, has_batchnorm=True)}


@pytest.mark.parametrize(
    "configuration",
    [
        {"strategy": "full", "backbone_lr": 1e-4, "head_lr": 1e-3, "weight_decay": 1e-4, "epochs": 6, "batch_size": 16,
         "head": "linear", "pooling": "default", "augment": True, "batchnorm": "frozen"},
        {"strategy": "partial", "freeze_depth": 2, "backbone_lr": 3e-5, "head": "mlp", "head_hidden": 128, "dropout": 0.2},
        {"strategy": "feature_extraction", "head": "linear", "epochs": 12},
        {"strategy": "lp_ft", "freeze_depth": 0, "augment": True, "backbone_lr": 1e-4},
        {"strategy": "lp_ft", "freeze_depth": 2, "augment": False, "backbone_lr": 1e-4},
    ],
)
def test_a_configuration_queued_by_its_parameters_is_the_one_sampled(configuration):
    space = SearchSpace.resolve(backbones=["net"])
    params = space.params_of(configuration, CONV)
    assert params is not None
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(params)
    sampled = space.sample(study.ask(), CONV).to_dict()
    assert {name: sampled[name] for name in configuration} == configuration


@pytest.mark.parametrize(
    ("layer", "configuration"),
    [
        ({"strategy": ["feature_extraction", "partial"]}, {"strategy": "full"}),
        ({"backbone_lr": [1e-5, 5e-5]}, {"strategy": "full", "backbone_lr": 1e-4}),
        ({}, {"strategy": "lp_ft", "pooling": "weighted"}),  # mixed block widths: no weighted pooling
        ({}, {"backbone": "other-net"}),
        ({}, {"strategy": "full", "freeze_depth": 2}),
        ({"freeze_depth": [1, 2]}, {"strategy": "lp_ft", "freeze_depth": 3}),
    ],
)
def test_a_configuration_outside_the_space_is_not_queued(layer, configuration):
    assert SearchSpace.resolve(layer, backbones=["net"]).params_of(configuration, CONV) is None
