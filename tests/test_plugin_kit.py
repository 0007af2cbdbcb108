"""The plugin kit (`automl_tl.testing`, `automl-tl plugins check`) and the search's pre-flight.

Each flaw of `tests/fixtures/flawed_modality.py` is a mistake a plugin author made: the kit must
name the part at fault in one message, and the search must stop before its first trial with it.
"""

from __future__ import annotations

import json

import pytest

from automl_tl.config import plugin_options
from automl_tl.registry import get_plugin
from automl_tl.testing import PluginCheckFailed, check_plugin


@pytest.fixture
def flawed(register_plugin) -> None:
    register_plugin("flawed-modality", {"flawed": "flawed_modality:FlawedPlugin"})


def backbone_problems(name: str) -> list[str]:
    report = check_plugin(get_plugin("flawed"), backbones=[name], raise_on_failure=False)
    return next(c for c in report.checks if c.name == f"backbone {name}").problems


def test_the_toy_plugin_passes_every_check(toy):
    report = check_plugin(get_plugin("toy"))
    assert report.ok and {c.name for c in report.checks} >= {"entry point", "import cost", "load_data", "backbone toy-net"}


@pytest.mark.parametrize(("flaw", "fragments"), [
    ("leaky-mask", ("block 2 of 2 (LeakyMaskBlock)", "ignores the mask", "differ by")),
    ("channels-first", ("block 2 of 2 (ChannelsFirstBlock)", "(B, C, T)", "transpose(1, 2)")),
    ("wide-block", ("block 2 of 2 (WideBlock)", "width 64", "block_widths says 32")),
    ("random-transform", ("transform(raw, augment=False)", "two calls")),
    ("stale-preprocessor", ("build_preprocessor()", "other tensors than the backbone's preprocessor")),
    ("renamed-preprocessor", ("build_preprocessor() gives fingerprint 'toy-pre-v2'", "'toy-pre-scale1.0'", "refuse to load")),
])
def test_each_flaw_is_one_message_naming_the_part_at_fault(flawed, flaw, fragments):
    problems = backbone_problems(flaw)
    assert len(problems) == 1, problems
    for fragment in fragments:
        assert fragment in problems[0], (fragment, problems[0])


def test_an_option_that_changes_the_preprocessing_must_change_its_fingerprint(flawed):
    assert backbone_problems("toy-net") == [
        "option scale = 2.0 changes what transform() gives but neither fingerprint: put it in preprocessor.fingerprint, "
        "or cached outputs of the old setting are reused"]


def test_the_kit_raises_in_a_plugins_own_test_suite(flawed):
    with pytest.raises(PluginCheckFailed, match="block 2 of 2 \\(WideBlock\\)") as failed:
        check_plugin(get_plugin("flawed"), backbones=["wide-block"])
    assert not failed.value.report.ok


def test_an_unregistered_plugin_and_a_heavy_import_are_named(register_plugin, toy_modules):
    register_plugin("heavy-modality", {"heavy": "heavy_modality:HeavyPlugin"})
    report = check_plugin(toy_modules[0].ToyPlugin(), raise_on_failure=False)
    assert "no entry point named 'toy' in the group automl_tl.modalities" in report.problems[0]
    heavy = check_plugin(get_plugin("heavy"), raise_on_failure=False)
    assert [p for p in heavy.problems if p.startswith("import cost")] == [
        "import cost: importing heavy_modality loads torch: import them inside build_backbone / load_data, "
        "so listing plugins stays fast"]


def test_load_data_with_groups_for_some_examples_only_is_named(toy, toy_modules, tmp_path):
    rows = [{"x": e.item, "label": e.label, "group": e.group if i % 2 else None}
            for i, e in enumerate(toy_modules[0].synthetic(n_per_class=4))]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    report = check_plugin(get_plugin("toy"), data=tmp_path / "data.json", raise_on_failure=False)
    assert report.problems == ["load_data: 6 of 12 examples have no group while the others have one: "
                               "give every example its group or none"]


def test_plugins_check_command_reports_and_exits_1(flawed, run_cli):
    code, out, err = run_cli("plugins", "check", "flawed", "--backbone", "channels-first", "--scale", "3")
    assert code == 1, err
    assert "block 2 of 2 (ChannelsFirstBlock)" in out and "Traceback" not in out + err
    code, out, err = run_cli("plugins", "check", "flawed", "--backbone", "toy-net", "--scale", "0")
    assert code == 1 and "option scale = 1.0 changes" in out


@pytest.mark.parametrize(("flaw", "block"), [("leaky-mask", "LeakyMaskBlock"), ("channels-first", "ChannelsFirstBlock")])
def test_search_stops_before_its_first_trial_and_the_corrected_command_runs(
    flawed, flaw, block, run_cli, write_recipe, fast_recipe, assert_user_error, tmp_path
):
    """Defects: a mask-ignoring block and a (B, C, T) layout were found only as failed trials; the failed
    start then left a config.json that refused the corrected command."""
    recipe = write_recipe(fast_recipe)
    code, out, err = run_cli("search", "-m", "flawed", "--backbone", flaw, "-r", recipe, "-n", "2", "--run-dir", "run")
    assert_user_error(code, out, err, f"backbone '{flaw}'", f"({block})", "plugins check flawed")
    assert not (tmp_path / "run" / "config.json").exists()
    code, out, err = run_cli("leaderboard", "run")
    assert_user_error(code, out, err, "not a run directory")

    code, out, err = run_cli("search", "-m", "flawed", "--backbone", "toy-net", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert code == 0, err
    records = [json.loads(p.read_text()) for p in (tmp_path / "run").glob("trials/*/record.json")]
    assert [r["state"] for r in records] == ["complete", "complete"]


def test_a_start_failing_after_the_study_exists_leaves_no_study_behind(toy, run_cli, write_recipe, fast_recipe, tmp_path,
                                                                         monkeypatch):
    from automl_tl.search.engine import SearchRun

    def fail(*args: object) -> None:
        raise KeyboardInterrupt  # e.g. Ctrl-C during the frozen pass

    recipe = write_recipe(fast_recipe)
    with monkeypatch.context() as patch:
        patch.setattr(SearchRun, "_warm_up", fail)
        code, _, _ = run_cli("search", "-m", "toy", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert code == 130 and not (tmp_path / "run" / "config.json").exists()
    code, out, err = run_cli("search", "-m", "toy", "-r", recipe, "-n", "2", "--run-dir", "run", "--seed", "5")
    assert code == 0, err
    assert "resuming" not in out


def test_a_backbones_notes_are_shown_when_it_loads(toy, toy_modules, run_cli, write_recipe, fast_recipe, monkeypatch):
    build = toy_modules[1].build

    def noted(**options: object):
        backbone = build(**options)
        backbone.notes = ["no preprocessor config: normalising with ImageNet mean and std"]
        return backbone

    monkeypatch.setattr(toy_modules[1], "build", noted)
    code, out, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "-n", "1")
    assert code == 0, err
    assert "note: no preprocessor config: normalising with ImageNet mean and std" in out


def test_preflight_passes_the_toy_network(backbone, examples):
    from automl_tl.testing.network import check_backbone

    assert check_backbone(backbone, [e.item for e in examples]) == []


def test_options_object_reaches_the_kit(flawed):
    plugin = get_plugin("flawed")
    assert plugin_options(plugin, {"scale": 2.0}).scale == 2.0
    report = check_plugin(plugin, backbones=["leaky-mask"], options={"scale": "2"}, raise_on_failure=False)
    assert any("ignores the mask" in p for p in report.problems)
