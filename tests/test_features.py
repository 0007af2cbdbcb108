"""The feature store: cached frozen-prefix work equals a fresh forward pass, computed once."""

from __future__ import annotations

import random

import pytest
import torch

from automl_tl.backbone import Backbone, Hidden, mean_pool
from automl_tl.contract import Example
from automl_tl.search.features import FeatureStore, length_batches, pad_hidden
from automl_tl.search.model import Tail
from automl_tl.search.space import TrialParams

FP16 = {"atol": 2e-2, "rtol": 1e-2}
FP32 = {"atol": 1e-5, "rtol": 1e-4}


def make_store(backbone: Backbone, examples: list[Example], batch_size: int = 6) -> FeatureStore:
    half = len(examples) // 2
    return FeatureStore(backbone, {"train": examples[:half], "validation": examples[half:]}, ["a", "b", "c"], batch_size=batch_size)


@torch.inference_mode()
def alone(backbone: Backbone, example: Example) -> list[Hidden]:
    """Each block's output for one example run by itself (a batch of one: no padding)."""
    backbone.eval()
    pre = backbone.preprocessor
    hidden = backbone.stem(pre.collate([pre.transform(pre.load(example.item), False)]))
    outputs = []
    for block in backbone.blocks:
        hidden = block(hidden)
        outputs.append(hidden)
    return outputs


def test_lengths_really_vary_so_batches_are_padded(examples):
    lengths = {len(e.item) for e in examples}
    assert len(lengths) > 3


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_cached_prefix_equals_a_fresh_forward_pass_per_example(backbone, examples, depth):
    store = make_store(backbone, examples)
    cached = store.hidden("train", depth)
    assert len(cached) == len(store.examples["train"])
    for example, tensor in zip(store.examples["train"], cached, strict=True):
        expected = alone(backbone, example)[depth - 1].states[0]
        assert tensor.dtype == torch.float16
        assert tensor.shape == (len(example.item), expected.shape[-1])  # unpadded
        torch.testing.assert_close(tensor.float(), expected, **FP16)


def test_pooled_outputs_equal_a_fresh_forward_pass_per_example(backbone, examples):
    store = make_store(backbone, examples)
    pooled, default = store.pooled("validation")
    assert len(pooled) == backbone.depth
    for i, example in enumerate(store.examples["validation"]):
        outputs = alone(backbone, example)
        for block, hidden in enumerate(outputs):
            torch.testing.assert_close(pooled[block][i], mean_pool(hidden)[0], **FP32)
        torch.testing.assert_close(default[i], backbone.pool(outputs[-1])[0], **FP32)


def test_batch_composition_does_not_change_any_example(backbone, examples):
    """Blocks honour the mask: an example padded in a batch of long ones gives what it gives alone."""
    one = make_store(backbone, examples, batch_size=1)
    many = make_store(backbone, examples, batch_size=64)
    for a, b in zip(one.pooled("train")[0], many.pooled("train")[0], strict=True):
        torch.testing.assert_close(a, b, **FP32)
    for a, b in zip(one.hidden("train", 2), many.hidden("train", 2), strict=True):
        torch.testing.assert_close(a.float(), b.float(), **FP16)


def test_repadded_cache_gives_each_example_its_own_result(backbone, examples):
    store = make_store(backbone, examples)
    cached = store.hidden("train", 1)
    batch = pad_hidden(cached, has_mask=bool(store.has_mask))
    assert batch.mask is not None and batch.mask.sum(dim=1).tolist() == [len(t) for t in cached]
    with torch.inference_mode():
        out = backbone.blocks[1](batch)
    for row, example in enumerate(store.examples["train"]):
        expected = alone(backbone, example)[1].states[0]
        torch.testing.assert_close(out.states[row][: len(example.item)], expected, **FP16)
        assert out.states[row][len(example.item) :].abs().sum().item() == 0  # padding stays padding


def test_a_tail_on_the_cached_prefix_equals_the_whole_network(backbone, examples):
    params = TrialParams(backbone="toy-net", strategy="partial", freeze_depth=1, head_lr=1e-3, weight_decay=0.0,
                         epochs=1, batch_size=8, head="linear", pooling="mean")
    tail = Tail(backbone, params, n_classes=3).eval()
    store = make_store(backbone, examples)
    with torch.inference_mode():
        features = tail.features(pad_hidden(store.hidden("train", 1), bool(store.has_mask)))
        for row, example in enumerate(store.examples["train"]):
            torch.testing.assert_close(features[row], mean_pool(alone(backbone, example)[-1])[0], **FP16)


def test_each_depth_costs_one_pass_and_repeats_are_free(backbone, examples):
    store = make_store(backbone, examples)
    assert store.passes == 0
    store.pooled("train")
    assert store.passes == 1
    store.pooled("train")
    assert store.passes == 1
    store.hidden("train", 2)
    assert store.passes == 2  # depth 2 was not planned, so it needs its own pass
    store.hidden("train", 2)
    assert store.passes == 2
    store.hidden("validation", 2)
    assert store.passes == 3  # another split is another pass


def test_first_hidden_pass_also_gives_the_pooled_outputs(backbone, examples):
    store = make_store(backbone, examples)
    store.hidden("train", 1)
    store.pooled("train")
    assert store.passes == 1


def test_cached_depths_come_with_the_first_pass(backbone, examples):
    store = make_store(backbone, examples)
    store.cached_depths = {1, 2}
    store.pooled("train")
    store.hidden("train", 1)
    store.hidden("train", 2)
    assert store.passes == 1
    store.hidden("train", 3)
    assert store.passes == 2


def test_merged_store_joins_cached_work_without_a_pass(backbone, examples):
    store = make_store(backbone, examples)
    store.cached_depths = {1}
    for split in ("train", "validation"):
        store.pooled(split)
    passes = store.passes
    merged = store.merged(["train", "validation"])
    assert merged.examples["train"] == store.examples["train"] + store.examples["validation"]
    assert merged.examples["validation"] == []
    pooled, default = merged.pooled("train")
    torch.testing.assert_close(pooled[0], torch.cat([store.pooled("train")[0][0], store.pooled("validation")[0][0]]))
    assert default.shape[0] == len(examples)
    assert len(merged.hidden("train", 1)) == len(examples)
    assert merged.labels("train").tolist() == store.labels("train").tolist() + store.labels("validation").tolist()
    assert store.passes == passes and merged.passes == 0


def test_length_batches_cover_every_index_once_and_group_similar_lengths():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]
    batches = list(length_batches(lengths, 3))
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert [[lengths[i] for i in b] for b in batches] == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    shuffled = list(length_batches(lengths, 3, random.Random(0)))
    assert sorted(i for b in shuffled for i in b) == list(range(10))


def test_training_batches_mix_classes_when_lengths_are_equal() -> None:
    """Fixed-size inputs (images) report length 0; a class-grouped list must still be shuffled."""
    import random

    from automl_tl.search.features import length_batches

    labels = [i // 40 for i in range(120)]  # three classes, grouped as a stratified split leaves them
    batches = list(length_batches([0] * 120, 8, random.Random(0)))
    mixed = sum(len({labels[i] for i in batch}) > 1 for batch in batches)
    assert mixed >= len(batches) * 0.8
    assert sorted(i for b in batches for i in b) == list(range(120))
