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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from automl_tl.errors import TrialFailed
from automl_tl.search.features import FeatureStore, length_batches, pad_hidden
from automl_tl.search.metrics import scores
from automl_tl.search.model import Tail, count_trainable, set_train_mode
from automl_tl.vocabulary import TrialParams


@dataclass(frozen=True)
class Compute:
    """How a trial's arithmetic is carried out, as opposed to what it computes."""

    cached: bool = True
    """Read pooled and prefix inputs from the store; off, recompute them every batch."""
    bf16: bool = False
    """Run the trainable backbone blocks under bfloat16 autocast (weights and optimiser stay fp32).

    Where the CPU has native bf16 (AVX512-BF16, AMX) a fine-tuning step is markedly faster
    (docs/performance.md, "Figures behind the code's choices"). Head-only training stays fp32: its
    matrices are too small to gain.
    """

    def autocast(self, mode: str) -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16 and mode != "pooled")


def resolve_bf16(precision: str) -> bool:
    """``auto`` is bf16 exactly where the CPU computes it natively (emulated bf16 is slower than fp32)."""
    if precision != "auto":
        return precision == "bf16"
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


LP_EPOCHS = 20
"""Linear-probe epochs before LP-FT's fine-tune: they run on cached pooled features, so they are cheap."""

EpochCallback = Callable[[dict[str, float]], None]
"""Called after each validated epoch with its history entry (epoch, train loss, every validation
metric, seconds); may raise `optuna.TrialPruned`, so a pruned trial keeps the same record of its
epochs as a completed one, or `StopTraining`."""


class StopTraining(Exception):
    """Raised by an `EpochCallback` to end training after that epoch: the outcome is the best epoch so far."""
BatchCallback = Callable[[int, int], None]


@dataclass
class TrialOutcome:
    scores: dict[str, float]
    """Validation metrics of the best epoch (best by the smoothed curve, see `smoothed`)."""
    best_epoch: int
    trainable_params: int
    history: list[dict[str, float]] = field(default_factory=list)
    state: dict[str, Tensor] = field(default_factory=dict)
    """The tail's weights at the best epoch."""
    predictions: np.ndarray | None = None
    """Validation predictions (class indices) of the best epoch: selection compares trials on them."""


def smoothed(curve: list[float], index: int) -> float:
    """Epoch ``index``'s validation score averaged with its neighbours' (one each side, where they exist).

    The best epoch is chosen on this, not on the raw curve: on a few hundred validation examples
    one epoch's score jumps by a standard error or two, and the best epoch decides both the
    trial's checkpoint and how long the refit trains; a one-epoch spike would otherwise cut the
    refit short (the CIFAR case in docs/performance.md, "Figures behind the code's choices").
    """
    window = curve[max(0, index - 1) : index + 2]
    return sum(window) / len(window)


def best_epoch(curve: list[float]) -> int:
    """Index of the epoch with the best `smoothed` score, the earliest on a tie.

    Every trial's recorded score is its raw score at this epoch: a pruned trial's partial curve
    is judged like a completed one's, so the leaderboard compares like with like.
    """
    return max(range(len(curve)), key=lambda i: (smoothed(curve, i), -i))


