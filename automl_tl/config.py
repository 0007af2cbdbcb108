"""A run's configuration: recipe files, flags and defaults merged and validated in one place (`resolve`).

Precedence, lowest first: core defaults, the plugin's ``default_recipe()``, the recipe file, the
command-line flags. Validation is pydantic's (the search dimensions' rules come from
`automl_tl.vocabulary`), so a recipe with an unknown key or a wrong type fails with one line
naming the key, before any model loads.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.errors import PydanticSchemaGenerationError, PydanticUndefinedAnnotation

from automl_tl.contract import ModalityPlugin
from automl_tl.errors import UserError
from automl_tl.vocabulary import DIMENSIONS, Dimension
from automl_tl.vocabulary.adaptations import VALIDATORS

GRACE_BEATS = 4
"""Heartbeats a running trial may miss before other workers treat its worker as gone."""
SEED_MAX = 2**32 - 1
"""The largest seed: NumPy's generators (and so Optuna's samplers) take nothing wider than 32 bits."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    dataset: str | None = None
    """A dataset folder name inside the data home (e.g. ``fsdd``)."""
    path: Path | None = None
    """A data path; relative paths in a recipe are looked up in the data home when ``dataset`` is not set."""
    test_path: Path | None = None
    split_by: Literal["auto", "group", "stratified"] = "auto"
    """``group`` keeps groups (speakers...) apart across splits; ``auto`` does so whenever groups exist."""
    test_groups: list[str] | None = None
    """Groups held out for the test split (else a fraction of groups chosen by the seed)."""
    validation_groups: list[str] | None = None
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.15, gt=0, lt=1)
    skip_bad_files: bool = False
    """Skip undecodable files with a counted warning instead of stopping."""
    target_path: Path | None = None
    """Data from the domain the model is for, read by the same loader; its labels are dropped (domain adaptation)."""
    target_test_path: Path | None = None
    """Labelled target data, evaluated once after the search (like ``test_path``), never used to choose."""
    target_labelled: int | None = Field(None, ge=1)
    """Labelled target examples per class taken out of the target, for validation only (then they choose)."""

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.dataset is not None and self.path is not None:
            raise ValueError("set dataset or path, not both")
        if self.target_path is None and (self.target_test_path is not None or self.target_labelled is not None):
            raise ValueError("target_test_path and target_labelled need a target (target_path, --target)")
        return self


FIRST_RUNGS = (1.0, 0.5, 0.25, 0.125)
"""Shares of the first epoch a first rung may be: a whole number of rungs fits in an epoch, so the
pruner's steps stay whole numbers (`rung_steps`)."""


def rung_steps(first_rung: float) -> int:
    """The pruner's steps per epoch: epoch e is step e × this, the first rung (when below 1) step 1."""
    return round(1 / first_rung)


