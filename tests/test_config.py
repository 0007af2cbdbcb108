"""Recipes and flags: parsing, validation errors as one line, and precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl_tl.config import RunConfig, deep_merge, read_recipe, validate
from automl_tl.errors import UserError
from automl_tl.leaderboard import Leaderboard


def test_recipe_is_parsed_and_validated(write_recipe):
    path = write_recipe(
        """
modality = "toy"
study = "demo"
[data]
path = "data.json"
test_groups = ["g1", "g2"]
split_by = "group"
[search]
n_trials = 7
pruner = "halving"
objective = "accuracy"
[space]
strategy = ["feature_extraction", "partial"]
epochs = [2, 4]
head_lr = 0.01
[options]
noise = 0.5
"""
    )
    config = validate(read_recipe(path), str(path))
    assert config.modality == "toy" and config.study == "demo"
    assert config.data.path == Path("data.json") and config.data.test_groups == ["g1", "g2"]
    assert config.data.split_by == "group"
    assert (config.search.n_trials, config.search.pruner, config.search.objective) == (7, "halving", "accuracy")
    assert config.space == {"strategy": ["feature_extraction", "partial"], "epochs": [2, 4], "head_lr": 0.01}
    assert config.options == {"noise": 0.5}


def test_defaults_when_nothing_is_set():
    config = RunConfig(modality="toy")
    assert config.search.n_trials == 20 and config.search.timeout is None
    assert config.search.objective == "macro_f1" and config.search.pruner == "halving"
    assert config.data.split_by == "auto"


def test_deep_merge_merges_tables_and_replaces_values():
    merged = deep_merge({"a": {"x": 1, "y": [1, 2]}, "b": 1}, {"a": {"y": [3]}, "c": 2})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}


BAD_RECIPES = [
    ("[search]\nn_trial = 3\n", "search.n_trial: unknown key"),
    ("[serach]\nn_trials = 3\n", "serach: unknown key"),
    ("[data]\nfolder = 'x'\n", "data.folder: unknown key"),
    ("[search]\nn_trials = 'many'\n", "search.n_trials: Input should be a valid integer"),
    ("[search]\nn_trials = 0\n", "search.n_trials: Input should be greater than or equal to 1"),
    ("[data]\ntest_fraction = 1.5\n", "data.test_fraction: Input should be less than 1"),
    ("[space]\nepochs = [5, 1]\n", "space: epochs: low 5 is above high 1"),
    ("[space]\nepochs = [1, 2, 3]\n", "space: epochs: a range is [low, high]"),
    ("[space]\nhead_lr = [0, 0.1]\n", "space: head_lr: a log-scale range must be positive"),
    ("[space]\nlearning_rate = [0.1, 0.2]\n", "space: unknown search dimension(s) learning_rate"),
    ("[space]\nstrategy = ['feature_extraction', 'warp']\n", "space: strategy: ['warp'] not among"),
    ("[space]\nhead = 'transformer'\n", "space: head: ['transformer'] not among"),
    ("[search]\npruner = 'median'\n", "search.pruner: Input should be 'hyperband', 'halving' or 'none'"),
    ("[search]\nfirst_rung = 0.3\n", "search.first_rung: 0.3 is not a first rung; one of 1, 0.5, 0.25, 0.125"),
    ("[search]\nobjective = 'f1'\n", "search.objective: Input should be 'macro_f1' or 'accuracy'"),
    ("[data]\nsplit_by = 'speaker'\n", "data.split_by: Input should be 'auto', 'group' or 'stratified'"),
    ("[options]\ncolour = 'red'\n", "options.colour (--colour): unknown option for this modality — known: batchnorm, noise"),
    ("[options]\nnoise = 'loud'\n", "options.noise: Input should be a valid number"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RECIPES, ids=[m.split(":")[0] + "-" + str(i) for i, (_, m) in enumerate(BAD_RECIPES)])
def test_bad_recipe_is_one_line_naming_the_key(toy, run_cli, write_recipe, assert_user_error, text, message):
    path = write_recipe(f'modality = "toy"\n{text}')
    code, out, err = run_cli("search", "--recipe", path)
    assert_user_error(code, out, err, f"{path}: {message}")


def test_unknown_flags_are_plugin_options_converted_to_their_types(toy, run_cli, monkeypatch):
    from automl_tl.cli import search as search_cli

    seen = {}

    def fake_search(request, plugin, console):
        seen.update(request.config.options)
        raise SystemExit(0)

    monkeypatch.setattr("automl_tl.search.engine.SearchRun", lambda request, plugin, console: type(
        "S", (), {"run": lambda self: fake_search(request, plugin, console)})())
    run_cli("search", "--modality", "toy", "--noise", "0.5", "--batchnorm")
    assert seen == {"noise": 0.5, "batchnorm": True}
    assert search_cli.plugin_flags(["--text-column=message", "--no-header"]) == {"text_column": "message", "header": False}


def test_unknown_plugin_flag_is_one_line(toy, run_cli, assert_user_error):
    code, out, err = run_cli("search", "--modality", "toy", "--colour", "red")
    assert_user_error(code, out, err, "settings: options.colour (--colour): unknown option for this modality")


def test_bad_flag_value_names_the_key(toy, run_cli, assert_user_error):
    code, out, err = run_cli("search", "--modality", "toy", "--objective", "loss")
    assert_user_error(code, out, err, "settings: search.objective: Input should be 'macro_f1' or 'accuracy'")


def test_invalid_toml_is_a_user_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[search\nn_trials = 3\n")
    with pytest.raises(UserError, match="is not valid TOML"):
        read_recipe(path)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list:
    """Replace the search by one that records the resolved configuration and stops there (exit 0)."""
    from automl_tl.search import engine

    seen: list = []

    class FakeSearch:
        def __init__(self, request, plugin, console) -> None:
            seen.append(request.config)

        def run(self) -> Leaderboard:
            raise SystemExit(0)  # an empty board would be a search in which no trial completed: exit 1

    monkeypatch.setattr(engine, "SearchRun", FakeSearch)
    return seen


def test_precedence_plugin_default_then_recipe_then_flags(toy, run_cli, write_recipe, captured, monkeypatch, tmp_path):
    import toy_modality

    monkeypatch.setattr(
        toy_modality.ToyPlugin,
        "default_recipe",
        lambda self: {
            "search": {"objective": "accuracy", "seed": 1, "n_trials": 7},
            "data": {"test_fraction": 0.3, "validation_fraction": 0.3},
            "space": {"epochs": [2, 4], "head": "linear"},
        },
    )
    recipe = write_recipe(
        'modality = "toy"\n[search]\nseed = 2\n[data]\ntest_fraction = 0.25\n[space]\nepochs = [1, 3]\n'
    )
    code, out, err = run_cli("search", "--recipe", recipe, "--seed", "3", "--n-trials", "2", "--backbone", "toy-net")
    assert code == 0, err
    (config,) = captured
    assert config.search.objective == "accuracy"  # plugin default, nothing overrides it
    assert config.data.validation_fraction == 0.3  # plugin default over the core default
    assert config.data.test_fraction == 0.25  # recipe over plugin
    assert config.space["epochs"] == [1, 3]  # recipe over plugin
    assert config.space["head"] == "linear"  # tables merge: the recipe's [space] keeps the plugin's other keys
    assert config.search.seed == 3  # flag over recipe over plugin
    assert config.search.n_trials == 2  # flag over plugin
    assert config.space["backbone"] == ["toy-net"]  # flag


def test_data_flag_replaces_the_recipes_dataset(toy, run_cli, write_recipe, captured, tmp_path):
    recipe = write_recipe('modality = "toy"\n[data]\ndataset = "fsdd"\ntest_groups = ["g1"]\n')
    (tmp_path / "mine.json").write_text("[]")
    code, _, err = run_cli("search", "--recipe", recipe, "--data", "mine.json")
    assert code == 0, err
    (config,) = captured
    assert config.data.dataset is None
    assert config.data.path == Path("mine.json")
    assert config.data.test_groups == ["g1"]  # the rest of [data] still applies


def test_timeout_alone_means_as_many_trials_as_fit(toy, run_cli, captured):
    code, _, err = run_cli("search", "--modality", "toy", "--timeout", "30")
    assert code == 0, err
    (config,) = captured
    assert config.search.n_trials is None and config.search.timeout == 30


@pytest.mark.parametrize(("recipe", "flags", "expected"), [
    ("", [], (20, 420)),  # the plugin's own pair: both bind, whichever comes first
    ("[search]\ntimeout = 60\n", [], (None, 60)),  # a recipe's time budget over the plugin's count
    ("[search]\nn_trials = 5\n", [], (5, 420)),
    ("", ["--timeout", "30"], (None, 30)),  # the flag's time budget alone: as many trials as fit
    ("[search]\nn_trials = 5\n", ["--timeout", "30"], (None, 30)),
    ("", ["--n-trials", "3"], (3, 420)),
])
def test_a_time_budget_without_a_trial_count_in_its_layer_or_a_later_one_means_as_many_as_fit(
    toy, run_cli, write_recipe, captured, monkeypatch, recipe, flags, expected,
):
    import toy_modality

    monkeypatch.setattr(toy_modality.ToyPlugin, "default_recipe", lambda self: {"search": {"n_trials": 20, "timeout": 420}})
    code, _, err = run_cli("search", "--recipe", write_recipe('modality = "toy"\n' + recipe), *flags)
    assert code == 0, err
    (config,) = captured
    assert (config.search.n_trials, config.search.timeout) == expected
