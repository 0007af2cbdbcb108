"""Work shared by every trial of a search: decoded examples, preprocessed inputs, frozen-prefix outputs.

On a CPU the cost of a transfer search is almost all forward passes through the pretrained
backbone, and most trials would recompute the same ones. The store computes each once: one pass
(no grad, eval mode, batches of similar length) gives every block's mean-pooled output and the
backbone's own pooling, which is all a feature-extraction trial needs, plus the unpadded output of
the frozen prefix at the freeze depths trials ask for, kept in fp16. Given a `DiskCache`
(the run directory's), what it computes is also written there, so a resumed run or a second
worker on the same machine reads it instead of computing it again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from automl_tl.backbone import Backbone, Hidden, lengths_to_mask, mean_pool
from automl_tl.contract import Example
from automl_tl.search.cache import DiskCache, cache_key, data_fingerprint

INPUT_CACHE_BYTES = 1 << 30
"""Preprocessed inputs larger than this (e.g. thousands of 224 px images as floats) are rebuilt per batch."""
PREFIX_CACHE_BYTES = 3 << 30
"""Prefix outputs kept from the first pass, all planned depths together, at most this size."""

ProgressFn = Callable[[str, int, int], None]
"""``(what, done, total)``: the store reports long work through this."""


@dataclass
class _SplitCache:
    raws: list[Any] | None = None
    inputs: list[dict[str, Tensor]] | None = None
    pooled: list[Tensor] | None = None
    default: Tensor | None = None
    hidden: dict[int, list[Tensor]] = field(default_factory=dict)

    def subset(self, index: Sequence[int]) -> _SplitCache:
        """The same cached work for the examples at ``index``, in that order."""
        rows = torch.tensor(list(index), dtype=torch.long)
        return _SplitCache(
            raws=[self.raws[i] for i in index] if self.raws is not None else None,
            inputs=[self.inputs[i] for i in index] if self.inputs is not None else None,
            pooled=[t[rows] for t in self.pooled] if self.pooled is not None else None,
            default=self.default[rows] if self.default is not None else None,
            hidden={depth: [tensors[i] for i in index] for depth, tensors in self.hidden.items()},
        )


class FeatureStore:
    """Per-split caches for one backbone; trials read from it and never write."""

    def __init__(
        self,
        backbone: Backbone,
        splits: dict[str, list[Example]],
        classes: Sequence[str],
        progress: ProgressFn | None = None,
        batch_size: int = 32,
        disk: DiskCache | None = None,
        code: str = "",
    ) -> None:
        self.backbone = backbone
        self.code = code
        """The plugin code that built the backbone (`automl_tl.provenance`): part of every disk cache key,
        since a plugin's fix rarely changes the fingerprints its author wrote."""
        self.examples = splits
        self.class_index = {c: i for i, c in enumerate(classes)}
        self.progress = progress or (lambda what, done, total: None)
        self.batch_size = batch_size
        self._cache = {name: _SplitCache() for name in splits}
        self.disk = disk
        self._data_keys: dict[str, str] = {}
        self.cached_depths: set[int] = set()
        """Freeze depths the search's trials may ask for: kept by the first pass when they fit in memory."""
        self.has_mask: bool | None = None
        self.passes = 0
        """Forward passes made so far (a test and the benchmark read it)."""

    def merged(self, parts: Sequence[str], into: str = "train") -> FeatureStore:
        """A store whose ``into`` split is ``parts`` joined (e.g. train + validation for a refit).

        Cached work of the parts is joined too, so a refit costs no extra backbone pass; the
        other splits are shared as they are, and the new store has an empty validation split.
        """
        splits = {name: examples for name, examples in self.examples.items() if name not in parts}
        splits[into] = [e for part in parts for e in self.examples[part]]
        splits.setdefault("validation", [])
        store = FeatureStore(self.backbone, splits, list(self.class_index), self.progress, self.batch_size, code=self.code)
        store.cached_depths, store.has_mask = self.cached_depths, self.has_mask
        for name in splits:
            store._cache[name] = self._cache[name] if name in self._cache and name not in parts else _SplitCache()
        caches = [self._cache[part] for part in parts]
        joined = store._cache[into]
        if all(c.raws is not None for c in caches):
            joined.raws = [r for c in caches for r in c.raws or []]
        if all(c.inputs is not None for c in caches):
            joined.inputs = [x for c in caches for x in c.inputs or []]
        if all(c.pooled is not None and c.default is not None for c in caches):
            joined.pooled = [torch.cat(blocks) for blocks in zip(*(c.pooled or [] for c in caches), strict=True)]
            joined.default = torch.cat([c.default for c in caches if c.default is not None])
        for depth in set.intersection(*(set(c.hidden) for c in caches)):
            joined.hidden[depth] = [t for c in caches for t in c.hidden[depth]]
        return store

    def folded(self, split: str, train: Sequence[int], heldout: Sequence[int]) -> FeatureStore:
        """A store that trains on the examples of ``split`` at ``train`` and predicts those at ``heldout``.

        For cross-validation on train + validation (`merged`): the cached work is sliced, not
        recomputed, so a fold of a cached configuration costs its training only. Its validation
        split is empty, so training keeps its last epoch (nothing is chosen on the held-out fold).
        """
        examples = self.examples[split]
        splits = {"train": [examples[i] for i in train], "validation": [], "heldout": [examples[i] for i in heldout]}
        store = FeatureStore(self.backbone, splits, list(self.class_index), self.progress, self.batch_size)
        store.cached_depths, store.has_mask = self.cached_depths, self.has_mask
        store._cache = {"train": self._cache[split].subset(train), "validation": _SplitCache(raws=[], inputs=[]),
                        "heldout": self._cache[split].subset(heldout)}
        return store

    def labels(self, split: str) -> Tensor:
        return torch.tensor([self.class_index[e.label] for e in self.examples[split]], dtype=torch.long)

    def raws(self, split: str) -> list[Any]:
        cache = self._cache[split]
        if cache.raws is None:
            examples = self.examples[split]
            raws = []
            for i, example in enumerate(examples):
                raws.append(self.backbone.preprocessor.load(example.item))
                if i % 64 == 0:
                    self.progress(f"reading {split} data", i, len(examples))
            cache.raws = raws
        return cache.raws

    def inputs(self, split: str) -> Sequence[dict[str, Tensor]]:
        """Preprocessed, un-augmented inputs: kept when they fit `INPUT_CACHE_BYTES`, else made on demand."""
        cache = self._cache[split]
        if cache.inputs is None:
            raws = self.raws(split)
            transform = self.backbone.preprocessor.transform
            first = transform(raws[0], False)
            size = sum(t.numel() * t.element_size() for t in first.values()) * len(raws)
            if size > INPUT_CACHE_BYTES:
                return _OnDemand(raws, transform)
            cache.inputs = [first] + [transform(raw, False) for raw in raws[1:]]
        return cache.inputs

    def lengths(self, split: str) -> list[int]:
        length = self.backbone.preprocessor.length
        return [length(raw) for raw in self.raws(split)]

    def pooled(self, split: str) -> tuple[list[Tensor], Tensor]:
        """Every block's mean-pooled output ((N, D_b) each) and the backbone's own pooling (N, width)."""
        cache = self._cache[split]
        if cache.pooled is None and not self._load_pooled(split):
            missing = {d for d in self.cached_depths if d not in cache.hidden and not self._load_hidden(split, d)}
            self._pass(split, keep=missing, full=True)
        assert cache.pooled is not None and cache.default is not None
        return cache.pooled, cache.default

    def hidden(self, split: str, depth: int) -> list[Tensor]:
        """Each example's unpadded output of the stem and the first ``depth`` blocks (fp16)."""
        cache = self._cache[split]
        if depth not in cache.hidden and not self._load_hidden(split, depth):
            self._pass(split, keep={depth}, full=cache.pooled is None)
        return cache.hidden[depth]

    @torch.no_grad()
    def forward(self, split: str, batch: Sequence[int], depth: int, weighted: bool) -> dict[str, Any]:
        """What the cache would give a trial, computed afresh for one batch (caching off).

        ``hidden`` is the output of the first ``depth`` blocks; ``prefix_pooled`` every block's
        mean (B, depth, D) for weighted pooling, else the last one's; ``default_pooled`` the
        backbone's own pooling when every block ran.
        """
        backbone = self.backbone
        backbone.eval()
        inputs = self.inputs(split)
        hidden = backbone.stem(backbone.preprocessor.collate([inputs[i] for i in batch]))
        means = []
        for block in backbone.blocks[:depth]:
            hidden = block(hidden)
            means.append(mean_pool(hidden))
        return {
            "hidden": hidden,
            "prefix_pooled": torch.stack(means, dim=1) if weighted else means[-1] if means else None,
            "default_pooled": backbone.pool(hidden) if depth == backbone.depth else None,
        }

    def _key(self, split: str, what: str) -> str:
        if split not in self._data_keys:
            self._data_keys[split] = data_fingerprint(self.examples[split])
        return cache_key(self.code, self.backbone.fingerprint, self.backbone.preprocessor.fingerprint, self._data_keys[split], what)

    def _load_pooled(self, split: str) -> bool:
        arrays = self.disk.load(self._key(split, "pooled")) if self.disk is not None else None
        if arrays is None:
            return False
        cache = self._cache[split]
        cache.pooled = [torch.from_numpy(arrays[f"block{d}"]) for d in range(1, self.backbone.depth + 1)]
        cache.default = torch.from_numpy(arrays["default"])
        return True

    def _load_hidden(self, split: str, depth: int) -> bool:
        arrays = self.disk.load(self._key(split, f"prefix{depth}")) if self.disk is not None else None
        if arrays is None:
            return False
        flat, offsets = torch.from_numpy(arrays["states"]), arrays["offsets"].tolist()
        self._cache[split].hidden[depth] = [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        self.has_mask = bool(arrays["has_mask"][0])
        return True

    def _save(self, split: str, depths: set[int], pooled: bool) -> None:
        """Write what a pass computed, then read it back memory-mapped so RAM holds it only as page cache."""
        if self.disk is None:
            return
        cache = self._cache[split]
        if pooled and cache.pooled is not None and cache.default is not None:
            arrays = {f"block{d}": t.numpy() for d, t in enumerate(cache.pooled, start=1)}
            if self.disk.save(self._key(split, "pooled"), {**arrays, "default": cache.default.numpy()}):
                self._load_pooled(split)
        for depth in depths:
            tensors = cache.hidden[depth]
            if not tensors:
                continue
            offsets = np.cumsum([0] + [t.shape[0] for t in tensors])
            arrays = {"states": torch.cat(tensors).numpy(), "offsets": offsets, "has_mask": np.array([bool(self.has_mask)])}
            if self.disk.save(self._key(split, f"prefix{depth}"), arrays):
                self._load_hidden(split, depth)

    @torch.inference_mode()
    def _pass(self, split: str, keep: set[int], full: bool) -> None:
        backbone = self.backbone
        backbone.eval()
        inputs = self.inputs(split)
        last = backbone.depth if full else max(keep)
        kept: dict[int, list[Tensor | None]] = {d: [None] * len(inputs) for d in keep}
        pooled: list[list[Tensor]] = [[] for _ in range(backbone.depth)]
        default: list[Tensor] = []
        order: list[int] = []
        batches = list(length_batches(self.lengths(split), self.batch_size))
        for done, batch_idx in enumerate(batches):
            self.progress(f"frozen backbone pass ({split})", done, len(batches))
            hidden = backbone.stem(backbone.preprocessor.collate([inputs[i] for i in batch_idx]))
            self.has_mask = hidden.mask is not None
            for depth in range(1, last + 1):
                hidden = backbone.blocks[depth - 1](hidden)
                if full:
                    pooled[depth - 1].append(mean_pool(hidden).float())
                if depth in kept:
                    for row, example_idx in enumerate(batch_idx):
                        kept[depth][example_idx] = unpad(hidden, row)
            if done == 0 and len(kept) > 1:
                _fit_budget(kept, batch_idx, len(inputs), required=keep - self.cached_depths)
            if full:
                default.append(backbone.pool(hidden).float())
            order.extend(batch_idx)
        self.progress(f"frozen backbone pass ({split})", len(batches), len(batches))
        self.passes += 1
        cache = self._cache[split]
        if full:
            inverse = torch.empty(len(order), dtype=torch.long)
            inverse[torch.tensor(order)] = torch.arange(len(order))
            cache.pooled = [torch.cat(p)[inverse] for p in pooled]
            cache.default = torch.cat(default)[inverse]
        for depth, tensors in kept.items():
            cache.hidden[depth] = [t for t in tensors if t is not None]
        self._save(split, set(kept), pooled=full)


def _fit_budget(kept: dict[int, list[Tensor | None]], first: list[int], total: int, required: set[int]) -> None:
    """After the first batch, stop keeping the shallowest optional depths that would not fit in memory.

    Deeper prefixes are kept first: they leave the fewest blocks to train, so trials starting
    from them are the cheapest.
    """
    per_depth = {
        d: sum(t.numel() * t.element_size() for i in first if (t := tensors[i]) is not None) * total / len(first)
        for d, tensors in kept.items()
    }
    budget = PREFIX_CACHE_BYTES - sum(per_depth[d] for d in required if d in per_depth)
    for depth in sorted(set(kept) - required, reverse=True):
        budget -= per_depth[depth]
        if budget < 0:
            del kept[depth]


class _OnDemand(Sequence[dict[str, Tensor]]):
    """Preprocessed inputs made when indexed, for datasets too large to keep preprocessed."""

    def __init__(self, raws: list[Any], transform: Callable[[Any, bool], dict[str, Tensor]]) -> None:
        self.raws = raws
        self.transform = transform

    def __len__(self) -> int:
        return len(self.raws)

    def __getitem__(self, index: int) -> dict[str, Tensor]:  # type: ignore[override]
        return self.transform(self.raws[index], False)


def unpad(hidden: Hidden, row: int) -> Tensor:
    """One example's activations without padding, in fp16 to halve the cache."""
    states = hidden.states[row]
    if hidden.mask is not None:
        states = states[hidden.mask[row]]
    return states.to(torch.float16).clone()


def pad_hidden(tensors: Sequence[Tensor], has_mask: bool) -> Hidden:
    """Re-batch unpadded activations (the inverse of `unpad`), back in float32."""
    if not has_mask:
        return Hidden(torch.stack(list(tensors)).float(), None)
    lengths = torch.tensor([t.shape[0] for t in tensors])
    states = pad_sequence(list(tensors), batch_first=True).float()
    return Hidden(states, lengths_to_mask(lengths, states.shape[1]))


def length_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random | None = None
) -> Iterator[list[int]]:
    """Batches of indices with similar lengths, so padding does not dominate the compute.

    With ``rng`` (training) the order within equal lengths and the order of batches are shuffled.
    """
    indices = list(range(len(lengths)))
    if rng is None:
        indices.sort(key=lambda i: lengths[i])
    else:
        # shuffled first, so equal lengths (fixed-size images) do not keep the class-grouped order;
        # jittered, so batches stay compact but are not all one class when length tracks the label
        rng.shuffle(indices)
        jitter = [length * rng.uniform(0.85, 1.15) for length in lengths]
        indices.sort(key=lambda i: jitter[i])
    batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    yield from batches
