"""Trains one trial's tail and scores it on validation every epoch.

Three input paths, fastest first: *pooled* (every block frozen: the head trains on the store's
pooled vectors, a few milliseconds an epoch), *prefix* (the first k blocks frozen: blocks k+1..n
train on the store's cached prefix output) and *live* (the stem trains, or inputs are augmented:
examples go through the whole network). LP-FT runs the pooled path for its linear probe, then the
live path. With caching off (``Compute(cached=False)``, the benchmark's naive arm) the pooled and
prefix inputs are computed afresh for every batch of every epoch, as a hand-wired training loop would.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from automl_tl.errors import TrialFailed, stop_if_asked
from automl_tl.search.adaptation import adapter_for
from automl_tl.search.compute import Compute
from automl_tl.search.epochs import BestEpoch, TrialOutcome
from automl_tl.search.features import FeatureStore, length_batches, pad_hidden
from automl_tl.search.metrics import scores
from automl_tl.search.model import Tail, count_trainable, set_train_mode
from automl_tl.search.validators import target_validator_scores
from automl_tl.threads import torch_threads
from automl_tl.vocabulary import TrialParams
from automl_tl.vocabulary.adaptations import TARGET_PREFIX

LP_EPOCHS = 20
"""Linear-probe epochs before LP-FT's fine-tune: they run on cached pooled features, so they are cheap."""

EpochCallback = Callable[[dict[str, float], dict[str, Tensor], np.ndarray], None]
"""Called after each validated epoch with its history entry (epoch, train loss, every validation
metric, seconds), the tail's weights at that point (to read, not to change) and its validation
predictions (class indices); may raise
`optuna.TrialPruned`, so a pruned trial keeps the same record of its epochs as a completed one, or
`StopTraining`. With a ``first_rung`` below 1 it is first called
part-way through epoch 1, the entry's ``epoch`` being that share of the epoch's batches: a look for
the pruner, not an epoch of the history."""
BatchCallback = Callable[[int, int], None]
"""Called after each training batch with (batches done, batches per epoch): the live view's bar."""


class StopTraining(Exception):
    """Raised by an `EpochCallback` to end training after that epoch: the outcome is the best epoch so far."""


def input_mode(params: TrialParams) -> str:
    """``pooled`` when no block trains, ``prefix`` when the first blocks stay frozen, else ``live``."""
    if not params.transfer.trains_backbone:
        return "pooled"
    if params.freeze_depth >= 1 and not params.augment:
        return "prefix"
    return "live"


