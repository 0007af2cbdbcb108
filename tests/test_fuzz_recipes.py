"""Fuzzing the settings path: recipe files, recipe tables, plugin flags, and the search space they give.

Whatever a user writes, the outcome is a valid configuration or one `UserError` line; any other
exception is a bug. A space that validates must also sample, for every shape of backbone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automl_tl.cli.search import plugin_flags
from automl_tl.config import DataConfig, RunConfig, SearchConfig, read_recipe, validate
from automl_tl.errors import UserError
from automl_tl.vocabulary import DIMENSIONS
from automl_tl.search.space import BackboneShape, SearchSpace

ALLOWED = {d.name: d.allowed for d in DIMENSIONS.values() if d.allowed is not None}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from([v for choices in ALLOWED.values() for v in choices] + ["toy-net", 0, 1, 2, 1e-3]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))


def table(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Tables whose keys are mostly real (so validation gets past the first key) and sometimes not."""
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=8)), values, max_size=6)


def dimension(name: str) -> st.SearchStrategy[Any]:
    """Values for one search dimension: mostly of the right form (choices, ``[low, high]``), sometimes not."""
    if name in ALLOWED:
        one = st.sampled_from(ALLOWED[name])
    elif name == "backbone":
        one = st.sampled_from(["toy-net", "other-net"])
    elif DIMENSIONS[name].kind in ("int", "int_log", "choice"):
        one = st.integers(-2, 600)
    else:
        one = st.floats(-1.0, 1.0) | st.floats(1e-7, 1e-1)
    plausible = one | st.lists(one, min_size=1, max_size=3)
    return plausible | plausible | values


plausible_recipes = st.fixed_dictionaries(
    {"modality": st.just("toy")},
    optional={
        "space": st.fixed_dictionaries({}, optional={name: dimension(name) for name in DIMENSIONS}),
        "search": st.fixed_dictionaries({}, optional={
            "n_trials": st.integers(-1, 50), "timeout": st.floats(-1, 1e4), "objective": st.sampled_from(["accuracy", "macro_f1", "f1"]),
            "pruner": st.sampled_from(["hyperband", "halving", "none", "median"]), "heartbeat": st.integers(-1, 100)}),
        "data": st.fixed_dictionaries({}, optional={
            "split_by": st.sampled_from(["auto", "group", "stratified", "random"]), "test_fraction": st.floats(-0.5, 1.5),
            "test_groups": st.lists(st.text(max_size=4), max_size=3), "dataset": st.text(max_size=6), "path": st.text(max_size=6)}),
    },
)
junk_recipes = st.fixed_dictionaries(
    {},
    optional={
        "modality": st.one_of(st.just("toy"), scalars),
        "study": scalars,
        "data": st.one_of(table(list(DataConfig.model_fields)), scalars),
        "search": st.one_of(table(list(SearchConfig.model_fields)), scalars),
        "space": st.one_of(table(list(DIMENSIONS)), scalars),
        "options": table(["noise", "batchnorm"]),
        "extra": values,
    },
)
recipes = plausible_recipes | junk_recipes

SHAPES = [BackboneShape(1, True, False), BackboneShape(3, True, True), BackboneShape(12, False, False)]


def _one_line(exc: UserError) -> None:
    assert exc.message and "\n" not in exc.message, exc.message


@FUZZ
@given(recipe=recipes)
def test_any_recipe_table_validates_or_is_one_user_error(recipe: dict[str, Any]) -> None:
    try:
        config = validate(recipe, "recipe.toml")
    except UserError as exc:
        _one_line(exc)
        return
    assert isinstance(config, RunConfig)
    _sample_everywhere(config)


def _sample_everywhere(config: RunConfig) -> None:
    """A validated space resolves and samples for any backbone shape, or says why in one line."""
    try:
        space = SearchSpace.resolve({}, config.space, backbones=["toy-net"])
    except UserError as exc:
        _one_line(exc)
        return
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for shape in SHAPES:
        shapes = {name: shape for name in space.choices("backbone")}
        try:
            params = space.sample(study.ask(), shapes)
        except UserError as exc:
            _one_line(exc)
            continue
        assert params.strategy in ALLOWED["strategy"] and 0 <= params.freeze_depth <= shape.depth
        assert params.epochs >= 1 and params.batch_size >= 1 and params.head_lr > 0 and params.weight_decay >= 0, params
        assert params.backbone_lr is None or params.backbone_lr > 0, params
        assert params.head_hidden is None or params.head_hidden >= 1, params
        assert params.dropout is None or 0 <= params.dropout < 1, params


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_recipe_file_parses_or_is_one_user_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.toml"
        path.write_bytes(content)
        try:
            parsed = read_recipe(path)
        except UserError as exc:
            _one_line(exc)
            return
    assert isinstance(parsed, dict)
    try:
        validate(parsed, str(path))
    except UserError as exc:
        _one_line(exc)


@FUZZ
@given(args=st.lists(st.one_of(st.text(max_size=10), st.text(max_size=10).map(lambda s: "--" + s)), max_size=6))
def test_any_plugin_flags_parse_or_are_one_user_error(args: list[str]) -> None:
    try:
        options = plugin_flags(args)
    except UserError as exc:
        _one_line(exc)
        return
    assert all(isinstance(key, str) and isinstance(value, str | bool) for key, value in options.items())
