"""Checks of a built backbone against the network side of the contract (`automl_tl.backbone`).

Each problem is one line that names the part at fault (the stem, ``block 2 (ConvBlock)``, the
pooling) and says what to fix. The core relies on three things no type checker sees: the
activation layout, each block's width as declared in ``block_widths``, and masks being honoured
(an example's output may not depend on what else is in its batch, or the frozen-prefix cache,
which stores each example unpadded and re-batches it in any order, changes the results).
`preflight` is the cheap part the search runs before its first trial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from automl_tl.backbone import Backbone, Hidden, mean_pool
from automl_tl.registry import where

TOLERANCE = 1e-3
"""Largest difference, relative to the output's magnitude (at least 1), an example's output may
show alone and batched: far above float32 rounding, far below a leaked padding position."""
SAMPLE = 16
"""Examples loaded to find a short and a long one (lengths come from ``preprocessor.length``)."""


class Stop(Exception):
    """A problem after which the remaining network checks would only repeat it."""


def pick(backbone: Backbone, items: Sequence[Any]) -> tuple[Any, Any]:
    """Loaded raws of a short and a long example among the first `SAMPLE` items (spread over the list)."""
    step = max(1, len(items) // SAMPLE)
    chosen = list(items[::step][:SAMPLE])
    pre = backbone.preprocessor
    raws = [_call("preprocessor.load()", pre.load, item) for item in chosen]
    lengths = [_call("preprocessor.length()", pre.length, raw) for raw in raws]
    for length in lengths:
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise Stop(f"preprocessor.length() returned {length!r}, not a whole number ≥ 0 (0 when all examples are alike)")
    short = min(range(len(raws)), key=lambda i: lengths[i])
    long = max(range(len(raws)), key=lambda i: lengths[i]) if len(set(lengths)) > 1 else (short + 1) % len(raws)
    return raws[short], raws[long]


def preflight(backbone: Backbone, items: Sequence[Any]) -> str | None:
    """The first layout or mask problem on two examples, or None: run before a search's first trial."""
    try:
        return next(iter(check_backbone(backbone, items, deterministic=False)), None)
    except Stop as stop:
        return str(stop)


def check_backbone(backbone: Backbone, items: Sequence[Any], deterministic: bool = True) -> list[str]:
    """Every problem found with ``backbone`` on a few of ``items`` (what `load_data` put in examples)."""
    problems = _declared(backbone)
    if problems:
        return problems
    try:
        short, long = pick(backbone, items) if len(items) > 1 else (items[0], items[0])
        pre = backbone.preprocessor
        if deterministic:
            problems += _deterministic(pre, short)
        batch = [_features(pre, short), _features(pre, long)]
        was_training = backbone.training
        backbone.eval()
        try:
            with torch.inference_mode():
                batched = _trace(backbone, batch, check=True)
                alone = _trace(backbone, batch[:1], check=False)
        finally:
            backbone.train(was_training)
        problems += _mask_problems(backbone, alone, batched)
    except Stop as stop:
        problems.append(str(stop))
    return problems


def _declared(backbone: Backbone) -> list[str]:
    problems = []
    if not isinstance(backbone.fingerprint, str) or not backbone.fingerprint:
        problems.append("Backbone(fingerprint=...) must be a non-empty str identifying the weights")
    fingerprint = getattr(backbone.preprocessor, "fingerprint", None)
    if not isinstance(fingerprint, str) or not fingerprint:
        problems.append("preprocessor.fingerprint must be a non-empty str naming everything transform() depends on")
    if len(backbone.block_widths) != backbone.depth or not all(isinstance(w, int) and w > 0 for w in backbone.block_widths):
        problems.append(f"block_widths {backbone.block_widths!r} must give one positive int per block ({backbone.depth} blocks)")
    if not isinstance(backbone.width, int) or backbone.width <= 0:
        problems.append(f"width {backbone.width!r} must be a positive int: the size of pool()'s output")
    return problems


