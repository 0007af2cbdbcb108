"""The search space: defaults narrowed by plugin and recipe, sampled conditionally per trial.

Only dimensions that matter for a trial are sampled: a backbone learning rate only when the
backbone trains, a freeze depth only for partial fine-tuning and LP-FT, hidden width and dropout
only for an MLP head, augmentation only when the stem trains, BatchNorm handling only for backbones
that have BatchNorm. Optuna therefore records each trial's real configuration, and TPE does not
learn from values that had no effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna

from automl_tl.config import deep_merge
from automl_tl.errors import UserError
from automl_tl.presets import SPACE

TRAINS_BACKBONE = ("partial", "full", "lp_ft")


@dataclass(frozen=True)
class BackboneShape:
    """What the sampler must know of a backbone to keep a trial's configuration valid."""

    depth: int
    uniform_width: bool
    has_batchnorm: bool


@dataclass(frozen=True)
class TrialParams:
    """One trial's full configuration, derived values included."""

    backbone: str
    strategy: str
    freeze_depth: int
    """Blocks frozen: all of them for feature extraction, none for full fine-tuning, 0 .. depth-1 for LP-FT."""
    head_lr: float
    weight_decay: float
    epochs: int
    batch_size: int
    head: str
    pooling: str
    backbone_lr: float | None = None
    head_hidden: int | None = None
    dropout: float | None = None
    augment: bool = False
    batchnorm: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SearchSpace:
    """Resolved dimensions: each is a list of choices or a ``(low, high)`` range."""

    def __init__(self, dims: Mapping[str, Any]) -> None:
        self.dims = dict(dims)

    @classmethod
    def resolve(cls, *layers: Mapping[str, Any], backbones: Sequence[str]) -> SearchSpace:
        """Defaults overlaid with each layer (plugin, recipe, flags), then backbones filled in."""
        dims = {name: spec["default"] for name, spec in SPACE.items()}
        for layer in layers:
            dims = deep_merge(dims, layer)
        dims = {name: _as_list(name, value) for name, value in dims.items()}
        if dims["backbone"] is None:
            dims["backbone"] = list(backbones)
        return cls(dims)

    def choices(self, name: str) -> list[Any]:
        return list(self.dims[name])

    def frozen_depths(self, strategy: str, depth: int) -> list[int]:
        """Freeze depths a ``strategy`` trial on a ``depth``-block backbone may use, lowest first.

        Partial fine-tuning freezes 1 .. depth-1 blocks (a recipe may narrow the range). LP-FT
        may also leave the first blocks frozen, 0 up to the same maximum: its probe then its
        fine-tune of the remaining blocks run on the cached prefix instead of the whole backbone,
        while 0 keeps the classic LP-FT, a full fine-tune from the probed head.
        """
        if strategy == "feature_extraction":
            return [depth]
        if strategy == "full":
            return [0]
        if depth < 2:  # no block can stay frozen short of all: only LP-FT's classic form is left
            return [] if strategy == "partial" else [0]
        low, high = self.dims["freeze_depth"] or [1, depth - 1]
        # clamped into 1..depth-1: one recipe may serve backbones of different depths
        low, high = min(max(1, int(low)), depth - 1), min(depth - 1, int(high))
        high = max(low, high)
        return list(range(low if strategy == "partial" else 0, high + 1))

    def prefix_depths(self, depth: int) -> set[int]:
        """Prefix depths (frozen blocks short of all) this space's trials may ask the cache for."""
        return {k for s in self.choices("strategy") for k in self.frozen_depths(s, depth) if 0 < k < depth}

    def sample(self, trial: optuna.Trial, shapes: Mapping[str, BackboneShape]) -> TrialParams:
        backbone = self._categorical(trial, "backbone", self.choices("backbone"))
        shape = shapes[backbone]
        strategies = self._strategies(shape)
        if not strategies:
            raise UserError("no transfer strategy is possible: 'partial' needs a backbone with 2 or more blocks")
        strategy = self._categorical(trial, "strategy", strategies)
        depths = self.frozen_depths(strategy, shape.depth)
        freeze_depth = depths[0] if len(depths) == 1 else trial.suggest_int(_depth_name(strategy), depths[0], depths[-1])
        head = self._categorical(trial, "head", self.choices("head"))
        return TrialParams(
            backbone=backbone,
            strategy=strategy,
            freeze_depth=freeze_depth,
            head_lr=self._number(trial, "head_lr"),
            weight_decay=self._number(trial, "weight_decay"),
            epochs=int(self._number(trial, "epochs")),
            batch_size=int(self._categorical(trial, "batch_size", self.choices("batch_size"))),
            head=head,
            pooling=self._categorical(trial, "pooling", self._poolings(shape)),
            backbone_lr=self._number(trial, "backbone_lr") if strategy in TRAINS_BACKBONE else None,
            head_hidden=int(self._number(trial, "head_hidden")) if head == "mlp" else None,
            dropout=self._number(trial, "dropout") if head == "mlp" else None,
            augment=bool(self._categorical(trial, "augment", self.choices("augment")))
            if _trains_stem(freeze_depth)
            else False,
            batchnorm=self._categorical(trial, "batchnorm", self.choices("batchnorm"))
            if shape.has_batchnorm and strategy in TRAINS_BACKBONE
            else None,
        )

    def baseline(self, shapes: Mapping[str, BackboneShape]) -> dict[str, Any] | None:
        """Optuna parameters of a linear probe on the first backbone, or None when the space has none.

        Enqueued as a fresh study's first trial: it costs milliseconds on cached features, gives
        TPE a sound first point, and is the simple baseline the report compares the winner with.
        """
        backbone = self.choices("backbone")[0]
        poolings = self._poolings(shapes[backbone])
        probe: dict[str, Any] = {
            "backbone": backbone,
            "strategy": "feature_extraction",
            "head": "linear",
            "pooling": "default" if "default" in poolings else poolings[0],
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
        dimensions it leaves out, and the ones it fixes that this trial would not sample, are left
        to the sampler. A value outside the space (a recipe narrowed it) rules the configuration out:
        the user's space wins over any suggestion.
        """
        backbone = configuration.get("backbone", self.choices("backbone")[0])
        if backbone not in self.choices("backbone"):
            return None
        shape = shapes[backbone]
        strategy = configuration.get("strategy")
        head = configuration.get("head")
        depths = self.frozen_depths(strategy, shape.depth) if strategy else []
        freeze_depth = configuration.get("freeze_depth", depths[0] if len(depths) == 1 else None)
        choices = {
            "backbone": self.choices("backbone"),
            "strategy": self._strategies(shape),
            "head": self.choices("head"),
            "pooling": self._poolings(shape),
            "batch_size": self.choices("batch_size"),
            "augment": self.choices("augment") if _trains_stem(freeze_depth) else None,
            "batchnorm": self.choices("batchnorm") if shape.has_batchnorm and strategy in TRAINS_BACKBONE else None,
        }
        numbers = {
            "head_lr": True,
            "weight_decay": True,
            "epochs": True,
            "backbone_lr": strategy in TRAINS_BACKBONE,
            "head_hidden": head == "mlp",
            "dropout": head == "mlp",
            "freeze_depth": len(depths) > 1,
        }
        params: dict[str, Any] = {}
        for name, value in {**configuration, "backbone": backbone}.items():
            if name in choices:
                allowed = choices[name]
                if allowed is None:
                    continue
                if value not in allowed:
                    return None
                if len(allowed) > 1:
                    params[self._param_name(name, allowed)] = value
            elif name == "freeze_depth":  # a depth only means something under a strategy that allows it
                if value not in depths:
                    return None
                if numbers[name]:
                    params[_depth_name(strategy)] = value
            elif numbers[name]:
                low, high = self.dims[name]
                if not low <= value <= high:
                    return None
                if low != high:
                    params[name] = value
        return params

    def _strategies(self, shape: BackboneShape) -> list[str]:
        """The strategies this backbone allows: partial fine-tuning needs two blocks or more."""
        return [s for s in self.choices("strategy") if s != "partial" or shape.depth >= 2]

    def _poolings(self, shape: BackboneShape) -> list[str]:
        """The poolings this backbone allows: a weighted sum of blocks needs blocks of one width."""
        return [p for p in self.choices("pooling") if p != "weighted" or shape.uniform_width] or ["default"]

    def _categorical(self, trial: optuna.Trial, name: str, choices: Sequence[Any]) -> Any:
        """A choice among ``choices``, a subset of the dimension when a backbone rules values out."""
        if len(choices) == 1:
            return choices[0]
        return trial.suggest_categorical(self._param_name(name, choices), list(choices))

    def _param_name(self, name: str, choices: Sequence[Any]) -> str:
        """Optuna's name for a categorical: a subset of the dimension's choices is named after the subset.

        Optuna refuses a parameter whose choices change between trials, so a subset (no weighted
        pooling for mixed block widths, no partial fine-tuning for a one-block backbone) is recorded
        under a name that lists it: searches over several backbones keep working.
        """
        return name if list(choices) == self.choices(name) else f"{name}[{'|'.join(map(str, choices))}]"

    def _number(self, trial: optuna.Trial, name: str) -> float:
        low, high = self.dims[name]
        kind = SPACE[name]["kind"]
        if low == high:
            return low
        if kind == "int":
            return trial.suggest_int(name, int(low), int(high))
        if kind == "int_log":
            return trial.suggest_int(name, int(low), int(high), log=True)
        return trial.suggest_float(name, float(low), float(high), log=kind == "log")


def _depth_name(strategy: str) -> str:
    """Optuna's name for a strategy's freeze depth: partial and LP-FT draw from different ranges.

    Partial fine-tuning keeps the plain name, so studies recorded before LP-FT had a depth read the same.
    """
    return "freeze_depth" if strategy == "partial" else f"freeze_depth[{strategy}]"


def _trains_stem(freeze_depth: int | None) -> bool:
    """Whether the stem trains (nothing frozen: `Tail` then owns the stem), so augmenting the input
    can change what it learns; None when a configuration leaves the depth to the sampler."""
    return freeze_depth == 0


def _as_list(name: str, value: Any) -> Any:
    """A scalar fixes a dimension: choices become ``[v]``, ranges ``[v, v]``."""
    if value is None or isinstance(value, list):
        return value
    if SPACE[name]["kind"] == "choice":
        return [value]
    return [value, value]
