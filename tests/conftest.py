"""Shared fixtures: plugins registered through real entry points, from dist-info folders made on the fly.

The core suite sees only the plugins a test registers: the built-in plugins (installed in the same
environment) have their own tests, and the core's must not depend on their state or their import
cost. Discovery still goes through `importlib.metadata` and real dist-info folders.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent

Register = Callable[[str, dict[str, str]], None]
RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread for the core's tests (restored after each).

    The toy network's matrices are tiny: on a busy CPU, handing each one to two threads made a
    training step ~100x slower (measured 31 ms against 0.35 ms).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A per-test folder, in RAM when /dev/shm exists.

    SQLite fsyncs every commit (an Optuna trial makes dozens); on a disk that is most of a toy
    search's time, on tmpfs it is nothing.
    """
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="automl-tl-test-", dir=base) as folder:
        yield Path(folder)


@pytest.fixture
def register_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Register:
    """Install a fake distribution whose entry points name modules in tests/fixtures.

    From the first registration on, discovery sees only the distributions registered here.
    """
    import automl_tl.registry as registry

    monkeypatch.syspath_prepend(str(FIXTURES))
    site = tmp_path / "site"
    registered: set[str] = set()
    real_entry_points = registry.entry_points

    def only_registered(**kwargs: object) -> list:
        return [ep for ep in real_entry_points(**kwargs) if ep.dist is not None and ep.dist.name in registered]

    monkeypatch.setattr(registry, "entry_points", only_registered)

    def register(distribution: str, entries: dict[str, str]) -> None:
        info = site / f"{distribution.replace('-', '_')}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
        lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
        (info / "entry_points.txt").write_text(f"[automl_tl.modalities]\n{lines}\n")
        registered.add(distribution)
        if str(site) not in sys.path:
            monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()  # importlib.metadata caches directory listings

    return register


@pytest.fixture
def toy(register_plugin: Register) -> None:
    """The toy modality, registered as a third party would."""
    register_plugin("toy-modality", {"toy": "toy_modality:ToyPlugin"})


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """Invoke the CLI in a temporary working directory; returns (exit code, stdout, stderr).

    A wide terminal keeps table cells on one line, so assertions can look for whole values.
    """
    from typer.testing import CliRunner

    from automl_tl.cli.app import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()

    def run(*args: str | Path) -> tuple[int, str, str]:
        result = runner.invoke(app, [str(a) for a in args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


@pytest.fixture
def write_recipe(tmp_path: Path) -> Callable[[str], Path]:
    """Write a TOML recipe into the test's folder and return its path."""
    count = iter(range(1_000))

    def write(text: str) -> Path:
        path = tmp_path / f"recipe{next(count)}.toml"
        path.write_text(text)
        return path

    return write


def _assert_user_error(code: int, out: str, err: str, *fragments: str) -> None:
    """Exit code 2, one line on stderr naming the problem, no traceback anywhere."""
    assert code == 2, (code, out, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error:"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in out + err


@pytest.fixture
def assert_user_error() -> Callable[..., None]:
    """``assert_user_error(code, out, err, *fragments)``: how every user mistake must end."""
    return _assert_user_error


FAST_RECIPE = """
[search]
seed = 0
pruner = "none"
[space]
strategy = ["feature_extraction", "partial"]
epochs = [1, 2]
batch_size = 32
"""


@pytest.fixture
def fast_recipe() -> str:
    """A toy search that takes a second or two a trial: no pruning, 1-2 epochs, cached strategies only."""
    return FAST_RECIPE


def _write_rows(path: Path, shuffle_labels: bool = False, **kwargs: Any) -> Path:
    import toy_modality

    examples = toy_modality.synthetic(n_per_class=kwargs.pop("n_per_class", 12), noise=0.5, **kwargs)
    labels = [e.label for e in examples]
    if shuffle_labels:
        random.Random(7).shuffle(labels)
    path.write_text(json.dumps([{"x": e.item, "label": label, "group": e.group} for e, label in zip(examples, labels)]))
    return path


@pytest.fixture
def toy_rows(toy_modules) -> Callable[..., Path]:
    """``toy_rows(path, shuffle_labels=False, **synthetic)``: toy examples written as a JSON file the toy plugin reads."""
    return _write_rows


@pytest.fixture
def domains(tmp_path: Path, toy_rows: Callable[..., Path]) -> dict[str, Path]:
    """A toy source, a shifted target and a labelled shifted target test set (domain adaptation)."""
    return {
        "source": toy_rows(tmp_path / "source.json", seed=0),
        "target": toy_rows(tmp_path / "target.json", seed=1, shift=1.0),
        "target_test": toy_rows(tmp_path / "target_test.json", seed=2, shift=1.0),
    }


@pytest.fixture
def killable_recipe() -> Callable[[int], str]:
    """A toy search of ``n_trials`` for the tests that kill, stall or race workers.

    No pruning (every trial spends its budget the same way) and a 1 s heartbeat: a trial killed
    before it named its worker is taken to be abandoned after 4 s, not 2 minutes.
    """

    def recipe(n_trials: int, space: str = 'strategy = ["feature_extraction", "partial"]\nepochs = [2, 3]', more: str = "") -> str:
        """``space``: the ``[space]`` table's lines besides the batch size; ``more``: tables after it."""
        return f"""
modality = "toy"
[search]
n_trials = {n_trials}
seed = 0
pruner = "none"
heartbeat = 1
[space]
{space}
batch_size = 32
{more}"""

    return recipe


@pytest.fixture
def toy_modules(monkeypatch: pytest.MonkeyPatch):
    """The toy plugin and network modules, imported from tests/fixtures."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    import toy_modality
    import toy_network

    return toy_modality, toy_network


@pytest.fixture
def backbone(toy_modules):
    """A fresh random-init toy backbone (3 blocks, masked variable-length sequences)."""
    return toy_modules[1].build()


@pytest.fixture
def examples(toy_modules):
    """15 toy examples, lengths 3..12, so batches are padded."""
    return toy_modules[0].synthetic(n_per_class=5, seed=3)


@pytest.fixture
def add_trial() -> Callable[..., None]:
    """Adds a finished trial with the user attributes the engine writes, for leaderboard and report tests.

    A pruned trial gets the intermediate ``scores`` it was pruned after (epochs 1, 2...).
    """
    import optuna
    from optuna.trial import TrialState

    def add(study: optuna.Study, state: TrialState, value: float | None, params: dict, scores: tuple[float, ...] = (0.4,),
            **attrs: object) -> None:
        trial = study.ask()
        trial.set_user_attr("params", params)
        for key, attr in attrs.items():
            trial.set_user_attr(key, attr)
        if state == TrialState.PRUNED:
            for epoch, score in enumerate(scores, start=1):
                trial.report(score, epoch)
        study.tell(trial, value, state=state)

    return add


@pytest.fixture
def bench_module(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """Import ``bench/<name>.py`` afresh, as its scripts run (the repository root on the path)."""

    def load(name: str) -> Any:
        monkeypatch.syspath_prepend(str(REPO))
        sys.modules.pop(f"bench.{name}", None)
        return importlib.import_module(f"bench.{name}")

    return load


@pytest.fixture
def small_data(toy: None, toy_modules: Any, tmp_path: Path) -> str:
    """A few noisy toy examples in the working folder: a validation split too small to choose on."""
    toy_modality, _ = toy_modules
    rows = [{"x": e.item, "label": e.label} for e in toy_modality.synthetic(n_per_class=10, seed=4, noise=0.8)]
    (tmp_path / "small.json").write_text(json.dumps(rows))
    return "small.json"
