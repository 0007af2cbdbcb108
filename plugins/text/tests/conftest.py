"""Fixtures for the text plugin: offline mode, tiny random-init encoders saved like real ones, a CLI runner.

The tiny models (hidden 32, 2 layers) are written with ``save_pretrained`` next to a hand-written
WordPiece vocabulary, so they load through exactly the path a user's model folder takes.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if importlib.util.find_spec("automl_tl_text") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = (
    "free win prize cash call now claim text reply urgent winner offer award stop txt mobile "
    "hello how are you see tomorrow lunch meeting ok thanks home later love dinner sorry sure "
    "the a to i my me is it in for of and on at be will can what go get good day night"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"), *"abcdefghijklmnopqrstuvwxyz"]
SPAM = "free win prize cash call now claim text reply urgent winner offer award stop txt mobile".split()
HAM = "hello how are you see tomorrow lunch meeting ok thanks home later love dinner sorry sure".split()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, above all on a shared, oversubscribed CPU (measured: a
    3-trial search took 19 s of compute with 2 threads under load, 2 s with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _save_tiny(factory: pytest.TempPathFactory, name: str, model_class: type, config: object) -> Path:
    """A random-init model (seed 0) and a BertTokenizerFast over VOCAB, saved as ``from_pretrained`` reads them."""
    import torch
    from transformers import BertTokenizerFast

    folder = factory.mktemp(name)
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab=str(vocab), do_lower_case=True, model_max_length=64).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    return _save_tiny(tmp_path_factory, "tiny-bert", BertModel, config)


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(vocab_size=len(VOCAB), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64)
    return _save_tiny(tmp_path_factory, "tiny-distilbert", DistilBertModel, config)


@pytest.fixture(scope="session")
def tiny_deberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DeBERTa-v2 with relative attention, bucketed positions and the first layer's convolution."""
    from transformers import DebertaV2Config, DebertaV2Model

    config = DebertaV2Config(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, relative_attention=True, position_buckets=16, max_relative_positions=64,
        pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", position_biased_input=False, conv_kernel_size=3,
        type_vocab_size=0, pad_token_id=0,
    )
    return _save_tiny(tmp_path_factory, "tiny-deberta", DebertaV2Model, config)


def message(rng, label: str, lo: int = 3, hi: int = 9) -> str:
    words = SPAM if label == "spam" else HAM
    common = "the a to i my me is it".split()
    return " ".join(rng.choice(words if rng.random() < 0.7 else common) for _ in range(rng.randint(lo, hi)))


@pytest.fixture
def make_message():
    """``make_message(rng, label, lo, hi)``: a random ham- or spam-like message."""
    return message


@pytest.fixture
def spam_csv(tmp_path: Path) -> Path:
    import random

    rng = random.Random(0)
    rows = ["text,label"] + [f"{message(rng, label)},{label}" for label in ("ham", "spam") for _ in range(30)]
    path = tmp_path / "messages.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Invoke the CLI in a temporary working directory; returns (exit code, output)."""
    from typer.testing import CliRunner

    from automl_tl.cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output

    return run
