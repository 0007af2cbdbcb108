"""Plugin discovery: entry points, lazy imports, broken plugins and name clashes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from automl_tl.config import plugin_options
from automl_tl.contract import ModalityPlugin
from automl_tl.errors import UserError
from automl_tl.registry import PluginWarning, discover, get_plugin


def _rows(out: str) -> list[list[str]]:
    """The cells of each line of a rich table."""
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)]
        if len(cells) > 2:
            rows.append(cells[1:-1])
    return rows


def _row(out: str, first_cell: str) -> str:
    """The table line (cells joined by " | ") whose first cell is ``first_cell``."""
    for cells in _rows(out):
        if cells[0] == first_cell:
            return " | ".join(cells)
    raise AssertionError(f"no row {first_cell!r} in:\n{out}")


def test_toy_plugin_is_discovered_through_its_entry_point_and_imported_lazily(toy, monkeypatch):
    monkeypatch.delitem(sys.modules, "toy_modality", raising=False)
    entries = discover()
    assert set(entries) == {"toy"}
    entry = entries["toy"]
    assert (entry.distribution, entry.version, entry.error) == ("toy-modality", "0.1", None)
    assert "toy_modality" not in sys.modules, "discovery must read metadata only"

    plugin = get_plugin("toy")
    assert isinstance(plugin, ModalityPlugin)
    assert plugin.name == "toy"
    assert "toy_modality" in sys.modules


def test_listing_shows_metadata_and_offline_availability_without_loading_a_model(toy, run_cli, monkeypatch):
    monkeypatch.delitem(sys.modules, "toy_network", raising=False)
    code, out, err = run_cli("plugins", "list")
    assert code == 0, err
    rows = _rows(out)
    assert ["toy", "toy-modality 0.1", "toy-net (default)", "2k params", "random init", "yes"] in rows
    assert ["", "", "toy-missing", "1M params", "pypi:not-installed", "no"] in rows
    assert "toy_network" not in sys.modules, "listing imported the plugin's network module"

    # the check above can fail: building a backbone does import the network module
    plugin = get_plugin("toy")
    plugin.build_backbone("toy-net", plugin_options(plugin, {}))
    assert "toy_network" in sys.modules


def test_listing_with_no_plugin_says_how_to_install_one(register_plugin, run_cli):
    code, out, _ = run_cli("plugins", "list")
    assert code == 0
    assert "no modality plugins installed" in out


def test_cli_and_listing_code_import_no_torch():
    """`automl-tl plugins list` stays fast: the CLI loads torch only when a search runs."""
    code = "import sys, automl_tl.cli.app, automl_tl.registry; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_plugin_raising_on_import_is_listed_as_broken_and_the_rest_still_work(toy, register_plugin, run_cli):
    register_plugin("broken-modality", {"broken": "broken_modality:Plugin"})
    code, out, err = run_cli("plugins", "list")
    assert code == 0
    assert "broken-modality 0.1 | broken: RuntimeError: this plugin is broken on purpose" in _row(out, "broken")
    assert "toy-modality 0.1 | toy-net (default)" in _row(out, "toy")
    assert "Warning:" in err and "broken-modality" in err
    assert "Traceback" not in out + err
    assert isinstance(get_plugin("toy"), ModalityPlugin)


def test_using_a_broken_plugin_is_one_clear_error(toy, register_plugin, run_cli, assert_user_error):
    register_plugin("broken-modality", {"broken": "broken_modality:Plugin"})
    code, out, err = run_cli("search", "--modality", "broken")
    assert_user_error(code, out, err, "plugin 'broken' from broken-modality is broken", "RuntimeError: this plugin is broken on purpose")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("toy_modality:CLASSES", "gives tuple, not a ModalityPlugin"),
        ("toy_modality:BrokenOnCall", "entry point is named 'odd' but the plugin calls itself 'not-what-the-entry-point-says'"),
        ("toy_modality:DoesNotExist", "AttributeError"),
    ],
)
def test_plugin_of_the_wrong_type_or_name_is_broken(register_plugin, target, message):
    register_plugin("odd-modality", {"odd": target})
    entry = discover()["odd"]
    with pytest.raises(UserError, match=re.escape(message)):
        entry.load()
    assert message in (entry.error or "")
    with pytest.warns(PluginWarning, match="odd-modality"):
        assert entry.try_load() is None


def test_name_clash_prefers_the_projects_distribution_with_a_warning(register_plugin, run_cli):
    for distribution in ("aaa-third-party", "automl-tl-toy", "zzz-third-party"):
        register_plugin(distribution, {"toy": "toy_modality:ToyPlugin"})
    for _ in range(2):  # deterministic: the same winner every time
        with pytest.warns(PluginWarning, match=r"registered by automl-tl-toy and aaa-third-party, zzz-third-party; using automl-tl-toy"):
            entries = discover()
        assert entries["toy"].distribution == "automl-tl-toy"
        assert entries["toy"].shadows == ["aaa-third-party", "zzz-third-party"]

    code, out, err = run_cli("plugins", "list")
    assert code == 0
    assert "automl-tl-toy 0.1 (shadows aaa-third-party, zzz-third-party) | toy-net (default)" in _row(out, "toy")
    assert "Warning:" in err and "using automl-tl-toy" in err


def test_name_clash_between_third_parties_goes_to_the_first_name_alphabetically(register_plugin):
    for distribution in ("zeta-plugins", "alpha-plugins"):
        register_plugin(distribution, {"toy": "toy_modality:ToyPlugin"})
    with pytest.warns(PluginWarning, match="using alpha-plugins"):
        assert discover()["toy"].distribution == "alpha-plugins"


def test_unknown_modality_lists_the_known_ones(toy):
    with pytest.raises(UserError, match=r"unknown modality 'sound' \(available: toy\)"):
        get_plugin("sound")


def test_error_text_is_shown_verbatim_not_as_console_markup(register_plugin, run_cli):
    register_plugin("markup-modality", {"markup": "broken_markup:Plugin"})
    code, out, err = run_cli("plugins", "list")
    assert code == 0, err
    assert "broken: ImportError: needs the [gpu] extra; see [/docs/install]" in _row(out, "markup")
    assert "needs the [gpu] extra; see [/docs/install]" in err
