"""Safe iteration on a plugin: its identity in caches, config.json and the report; its errors with a place."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

NETWORK = '''
from toy_modality import ToyPlugin
import toy_network


class Plugin(ToyPlugin):
    name = "edited"

    def build_backbone(self, name, options):
        from automl_tl.backbone import Backbone, MeanPool
        import torch

        torch.manual_seed(0)
        width = WIDTH
        backbone = toy_network.build()
        if width != toy_network.WIDTH:  # the author's "fix": a narrower network, same fingerprint
            project = torch.nn.Linear(toy_network.WIDTH, width)
            blocks = [Narrow(project)]
            return Backbone(preprocessor=backbone.preprocessor, stem=backbone.stem, blocks=blocks, pool=MeanPool(),
                            width=width, fingerprint=backbone.fingerprint)
        return backbone


class Narrow(__import__("torch").nn.Module):
    def __init__(self, project):
        super().__init__()
        self.project = project

    def forward(self, hidden):
        from automl_tl.backbone import Hidden
        return Hidden(self.project(hidden.states) * hidden.mask.unsqueeze(-1), hidden.mask)
'''


def write_plugin(site: Path, width: int) -> None:
    (site / "edited_modality.py").write_text(f"WIDTH = {width}\n" + NETWORK)
    sys.modules.pop("edited_modality", None)
    importlib.invalidate_caches()


def test_cached_outputs_of_old_plugin_code_are_not_reused(register_plugin, run_cli, write_recipe, fast_recipe, tmp_path,
                                                          monkeypatch):
    """Defect: after fixing the plugin and re-running in the same run folder, a trial failed on cached
    outputs of the old code (the key held the weights' fingerprint, which the author did not change)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    register_plugin("edited-modality", {"edited": "edited_modality:Plugin"})
    site = tmp_path / "site"
    recipe = write_recipe(fast_recipe)
    write_plugin(site, 32)
    code, _, err = run_cli("search", "-m", "edited", "-r", recipe, "-n", "2", "--run-dir", "run")
    assert code == 0, err
    before = json.loads((tmp_path / "run" / "config.json").read_text())["plugins"]

    write_plugin(site, 16)
    code, out, err = run_cli("search", "-m", "edited", "-r", recipe, "-n", "4", "--run-dir", "run")
    assert code == 0, err
    states = [json.loads(p.read_text())["state"] for p in sorted((tmp_path / "run").glob("trials/*/record.json"))]
    assert states == ["complete"] * 4, out
    after = json.loads((tmp_path / "run" / "config.json").read_text())["plugins"]
    assert [p["distribution"] for p in after] == ["edited-modality"]
    assert before[0]["source"] and after[0]["source"] != before[0]["source"]


def test_config_and_report_name_the_plugin_and_its_version(toy, run_cli, write_recipe, fast_recipe, tmp_path):
    code, _, err = run_cli("search", "-m", "toy", "-r", write_recipe(fast_recipe), "-n", "1", "--run-dir", "run")
    assert code == 0, err
    plugins = json.loads((tmp_path / "run" / "config.json").read_text())["plugins"]
    assert [(p["name"], p["distribution"], p["version"]) for p in plugins] == [("toy", "toy-modality", "0.1")]
    assert plugins[0]["source"]  # a hand-made dist-info: the version alone does not identify the code
    code, _, err = run_cli("report", "run", "--out", "report.md")
    assert code == 0, err
    assert f"toy-modality 0.1 (source {plugins[0]['source']})" in (tmp_path / "report.md").read_text()


def test_a_plugin_failing_at_import_says_where_and_debug_shows_the_traceback(register_plugin, run_cli, assert_user_error,
                                                                             monkeypatch):
    """Defect: a plugin failing at import showed one line with no file, no line and no way to see the traceback."""
    register_plugin("broken-modality", {"broken": "broken_modality:Plugin"})
    code, out, err = run_cli("search", "-m", "broken")
    assert_user_error(code, out, err, "RuntimeError: this plugin is broken on purpose", "broken_modality.py, line 3",
                      "AUTOML_TL_DEBUG=1")
    monkeypatch.setenv("AUTOML_TL_DEBUG", "0")  # restored after the test: --debug sets it for the process
    code, out, err = run_cli("--debug", "search", "-m", "broken")
    assert code == 2 and "Traceback (most recent call last)" in err and 'broken_modality.py", line 3' in err
    assert err.strip().splitlines()[-1].startswith("Error: plugin 'broken'")


def test_debug_variable_shows_the_traceback_of_a_plugin_bug(register_plugin, run_cli, monkeypatch):
    register_plugin("misbehaving", {"raising-catalogue": "misbehaving_modality:RaisingCatalogue"})
    monkeypatch.setenv("AUTOML_TL_DEBUG", "1")
    code, out, err = run_cli("search", "-m", "raising-catalogue", "-n", "1")
    assert code == 2 and "KeyError: 'weights index'" in err and "Traceback" in err and "misbehaving_modality.py" in err