def train_trial(
    params: TrialParams,
    store: FeatureStore,
    n_classes: int,
    objective: str,
    seed: int,
    on_epoch: EpochCallback | None = None,
    on_batch: BatchCallback | None = None,
    compute: Compute = Compute(),
    first_rung: float = 1.0,
) -> TrialOutcome:
    """``first_rung``: the share of the first epoch's batches after which ``on_epoch`` first looks (a data rung).
    Without callbacks (a refit, a fold model) the epochs run unwatched."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tail = Tail(store.backbone, params, n_classes)
    mode = input_mode(params)
    head_threads = 1 if compute.cached else torch.get_num_threads()  # head-only: thousands of tiny matrix products
    if params.transfer.probe_first:
        with torch_threads(head_threads):
            _fit(tail, store, params, "pooled", LP_EPOCHS, rng, objective, None, None, head_only=True,
                 compute=compute)
    with torch_threads(head_threads if mode == "pooled" else torch.get_num_threads()):
        outcome = _fit(tail, store, params, mode, params.epochs, rng, objective, on_epoch, on_batch, compute=compute,
                       first_rung=first_rung)
    outcome.trainable_params = count_trainable(tail)
    return outcome


def _fit(
    tail: Tail,
    store: FeatureStore,
    params: TrialParams,
    mode: str,
    epochs: int,
    rng: random.Random,
    objective: str,
    on_epoch: EpochCallback | None,
    on_batch: BatchCallback | None,
    head_only: bool = False,
    compute: Compute = Compute(),
    first_rung: float = 1.0,
) -> TrialOutcome:
    # the target's unlabelled examples train only through the method, and never in LP-FT's probe
    adapter = None if head_only or "target" not in store.examples else adapter_for(params, tail, tail.width)
    groups: list[dict[str, Any]] = [{"params": tail.head_parameters() + (adapter.parameters() if adapter else []),
                                     "lr": params.head_lr}]
    if not head_only and mode != "pooled":
        groups.append({"params": tail.backbone_parameters(), "lr": params.backbone_lr or params.head_lr})
    # fused: one kernel for every parameter; on a CPU several times faster than the per-tensor
    # loop, which otherwise is a large share of a partial fine-tune's time (docs/performance.md has the figure)
    optimizer = torch.optim.AdamW(groups, weight_decay=params.weight_decay, fused=True)
    steps_per_epoch = math.ceil(len(store.examples["train"]) / params.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(steps_per_epoch * epochs))
    labels = store.labels("train")
    target = _endless(tail, store, mode, params, random.Random(rng.getrandbits(32)), compute) if adapter else None
    best: TrialOutcome | None = None
    history: list[dict[str, float]] = []
    truth = store.labels("validation")
    chosen = BestEpoch(objective, truth.numpy(), tail.n_classes)
    look = math.ceil(first_rung * steps_per_epoch) if first_rung < 1 and len(truth) else 0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        set_train_mode(tail, params.batchnorm)
        total_loss, seen = 0.0, 0
        for done, (inputs, index) in enumerate(_batches(tail, store, "train", mode, params, rng, compute.cached)):
            # batches are read outside autocast: stacking the fp16 prefix cache inside a bf16 region fails
            target_inputs = next(target) if adapter and target else None
            with compute.autocast(mode):
                features = _features(tail, mode, inputs)
                logits = tail.head(features)
                extra = 0.0 if adapter is None or target_inputs is None else \
                    adapter.step(features, _features(tail, mode, target_inputs), (epoch - 1 + done / steps_per_epoch) / epochs)
            loss = F.cross_entropy(logits.float(), labels[index]) + extra
            if not torch.isfinite(loss):
                raise TrialFailed(f"loss became {loss.item()} in epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
            seen += len(index)
            stop_if_asked()  # a Ctrl-C or SIGTERM whose exception was lost in a weakref callback: trial, refit or fold model
            if on_batch is not None:
                on_batch(done + 1, steps_per_epoch)
            if epoch == 1 and done + 1 == look < steps_per_epoch and on_epoch is not None:  # the data rung
                looked, seen_predictions = _validated(tail, store, mode, params, compute)
                on_epoch({"epoch": first_rung, **looked}, tail.state_dict(), seen_predictions)
                set_train_mode(tail, params.batchnorm)  # scored: training goes on
        if not store.examples["validation"]:  # a refit: no selection, the last epoch is the model
            history.append({"epoch": epoch, "train_loss": total_loss / max(1, seen), "seconds": time.perf_counter() - started})
            if epoch == epochs:
                best = TrialOutcome({}, epoch, 0, state=tail.state_dict())
            continue
        metrics, predictions = _validated(tail, store, mode, params, compute)
        entry = {"epoch": epoch, "train_loss": total_loss / max(1, seen), **metrics, "seconds": time.perf_counter() - started}
        history.append(entry)
        state = copy.deepcopy(tail.state_dict())
        chosen.add(metrics, state, predictions)
        if on_epoch is not None:
            try:
                on_epoch(dict(entry), state, predictions)
            except StopTraining:
                break
    if best is None:  # trained with validation: the best smoothed epoch, not the last
        best = chosen.outcome()
    best.history = history
    tail.load_state_dict(best.state)
    return best


def _validated(tail: Tail, store: FeatureStore, mode: str, params: TrialParams, compute: Compute) -> tuple[dict[str, float], np.ndarray]:
    """Every validation metric of the tail as it is (and, with a target, the validators'), and its predictions."""
    truth = store.labels("validation")
    placed, probs = outputs(tail, store, "validation", mode, params, compute)
    predictions = probs.argmax(dim=-1).numpy()
    metrics = scores(truth.numpy(), predictions, tail.n_classes)
    if "target" in store.examples:
        metrics.update(target_scores(tail, store, mode, params, compute, (placed, torch.from_numpy(predictions) == truth)))
    return metrics, predictions


def predict(
    tail: Tail, store: FeatureStore, split: str, mode: str, params: TrialParams, compute: Compute = Compute(),
) -> np.ndarray:
    """Predicted class indices for a split, in the split's order."""
    return probabilities([tail], store, split, mode, params, compute).argmax(dim=-1).numpy()


def probabilities(
    tails: Sequence[Tail], store: FeatureStore, split: str, mode: str, params: TrialParams, compute: Compute = Compute(),
) -> Tensor:
    """Predicted class probabilities for a split, in the split's order, averaged over ``tails`` (fold models of one
    configuration): each batch's inputs are read, or computed through the frozen prefix, once for all of them."""
    probs = torch.zeros(len(store.examples[split]), tails[0].n_classes)
    for index, found in _evaluated(tails, store, split, mode, params, compute):
        probs[index] = torch.stack([p for _, p in found]).mean(dim=0)
    return probs


def head_inputs(
    tail: Tail, store: FeatureStore, split: str, mode: str, params: TrialParams, compute: Compute = Compute(),
) -> Tensor:
    """What the head reads for each example of a split, in the split's order: where the model places each example."""
    return outputs(tail, store, split, mode, params, compute)[0]


def outputs(
    tail: Tail, store: FeatureStore, split: str, mode: str, params: TrialParams, compute: Compute = Compute(),
) -> tuple[Tensor, Tensor]:
    """(head inputs, class probabilities) for a split, in the split's order; a target split's go through
    the tail's domain shift, when it has one. One pass for both: DEV needs where the model places the
    examples beside what it predicts, and the report projects the places."""
    count = len(store.examples[split])
    placed, probs = torch.empty(count, 0), torch.empty(count, tail.n_classes)
    for index, [(features, p)] in _evaluated([tail], store, split, mode, params, compute):
        if placed.shape[1] != features.shape[1]:
            placed = torch.empty(count, features.shape[1])
        placed[index] = features
        probs[index] = p
    return placed, probs


def _evaluated(
    tails: Sequence[Tail], store: FeatureStore, split: str, mode: str, params: TrialParams, compute: Compute,
) -> Iterator[tuple[Tensor, list[tuple[Tensor, Tensor]]]]:
    """Per batch of a split: (example indices, each tail's (head inputs, class probabilities))."""
    for tail in tails:
        tail.eval()
    target = split.startswith("target")
    with torch.inference_mode():
        for inputs, index in _batches(tails[0], store, split, mode, params, None, compute.cached):
            found = []
            with compute.autocast(mode):  # the tails only: the store's own pass (if due) stays fp32
                for tail in tails:
                    features = tail.head_input(_features(tail, mode, inputs), target)
                    found.append((features.float(), tail.head(features).float().softmax(dim=-1)))
            yield index, found


def target_scores(
    tail: Tail, store: FeatureStore, mode: str, params: TrialParams, compute: Compute, source: tuple[Tensor, Tensor],
) -> dict[str, float]:
    """Every validator on the unlabelled target, and the ``target_`` scores of its labelled examples
    when the user set some aside (no other split's labels are read). ``source``: the source validation
    examples' head inputs and whether each was predicted right, which DEV weighs."""
    placed, probs = outputs(tail, store, "target", mode, params, compute)
    metrics = target_validator_scores(probs, placed, *source)
    if store.examples.get("target_validation"):
        predicted = predict(tail, store, "target_validation", mode, params, compute)
        labelled = scores(store.labels("target_validation").numpy(), predicted, tail.n_classes)
        metrics.update({TARGET_PREFIX + name: value for name, value in labelled.items()})
    return metrics


def _features(tail: Tail, mode: str, inputs: dict[str, Any]) -> Tensor:
    """The head's input for a batch."""
    if mode == "pooled":
        return tail.frozen_features(inputs["prefix_pooled"], inputs["default_pooled"], inputs.get("hidden"))
    return tail.features(**inputs)


def _endless(
    tail: Tail, store: FeatureStore, mode: str, params: TrialParams, rng: random.Random, compute: Compute,
) -> Iterator[dict[str, Any]]:
    """Shuffled target batches, epoch after epoch, for as many training steps as there are."""
    while True:
        yield from (inputs for inputs, _ in _batches(tail, store, "target", mode, params, rng, compute.cached))


def _batches(
    tail: Tail, store: FeatureStore, split: str, mode: str, params: TrialParams, rng: random.Random | None,
    cached: bool = True,
) -> Iterator[tuple[dict[str, Any], Tensor]]:
    """``(tail inputs, example indices)`` per batch; shuffled when ``rng`` is given (training)."""
    n = len(store.examples[split])
    blocks = tail.pooling.reads == "blocks"
    if not cached and mode != "live":
        depth = store.backbone.depth if mode == "pooled" else params.freeze_depth
        for batch in length_batches(store.lengths(split), params.batch_size, rng):
            yield store.forward(split, batch, depth, weighted=blocks), torch.tensor(batch)
        return
    if mode == "pooled" and tail.pooling.reads == "sequence":  # the last block's whole output, re-padded
        hidden = store.hidden(split, store.backbone.depth)
        for batch in length_batches(store.lengths(split), params.batch_size if rng is not None else 256, rng):
            inputs = {"hidden": pad_hidden([hidden[i] for i in batch], bool(store.has_mask))}
            yield {**inputs, "prefix_pooled": None, "default_pooled": None}, torch.tensor(batch)
        return
    if mode == "pooled":
        pooled, default = store.pooled(split)
        prefix = torch.stack(pooled, dim=1) if blocks else pooled[-1]
        order = list(range(n))
        if rng is not None:
            rng.shuffle(order)
        size = params.batch_size if rng is not None else 4096
        for start in range(0, n, size):
            index = torch.tensor(order[start : start + size])
            yield {"prefix_pooled": prefix[index], "default_pooled": default[index]}, index
        return
    batch_size = params.batch_size
    batches = length_batches(store.lengths(split), batch_size, rng)
    if mode == "prefix":
        freeze_depth = params.freeze_depth
        hidden = store.hidden(split, freeze_depth)
        pooled = torch.stack(store.pooled(split)[0][:freeze_depth], dim=1) if blocks else None
        for batch in batches:
            index = torch.tensor(batch)
            yield {
                "hidden": pad_hidden([hidden[i] for i in batch], bool(store.has_mask)),
                "prefix_pooled": pooled[index] if pooled is not None else None,
            }, index
        return
    preprocessor = store.backbone.preprocessor
    raws = store.raws(split)
    inputs = store.inputs(split)
    for batch in batches:
        if rng is not None and params.augment:
            features = [preprocessor.transform(raws[i], True) for i in batch]
        else:
            features = [inputs[i] for i in batch]
        yield {"hidden": None, "batch": preprocessor.collate(features)}, torch.tensor(batch)


def _warmup_cosine(total_steps: int, warmup_fraction: float = 0.06) -> Callable[[int], float]:
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
