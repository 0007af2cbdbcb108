"""The search vocabulary: one declaration per word, and the layers its poolings name."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch

from automl_tl.backbone import Hidden
from automl_tl.config import validate
from automl_tl.errors import UserError
from automl_tl.search.compute import Compute
from automl_tl.search.features import FeatureStore
from automl_tl.search.model import Tail
from automl_tl.search.train import input_mode, predict, train_trial
from automl_tl.vocabulary import DIMENSIONS, POOLINGS, STRATEGIES, TrialParams, cell, describe
from automl_tl.vocabulary.layers import LAYERS, AttentionPool


def test_trial_params_hold_exactly_the_declared_dimensions():
    assert {f.name for f in fields(TrialParams)} == set(DIMENSIONS)


def test_every_default_is_a_value_a_recipe_may_choose():
    for dim in DIMENSIONS.values():
        if dim.allowed is not None and dim.default is not None:
            assert set(dim.default) <= set(dim.allowed), dim.name
    assert DIMENSIONS["strategy"].allowed == tuple(STRATEGIES)
    assert DIMENSIONS["pooling"].allowed == tuple(POOLINGS)


def test_every_learned_pooling_names_a_layer_that_exists():
    for pooling in POOLINGS.values():
        assert (pooling.layer is None) == (pooling.reads in ("own", "mean")), pooling.name
        if pooling.layer:
            assert pooling.layer in LAYERS


@pytest.mark.parametrize(
    ("strategy", "depth", "narrowed", "expected"),
    [("feature_extraction", 4, None, [4]), ("full", 4, None, [0]), ("partial", 4, None, [1, 2, 3]),
     ("lp_ft", 4, None, [0, 1, 2, 3]), ("partial", 4, [2, 9], [2, 3]), ("lp_ft", 4, [2, 2], [0, 1, 2]),
     ("partial", 1, None, []), ("lp_ft", 1, None, [0])],
)
def test_each_strategy_declares_its_freeze_depths(strategy, depth, narrowed, expected):
    assert STRATEGIES[strategy].freeze_depths(depth, narrowed) == expected


def test_recipe_values_are_checked_against_the_table():
    base = {"modality": "toy"}
    for space, message in [({"pooling": "max"}, "not among"), ({"epochs": 5000}, "at most 1000"),
                           ({"dropout": 1.0}, "below 1"), ({"batch_size": 2.5}, "whole number")]:
        with pytest.raises(UserError, match=message):
            validate({**base, "space": space}, "recipe")
    assert validate({**base, "space": {"pooling": ["mean", "attention"]}}, "recipe").space["pooling"] == ["mean", "attention"]


def test_leaderboard_cells_and_progress_lines_read_the_table():
    params = {"backbone": "net_a", "strategy": "lp_ft", "freeze_depth": 2, "head": "mlp", "head_hidden": 64,
              "dropout": 0.25, "pooling": "attention", "epochs": 3, "head_lr": 1e-3}
    assert cell(DIMENSIONS["strategy"], params) == "lp ft"
    assert cell(DIMENSIONS["head"], params) == "mlp 64 d0.25"
    assert cell(DIMENSIONS["backbone"], params) == "net_a"
    assert cell(DIMENSIONS["head_lr"], params) == "1.0e-03"
    assert cell(DIMENSIONS["backbone_lr"], params) == ""
    assert describe(params) == "net_a · lp ft k=2 · mlp64 · attention · 3 ep"


def test_attention_pooling_ignores_padding_so_an_example_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    pool = AttentionPool(width=8, depth=3)
    torch.nn.init.normal_(pool.query)
    short, long = torch.randn(1, 3, 8), torch.randn(1, 6, 8)
    alone = pool(Hidden(short, torch.ones(1, 3, dtype=torch.bool)))
    padded = torch.cat([torch.cat([short, torch.full((1, 3, 8), 1e3)], dim=1), long])
    mask = torch.tensor([[True] * 3 + [False] * 3, [True] * 6])
    batched = pool(Hidden(padded, mask))
    torch.testing.assert_close(batched[0], alone[0])
    grid = pool(Hidden(torch.randn(2, 8, 3, 3)))  # image activations: H·W positions of C channels
    assert grid.shape == (2, 8)


def test_attention_feature_extraction_reads_the_cached_last_block_and_matches_the_uncached_path(toy_modules):
    toy_modality, toy_network = toy_modules
    examples = toy_modality.synthetic(n_per_class=8, seed=0, noise=0.5)
    backbone = toy_network.build()
    p = TrialParams(backbone="toy-net", strategy="feature_extraction", freeze_depth=3, head="linear", head_lr=3e-3,
                    weight_decay=1e-4, epochs=2, batch_size=8, pooling="attention")
    predictions = []
    for cached in (True, False):
        store = FeatureStore(backbone, {"train": examples[::2], "validation": examples[1::2]}, list(toy_modality.CLASSES))
        store.cached_depths = {3}
        outcome = train_trial(p, store, 3, "accuracy", seed=0, compute=Compute(cached=cached))
        tail = Tail(backbone, p, 3)
        tail.load_state_dict(outcome.state)
        predictions.append(predict(tail, store, "validation", input_mode(p), p, Compute(cached=cached)))
        if cached:
            assert 3 in store._cache["train"].hidden  # the last block's sequence, not a pooled vector
    assert (predictions[0] == predictions[1]).mean() >= 0.9  # fp16 cache against fp32: near-identical


def test_a_new_sequence_pooling_is_one_row_and_one_layer(toy_modules, monkeypatch):
    """What docs/architecture.md promises: declare a pooling and its layer, and recipes, the
    sampler, training and the leaderboard take it, with no other code changed."""
    import dataclasses

    import optuna

    from automl_tl import vocabulary
    from automl_tl.search.space import SearchSpace
    from automl_tl.vocabulary import Pooling, layers

    class MaxPool(torch.nn.Module):
        def __init__(self, width: int, depth: int) -> None:
            super().__init__()

        def forward(self, hidden: Hidden) -> torch.Tensor:
            states, mask = hidden
            return states.masked_fill(~mask[..., None], float("-inf")).amax(dim=1) if mask is not None else states.amax(dim=1)

    monkeypatch.setitem(vocabulary.POOLINGS, "max", Pooling("max", "max", "sequence", layer="max"))
    monkeypatch.setitem(layers.LAYERS, "max", MaxPool)
    monkeypatch.setitem(vocabulary.DIMENSIONS, "pooling",
                        dataclasses.replace(DIMENSIONS["pooling"], allowed=tuple(vocabulary.POOLINGS)))
    config = validate({"modality": "toy", "space": {"pooling": "max", "strategy": "feature_extraction"}}, "recipe")
    toy_modality, toy_network = toy_modules
    backbone = toy_network.build()
    space = SearchSpace.resolve(config.space, backbones=["toy-net"])
    shapes = {"toy-net": vocabulary.BackboneShape(backbone.depth, backbone.uniform_width, False)}
    assert space.cached_depths(backbone.depth) == {backbone.depth}
    p = space.sample(optuna.create_study().ask(), shapes)
    assert p.pooling == "max"
    examples = toy_modality.synthetic(n_per_class=8, seed=0, noise=0.5)
    store = FeatureStore(backbone, {"train": examples[::2], "validation": examples[1::2]}, list(toy_modality.CLASSES))
    outcome = train_trial(p, store, 3, "accuracy", seed=0)
    assert len(outcome.history) == p.epochs and 0 <= outcome.scores["accuracy"] <= 1
    assert isinstance(Tail(backbone, p, 3).layer, MaxPool)
    assert describe(p.to_dict()).endswith(f"· max · {p.epochs} ep")