class SearchConfig(_Strict):
    n_trials: int | None = Field(20, ge=1)
    """Trials in all, counting a resumed run's; None with a timeout: as many as fit."""
    timeout: float | None = Field(None, gt=0)
    """Seconds of search, counting earlier sessions of a resumed run."""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    """Seeds the splits, the sampler and training; checked here, before anything loads or a run directory is made."""
    objective: Literal["macro_f1", "accuracy"] = "macro_f1"
    validator: str = "im"
    """What scores a trial when the target has no labels: a name in `automl_tl.vocabulary.adaptations.VALIDATORS`.

    Information maximisation by default: SND rewards near-uniform predictions when classes are few
    (every probability vector is then every other's neighbour), which docs/adaptation.md shows on
    the two-class text pair."""
    source_margin: float = Field(0.02, ge=0, le=1)
    """How far below the best trial's source validation score a trial may be and still be chosen (the
    validator decides among the rest): a validator alone can prefer a model that has forgotten the task."""
    pruner: Literal["hyperband", "halving", "none"] = "halving"
    """Successive halving by default: with the tens of trials a CPU affords, Hyperband's brackets
    leave a third of the trials unprunable, while halving judges every trial at epochs 1, 3, 9...
    against all trials so far, so weak expensive fine-tunes stop after an epoch."""
    first_rung: float = 1.0
    """The share of the first epoch's training batches after which the pruner first judges a trial
    (a rung on data, not on epochs): 1 judges first after a whole epoch; 1/2, 1/4 or 1/8 look earlier,
    when judging costs a fraction of an epoch. Later rungs count whole epochs as before."""
    refit: bool = True
    """Retrain the best configuration on train + validation before the one test evaluation."""
    cache: bool = True
    """Reuse frozen-backbone work across trials (in memory and in the run directory).

    Off, every trial runs its examples through the whole network each epoch, as a hand-wired
    Optuna loop would: the benchmark's *naive* arm, and a way to rule the cache out when debugging.
    """
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """Arithmetic of trainable backbone blocks: ``auto`` is bfloat16 autocast where the CPU has it
    natively (faster fine-tuning steps, see docs/performance.md), else fp32. The benchmark's naive arm uses fp32."""
    workers: int = Field(1, ge=1)
    """Processes searching this study on this machine, one torch thread each (`automl_tl.search.workers`):
    on a CPU, N workers on N cores run more trials per minute than one worker with N threads."""
    heartbeat: int = Field(30, ge=1)
    """Seconds between a worker's heartbeats. A trial silent for `GRACE_BEATS` of them is failed
    and retried by another worker: lower it to recover sooner from a killed machine, at the cost
    of a storage write per beat; keep it well above a stall of the worker (swapping, a busy disk)."""

    @model_validator(mode="after")
    def _some_budget(self) -> SearchConfig:
        if self.n_trials is None and self.timeout is None:
            raise ValueError("set n_trials or timeout, or both")
        return self

    @field_validator("first_rung")
    @classmethod
    def _a_rung(cls, share: float) -> float:
        if share not in FIRST_RUNGS:
            raise ValueError(f"{share} is not a first rung; one of {', '.join(f'{r:g}' for r in FIRST_RUNGS)} (a power of 1/2)")
        return share

    @field_validator("validator")
    @classmethod
    def _known_validator(cls, name: str) -> str:
        if name not in VALIDATORS:
            raise ValueError(f"unknown validator {name!r}; known: {', '.join(VALIDATORS)}")
        return name


class RunConfig(_Strict):
    modality: str
    study: str | None = None
    data: DataConfig = DataConfig()
    search: SearchConfig = SearchConfig()
    space: dict[str, Any] = {}
    options: dict[str, Any] = {}

    @model_validator(mode="after")
    def _adaptation_needs_a_target(self) -> RunConfig:
        if self.data.target_path is None and any(k in self.space for k in ("adaptation", "adaptation_weight", "pseudo_threshold")):
            raise ValueError("space.adaptation needs a target domain (data.target_path, --target)")
        return self

    @field_validator("study")
    @classmethod
    def _a_name(cls, study: str | None) -> str | None:
        """A study name names the run's folder (``runs/<study>``), so it must not lead out of it."""
        if study is not None and (not study.strip() or ".." in study or study == "." or any(c in study for c in "/\\\0")):
            raise ValueError(f"{study!r} is not a study name: no path separators, '.' or '..' (use --run-dir for where the run goes)")
        return study

    @field_validator("space")
    @classmethod
    def _known_dimensions(cls, space: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(space) - set(DIMENSIONS))
        if unknown:
            raise ValueError(f"unknown search dimension(s) {', '.join(unknown)}; known: {', '.join(DIMENSIONS)}")
        for name, value in space.items():
            _check_dimension(DIMENSIONS[name], value)
        return space


def _check_dimension(dim: Dimension, value: Any) -> None:
    """A recipe's value for a dimension: a scalar or a list of allowed choices, or a ``[low, high]`` range."""
    name = dim.name
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError(f"{name}: give at least one value")
    if dim.allowed is not None:
        bad = [v for v in values if v not in dim.allowed]
        if bad:
            raise ValueError(f"{name}: {bad} not among {list(dim.allowed)}")
    if dim.kind != "choice" and isinstance(value, list):
        if len(value) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{name}: a range is [low, high], got {value!r}")
        if value[0] > value[1]:
            raise ValueError(f"{name}: low {value[0]} is above high {value[1]}")
    if dim.numeric:
        _check_numbers(dim, values)