def _call(what: str, function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as exc:  # a plugin's bug: say where it is
        raise Stop(f"{what} raised {where(exc)}") from exc


def _features(pre: Any, raw: Any) -> dict[str, Tensor]:
    features = _call("preprocessor.transform()", pre.transform, raw, False)
    if not isinstance(features, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in features.items()):
        raise Stop(f"preprocessor.transform() returned {type(features).__name__}, not a dict of str → Tensor")
    return features


def _deterministic(pre: Any, raw: Any) -> list[str]:
    first, second = _features(pre, raw), _features(pre, raw)
    same = first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    return [] if same else ["preprocessor.transform(raw, augment=False) gave different tensors on two calls: "
                            "randomness belongs under augment=True (the core caches the un-augmented inputs)"]


def _label(backbone: Backbone, index: int) -> str:
    block = backbone.blocks[index]
    body = getattr(block, "body", None) or getattr(block, "layer", None)
    inner = f"/{type(body).__name__}" if isinstance(body, nn.Module) else ""
    return f"block {index + 1} of {backbone.depth} ({type(block).__name__}{inner})"


def _trace(backbone: Backbone, features: list[dict[str, Tensor]], check: bool) -> list[Any]:
    """The stem's and each block's `Hidden`, then the pooling's output; checked along the way when ``check``."""
    batch = _call("preprocessor.collate()", backbone.preprocessor.collate, features)
    if check and (not isinstance(batch, dict) or not all(isinstance(v, Tensor) for v in batch.values())):
        raise Stop(f"preprocessor.collate() returned {type(batch).__name__}, not a dict of tensors")
    hidden = _call("the stem", backbone.stem, batch)
    if check:
        _layout("the stem", hidden, len(features), None)
    trace: list[Any] = [hidden]
    for index, block in enumerate(backbone.blocks):
        hidden = _call(_label(backbone, index), block, hidden)
        if check:
            _layout(_label(backbone, index), hidden, len(features), backbone.block_widths[index])
        trace.append(hidden)
    pooled = _call("the pooling (Backbone.pool)", backbone.pool, hidden)
    if check:
        if not isinstance(pooled, Tensor) or tuple(pooled.shape) != (len(features), backbone.width):
            shape = tuple(pooled.shape) if isinstance(pooled, Tensor) else type(pooled).__name__
            raise Stop(f"the pooling (Backbone.pool) gives {shape}, not (batch, width) = ({len(features)}, {backbone.width})")
        mean_pool(hidden)
    trace.append(pooled)
    return trace


def _layout(part: str, hidden: Any, batch: int, width: int | None) -> None:
    """(B, T, D) with a (B, T) bool mask or None, or (B, C, H, W) without one; D or C equal to ``width``."""
    if not isinstance(hidden, Hidden):
        raise Stop(f"{part} returns {type(hidden).__name__}, not automl_tl.backbone.Hidden(states, mask)")
    states, mask = hidden
    if not isinstance(states, Tensor) or not states.is_floating_point():
        raise Stop(f"{part} gives states of type {getattr(states, 'dtype', type(states).__name__)}, not a float tensor")
    shape = tuple(states.shape)
    if states.dim() not in (3, 4) or shape[0] != batch:
        raise Stop(f"{part} gives states of shape {shape}: the core reads (B, T, D) with a (B, T) mask, or (B, C, H, W)")
    if states.dim() == 4:
        if mask is not None:
            raise Stop(f"{part} gives (B, C, H, W) states with a mask: images take no mask (pass None)")
        if width is not None and shape[1] != width:
            raise Stop(f"{part} gives {shape[1]} channels in {shape} but block_widths says {width}")
        return
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 2 or mask.shape[0] != batch:
            raise Stop(f"{part} gives a mask of {getattr(mask, 'dtype', type(mask).__name__)} "
                       f"{tuple(getattr(mask, 'shape', ()))}: it must be a (B, T) bool tensor, True at real positions")
        if mask.shape[1] != shape[1]:
            transposed = " — that is (B, C, T); return states.transpose(1, 2)" if shape[2] == mask.shape[1] else ""
            raise Stop(f"{part} gives states {shape} with a {tuple(mask.shape)} mask: the core reads (B, T, D){transposed}")
    if width is not None and shape[2] != width:
        transposed = " — that looks like (B, C, T); return states.transpose(1, 2)" if shape[1] == width else ""
        raise Stop(f"{part} gives width {shape[2]} in {shape} (the last dim of (B, T, D)) but block_widths says {width}{transposed}")


def _row(value: Any) -> Tensor:
    """The first example's real positions (its padding dropped) as float32."""
    if isinstance(value, Hidden):
        states = value.states[0]
        if value.mask is not None:
            states = states[value.mask[0]]
        return states.float()
    return value[0].float()


def _mask_problems(backbone: Backbone, alone: list[Any], batched: list[Any]) -> list[str]:
    """The first part whose output for an example differs between alone and batched with a longer one."""
    parts = ["the stem", *(_label(backbone, i) for i in range(backbone.depth)), "the pooling (Backbone.pool)"]
    for part, single, together in zip(parts, alone, batched, strict=True):
        a, b = _row(single), _row(together)
        if a.shape != b.shape:
            return [f"{part} gives an example {tuple(a.shape)} alone but {tuple(b.shape)} batched with a longer one: "
                    "mark padded positions False in the mask (lengths_to_mask) so the core can drop them"]
        difference = float((a - b).abs().max()) if a.numel() else 0.0
        tolerance = TOLERANCE * max(1.0, float(a.abs().max()) if a.numel() else 0.0)
        if difference > tolerance:
            return [f"{part} ignores the mask: an example's output alone and padded in a batch with a longer one differ "
                    f"by {difference:.3g} (tolerance {tolerance:.3g}); keep padded positions out of everything real ones "
                    "depend on (attention keys, convolutions, norms, means)"]
    return []