class _BestEpoch:
    """The epoch `best_epoch` picks, and its weights, kept while the trial trains.

    An epoch is judged once the next epoch's score is in (its right neighbour in the smoothing
    window), so at most two copies of the weights are held: the best so far and the last epoch's.
    """

    def __init__(self, objective: str) -> None:
        self.objective = objective
        self.metrics: list[dict[str, float]] = []
        self.predictions: list[np.ndarray] = []
        self.waiting: dict[str, Tensor] | None = None
        self.best: TrialOutcome | None = None
        self.best_score = -math.inf

    def add(self, metrics: dict[str, float], state: dict[str, Tensor], predictions: np.ndarray) -> None:
        self.metrics.append(metrics)
        self.predictions.append(predictions)
        if self.waiting is not None:
            self._judge(len(self.metrics) - 2, self.waiting)
        self.waiting = state

    def outcome(self) -> TrialOutcome:
        if self.waiting is not None:
            self._judge(len(self.metrics) - 1, self.waiting)
            self.waiting = None
        assert self.best is not None, "no epoch was scored"
        return self.best

    def _judge(self, index: int, state: dict[str, Tensor]) -> None:
        score = smoothed([m[self.objective] for m in self.metrics], index)
        if score > self.best_score:
            self.best_score = score
            self.best = TrialOutcome(self.metrics[index], index + 1, 0, state=state, predictions=self.predictions[index])


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
    on_epoch: EpochCallback,
    on_batch: BatchCallback,
    compute: Compute = Compute(),
) -> TrialOutcome:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tail = Tail(store.backbone, params, n_classes)
    mode = input_mode(params)
    head_threads = 1 if compute.cached else torch.get_num_threads()
    if params.transfer.probe_first:
        with _threads(head_threads):
            _fit(tail, store, params, "pooled", LP_EPOCHS, rng, objective, None, lambda i, n: None, head_only=True,
                 compute=compute)
    with _threads(head_threads if mode == "pooled" else torch.get_num_threads()):
        outcome = _fit(tail, store, params, mode, params.epochs, rng, objective, on_epoch, on_batch, compute=compute)
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
    on_batch: BatchCallback,
    head_only: bool = False,
    compute: Compute = Compute(),
) -> TrialOutcome:
    groups: list[dict[str, Any]] = [{"params": tail.head_parameters(), "lr": params.head_lr}]
    if not head_only and mode != "pooled":
        groups.append({"params": tail.backbone_parameters(), "lr": params.backbone_lr or params.head_lr})
    # fused: one kernel for every parameter; on a CPU several times faster than the per-tensor
    # loop, which otherwise is a large share of a partial fine-tune's time (docs/performance.md has the figure)
    optimizer = torch.optim.AdamW(groups, weight_decay=params.weight_decay, fused=True)
    steps_per_epoch = math.ceil(len(store.examples["train"]) / params.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(steps_per_epoch * epochs))
    labels = store.labels("train")
    best: TrialOutcome | None = None
    history: list[dict[str, float]] = []
    chosen = _BestEpoch(objective)
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        set_train_mode(tail, params.batchnorm)
        total_loss, seen = 0.0, 0
        for done, (inputs, index) in enumerate(_batches(tail, store, "train", mode, params, rng, compute.cached)):
            with compute.autocast(mode):
                logits = _logits(tail, mode, inputs)
            loss = F.cross_entropy(logits.float(), labels[index])
            if not torch.isfinite(loss):
                raise TrialFailed(f"loss became {loss.item()} in epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
            seen += len(index)
            on_batch(done + 1, steps_per_epoch)
        if not store.examples["validation"]:  # a refit: no selection, the last epoch is the model
            history.append({"epoch": epoch, "train_loss": total_loss / max(1, seen), "seconds": time.perf_counter() - started})
            if epoch == epochs:
                best = TrialOutcome({}, epoch, 0, state=tail.state_dict())
            continue
        predictions = predict(tail, store, "validation", mode, params, compute)
        metrics = scores(store.labels("validation").numpy(), predictions, tail.n_classes)
        entry = {"epoch": epoch, "train_loss": total_loss / max(1, seen), **metrics, "seconds": time.perf_counter() - started}
        history.append(entry)
        chosen.add(metrics, copy.deepcopy(tail.state_dict()), predictions)
        if on_epoch is not None:
            try:
                on_epoch(dict(entry))
            except StopTraining:
                break
    if best is None:  # trained with validation: the best smoothed epoch, not the last
        best = chosen.outcome()
    best.history = history
    tail.load_state_dict(best.state)
    return best


def predict(
    tail: Tail, store: FeatureStore, split: str, mode: str, params: TrialParams, compute: Compute = Compute(),
) -> np.ndarray:
    """Predicted class indices for a split, in the split's order."""
    tail.eval()
    predictions = np.empty(len(store.examples[split]), dtype=np.int64)
    with torch.inference_mode():
        for inputs, index in _batches(tail, store, split, mode, params, None, compute.cached):
            with compute.autocast(mode):  # the tail only: the store's own pass (if due) stays fp32
                logits = _logits(tail, mode, inputs)
            predictions[index.numpy()] = logits.argmax(dim=-1).numpy()
    return predictions


def _logits(tail: Tail, mode: str, inputs: dict[str, Any]) -> Tensor:
    if mode == "pooled":
        return tail.head(tail.frozen_features(inputs["prefix_pooled"], inputs["default_pooled"], inputs.get("hidden")))
    return tail(**inputs)


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


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` intra-op threads.

    Head-only training is thousands of tiny matrix products; thread hand-offs cost more than
    they save (docs/performance.md has the figures).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _warmup_cosine(total_steps: int, warmup_fraction: float = 0.06) -> Callable[[int], float]:
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