def _check_numbers(dim: Dimension, values: list[Any]) -> None:
    """Numeric dimensions, fixed or ranges: finite numbers, whole where counted, inside their bounds."""
    name = dim.name
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{name}: {v!r} is not a number")
        if dim.whole and v != int(v):
            raise ValueError(f"{name}: {v!r} is not a whole number")
    if dim.kind in ("log", "int_log") and min(values) <= 0:
        raise ValueError(f"{name}: a log-scale range must be positive, got {values if len(values) > 1 else values[0]!r}")
    if dim.low is not None and min(values) < dim.low:
        raise ValueError(f"{name}: at least {dim.low:g}, got {min(values)!r}")
    if dim.high is not None and (max(values) >= dim.high if dim.high_open else max(values) > dim.high):
        raise ValueError(f"{name}: {'below' if dim.high_open else 'at most'} {dim.high:g}, got {max(values)!r}")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively overlay ``override`` on ``base``; tables merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_recipe(path: Path) -> dict[str, Any]:
    """Parse a TOML recipe; unreadable or malformed files are a `UserError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"recipe {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read recipe {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"recipe {path} is not valid TOML: {exc}") from None


def validate(raw: Mapping[str, Any], source: str) -> RunConfig:
    """Validate merged settings; the first problem becomes one readable line."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "recipe"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        raise UserError(f"{source}: {where}: {message}", hint="see the recipe format in README.md") from None


def resolve(plugin: ModalityPlugin, recipe: Mapping[str, Any], flags: Mapping[str, Any], source: str) -> RunConfig:
    """The run's configuration: the plugin's defaults, then the recipe, then the flags, validated.

    A data path among the flags replaces the recipe's data source rather than merging with it; a
    time budget without a trial count from the same layer or a later one (a recipe's ``timeout``
    over the plugin's count, ``--timeout`` over the recipe's) means as many trials as fit; the
    plugin's options are checked against its options type.
    ``source`` names the recipe (or "settings") in error messages.
    """
    recipe = dict(recipe)
    if flags.get("data", {}).get("path") is not None:
        recipe["data"] = {k: v for k, v in recipe.get("data", {}).items() if k not in ("dataset", "path")}
    if flags.get("data", {}).get("target_path") is not None:  # a new target: the recipe's labelled target parts go too
        recipe["data"] = {k: v for k, v in recipe.get("data", {}).items() if not k.startswith("target_")}
    layers = (plugin.default_recipe(), recipe, flags)
    config = validate(deep_merge(deep_merge(layers[0], recipe), flags), source)
    timed = [i for i, layer in enumerate(layers) if "timeout" in layer.get("search", {})]
    if timed and not any("n_trials" in layer.get("search", {}) for layer in layers[timed[-1]:]):
        config.search.n_trials = None
    config.options = _check_options(plugin, config.options, source)
    return config


def plugin_options(plugin: ModalityPlugin, options: Mapping[str, Any]) -> Any:
    """The plugin's ``options_type`` instance for a run's (already checked) options; None when it declares none.

    Plugins receive this object, never the raw table, so each option is parsed and defaulted once.
    """
    if plugin.options_type is None:
        return None
    adapter = _adapter(plugin.options_type)
    return adapter.validate_python(dict(options)) if adapter is not None else plugin.options_type(**options)


def options_record(options: Any) -> dict[str, Any]:
    """An options object as the plain table a run or a bundle stores (the inverse of `plugin_options`)."""
    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) and not isinstance(options, type) else {}


def _adapter(options_type: type) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(options_type)
    except (PydanticSchemaGenerationError, PydanticUndefinedAnnotation):
        return None  # a field type pydantic cannot check: the plugin checks it itself


def _check_options(plugin: ModalityPlugin, options: dict[str, Any], source: str) -> dict[str, Any]:
    """Names and types of the plugin's options, checked like the rest of the recipe: one line, no model loaded.

    Returns the options converted to their declared types (a flag's "64" becomes 64), as plain
    values: the run's configuration is stored as JSON.
    """
    options_type = plugin.options_type
    known = {f.name for f in dataclasses.fields(options_type)} if options_type else set()
    unknown = sorted(set(options) - known)
    if unknown:
        flag = "--" + unknown[0].replace("_", "-")
        raise UserError(
            f"{source}: options.{unknown[0]} ({flag}): unknown option for this modality",
            hint=f"known: {', '.join(sorted(known)) or 'none'}",
        )
    adapter = _adapter(options_type) if options_type else None
    if adapter is None:
        return options
    try:
        converted = adapter.validate_python(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(f"{source}: options.{where}: {err['msg']}", hint="see the recipe format in README.md") from None
    return {key: getattr(converted, key) for key in options}


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flags left unset must not override the recipe."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            nested = drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
