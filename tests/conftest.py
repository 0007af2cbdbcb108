"""Shared fixtures: plugins registered through real entry points, from dist-info folders made on the fly."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

Register = Callable[[str, dict[str, str]], None]


@pytest.fixture
def register_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Register:
    """Install a fake distribution whose entry points name modules in tests/fixtures."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    site = tmp_path / "site"

    def register(distribution: str, entries: dict[str, str]) -> None:
        info = site / f"{distribution.replace('-', '_')}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
        lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
        (info / "entry_points.txt").write_text(f"[automl_tl.modalities]\n{lines}\n")
        monkeypatch.syspath_prepend(str(site))

    return register


@pytest.fixture
def toy(register_plugin: Register) -> None:
    """The toy modality, registered as a third party would."""
    register_plugin("toy-modality", {"toy": "toy_modality:ToyPlugin"})


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Invoke the CLI in a temporary working directory; returns (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from automl_tl.cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run
