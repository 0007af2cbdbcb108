"""The search space: the vocabulary's defaults narrowed by plugin and recipe, sampled conditionally per trial.

Only dimensions that matter for a trial are sampled (each `Dimension.active` says when), so Optuna
records each trial's real configuration and TPE does not learn from values that had no effect.
`sample` and `params_of` walk the same table with the same rules: what a configuration means to
the sampler is defined once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from automl_tl.config import deep_merge
from automl_tl.errors import UserError
from automl_tl.vocabulary import DIMENSIONS, LINEAR_PROBE, POOLINGS, STRATEGIES, BackboneShape, Dimension, TrialParams

__all__ = ["BackboneShape", "SearchSpace", "TrialParams"]


class SearchSpace:
    """Resolved dimensions: each is a list of choices or a ``[low, high]`` range."""

    def __init__(self, dims: Mapping[str, Any]) -> None:
        self.dims = dict(dims)

    @classmethod
    def resolve(cls, *layers: Mapping[str, Any], backbones: Sequence[str]) -> SearchSpace:
        """Defaults overlaid with each layer (plugin, recipe, flags), then backbones filled in."""
        dims = {name: dim.default for name, dim in DIMENSIONS.items()}
        for layer in layers:
            dims = deep_merge(dims, layer)
        dims = {name: _as_list(DIMENSIONS[name], value) for name, value in dims.items()}
        if dims["backbone"] is None:
            dims["backbone"] = list(backbones)
        return cls(dims)

    def choices(self, name: str) -> list[Any]:
        return list(self.dims[name])

    def domain(self, name: str, values: Mapping[str, Any], shape: BackboneShape) -> list[Any]:
        """What a trial may take for ``name`` given the values before it: choices, or ``[low, high]``.

        The recipe's range, narrowed where the backbone rules values out: partial fine-tuning needs
        two blocks or more, a weighted sum of blocks needs blocks of one width, and each strategy
        has its own freeze depths.
        """
        if name == "strategy":
            return [s for s in self.choices(name) if shape.depth >= STRATEGIES[s].min_depth]
        if name == "pooling":
            return [p for p in self.choices(name) if POOLINGS[p].available(shape)] or ["default"]
        if name == "freeze_depth":  # a depth means something only under a strategy
            strategy = STRATEGIES.get(values.get("strategy") or "")
            return strategy.freeze_depths(shape.depth, self.dims["freeze_depth"]) if strategy else []
        return self.choices(name)

    def cached_depths(self, depth: int) -> set[int]:
        """Freeze depths whose frozen output this space's trials may ask the cache for.

        Every prefix a strategy may freeze short of the whole backbone; the whole backbone too
        when a pooling reads the last block's sequence (which no pooled vector can stand in for)
        and a strategy trains a head on the frozen backbone (feature extraction, LP-FT's probe).
        """
        strategies = [STRATEGIES[s] for s in self.choices("strategy")]
        depths = {k for s in strategies for k in s.freeze_depths(depth, self.dims["freeze_depth"]) if 0 < k < depth}
        sequence = any(POOLINGS[p].reads == "sequence" for p in self.choices("pooling"))
        if sequence and any(not s.trains_backbone or s.probe_first for s in strategies):
            depths.add(depth)
        return depths

    def sample(self, trial: optuna.Trial, shapes: Mapping[str, BackboneShape]) -> TrialParams:
        values: dict[str, Any] = {}
        for dim in DIMENSIONS.values():
            shape = shapes[values["backbone"]] if "backbone" in values else None
            if shape is not None and not dim.active(values, shape):
                values[dim.name] = dim.inactive
                continue
            domain = self.choices("backbone") if shape is None else self.domain(dim.name, values, shape)
            if not domain:
                raise UserError(f"no {dim.name.replace('_', ' ')} is possible for backbone {values['backbone']!r}: "
                                f"'partial' needs a backbone with 2 or more blocks")
            values[dim.name] = self._draw(trial, dim, domain, values)
        return TrialParams(**values)

    def baseline(self, shapes: Mapping[str, BackboneShape]) -> dict[str, Any] | None:
        """Optuna parameters of a linear probe on the first backbone, or None when the space has none.

        Enqueued as a fresh study's first trial: it costs milliseconds on cached features, gives
        TPE a sound first point, and is the simple baseline the report compares the winner with.
        """
        backbone = self.choices("backbone")[0]
        poolings = self.domain("pooling", {}, shapes[backbone])
        probe: dict[str, Any] = {
            **LINEAR_PROBE,
            "backbone": backbone,
            "pooling": LINEAR_PROBE["pooling"] if LINEAR_PROBE["pooling"] in poolings else poolings[0],
            "batch_size": self.choices("batch_size")[0],
        }
        for name in ("head_lr", "weight_decay"):
            low, high = self.dims[name]
            probe[name] = float((low * high) ** 0.5)  # both searched on a log scale
        probe["epochs"] = int(self.dims["epochs"][1])  # head-only epochs are cheap: give the probe all of them
        return self.params_of(probe, shapes)

    def params_of(self, configuration: Mapping[str, Any], shapes: Mapping[str, BackboneShape]) -> dict[str, Any] | None:
        """Optuna parameters that make `sample` return ``configuration``, or None when the space excludes it.

        ``configuration`` maps dimension names to values (a plugin's starting point, the baseline);
        dimensions it leaves out are left to the sampler, and the ones it fixes that such a trial
        would not sample are ignored. A value outside the space (a recipe narrowed it) rules the
        configuration out: the user's space wins over any suggestion.
        """
        values: dict[str, Any] = {"backbone": configuration.get("backbone", self.choices("backbone")[0])}
        if values["backbone"] not in self.choices("backbone"):
            return None
        shape = shapes[values["backbone"]]
        params: dict[str, Any] = {}
        if len(self.choices("backbone")) > 1:
            params["backbone"] = values["backbone"]
        for dim in list(DIMENSIONS.values())[1:]:
            if not dim.active(values, shape):
                continue
            domain = self.domain(dim.name, values, shape)
            value = configuration.get(dim.name)
            if value is None:  # left to the sampler, unless there is nothing to choose
                values[dim.name] = domain[0] if _fixed(dim, domain) else None
                continue
            if not _within(dim, domain, value):
                return None
            values[dim.name] = value
            if not _fixed(dim, domain):
                params[self._param_name(dim, domain, values)] = value
        return params

    def _draw(self, trial: optuna.Trial, dim: Dimension, domain: list[Any], values: Mapping[str, Any]) -> Any:
        """The trial's value for ``dim``: the only one there is, or Optuna's draw from ``domain``."""
        if _fixed(dim, domain):
            return int(domain[0]) if dim.whole and dim.kind != "choice" else domain[0]
        name = self._param_name(dim, domain, values)
        if dim.kind == "choice":
            return trial.suggest_categorical(name, list(domain))
        if dim.name == "freeze_depth":
            return trial.suggest_int(name, domain[0], domain[-1])
        low, high = domain
        if dim.kind in ("int", "int_log"):
            return trial.suggest_int(name, int(low), int(high), log=dim.kind == "int_log")
        return trial.suggest_float(name, float(low), float(high), log=dim.kind == "log")

    def _param_name(self, dim: Dimension, domain: Sequence[Any], values: Mapping[str, Any]) -> str:
        """Optuna's name for a dimension's draw.

        Optuna refuses a parameter whose choices change between trials, so a subset of a choice
        dimension (no weighted pooling for mixed block widths, no partial fine-tuning for a
        one-block backbone) is recorded under a name that lists it: searches over several
        backbones keep working. A freeze depth is named after its strategy, whose range it is;
        partial fine-tuning keeps the plain name, so studies recorded before LP-FT had a depth read the same.
        """
        if dim.name == "freeze_depth":
            return STRATEGIES[values["strategy"]].depth_param or dim.name
        if dim.kind == "choice" and list(domain) != self.choices(dim.name):
            return f"{dim.name}[{'|'.join(map(str, domain))}]"
        return dim.name


def _fixed(dim: Dimension, domain: Sequence[Any]) -> bool:
    """Nothing to draw: one choice, or a range whose ends meet."""
    if dim.kind == "choice" or dim.name == "freeze_depth":
        return len(domain) == 1
    return domain[0] == domain[1]


def _within(dim: Dimension, domain: Sequence[Any], value: Any) -> bool:
    if dim.kind == "choice" or dim.name == "freeze_depth":
        return value in domain
    return domain[0] <= value <= domain[1]


def _as_list(dim: Dimension, value: Any) -> Any:
    """A scalar fixes a dimension: choices become ``[v]``, ranges ``[v, v]``."""
    if value is None or isinstance(value, list):
        return value
    if dim.kind == "choice":
        return [value]
    return [value, value]
