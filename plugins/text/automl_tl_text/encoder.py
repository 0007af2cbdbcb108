"""A Hugging Face encoder cut into the core's stem, blocks and pooling, plus its tokenizing preprocessor.

stem = the embeddings (`Hidden(states, mask)`), blocks = the transformer layers one by one, each
wrapped to build the attention mask its layer needs from the boolean padding mask and to zero its
padded positions, pool = the first ([CLS]) token or a masked mean. Because every block masks the
padding out of attention, an example's output does not depend on its batch, which is what lets the
core cache the frozen prefix per example and re-pad it in any batch later.

Supported: the BERT family (BERT, MiniLM, RoBERTa, XLM-R, CamemBERT, ELECTRA), DistilBERT and
DeBERTa-v2/v3 (relative positions and the first layer's convolution included).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from automl_tl.backbone import Backbone, Hidden, MeanPool, lengths_to_mask
from automl_tl.errors import DataError, UserError

from automl_tl_text import ResolvedBackbone
from automl_tl_text.options import TextOptions

MAX_TOKENS = 512
"""Never more tokens than this per text, whatever the model allows (attention is quadratic)."""
BERT_FAMILY = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
SUPPORTED = (*BERT_FAMILY, "distilbert", "deberta-v2")
TOKEN_DROPOUT = 0.1
"""With ``augment``: the chance that a word piece is dropped (never [CLS]/[SEP]), a mild regulariser."""
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "spm.model", "sentencepiece.bpe.model", "tokenizer_config.json")


# --- network ---------------------------------------------------------------------------------


class EmbeddingStem(nn.Module):
    """The model's embeddings: token ids in, ``Hidden(states, mask)`` out, padded positions zeroed."""

    def __init__(self, embeddings: nn.Module, project: nn.Module | None = None, pass_mask: bool = False) -> None:
        super().__init__()
        self.embeddings = embeddings
        self.project = project
        self.pass_mask = pass_mask
        self.token_types = "token_type_ids" in inspect.signature(embeddings.forward).parameters

    def forward(self, batch: dict[str, Tensor]) -> Hidden:
        mask = batch["attention_mask"].bool()
        kwargs: dict[str, Tensor] = {"input_ids": batch["input_ids"]}
        if self.token_types and "token_type_ids" in batch:
            kwargs["token_type_ids"] = batch["token_type_ids"]
        if self.pass_mask:
            kwargs["mask"] = mask.long()
        states = self.embeddings(**kwargs)
        if self.project is not None:
            states = self.project(states)
        return Hidden(_zero_padding(states, mask), mask)


class EncoderLayerBlock(nn.Module):
    """One BERT-family or DistilBERT layer between `Hidden`s, attending to real tokens only."""

    def __init__(self, layer: nn.Module, config: Any) -> None:
        super().__init__()
        self.layer = layer
        self.config = config

    def forward(self, hidden: Hidden) -> Hidden:
        from transformers.masking_utils import create_bidirectional_mask

        states, mask = hidden
        assert mask is not None, "text blocks need the padding mask"
        # the mask in whatever form this model's attention implementation (sdpa, eager...) takes;
        # None when nothing is padded
        attention = create_bidirectional_mask(config=self.config, inputs_embeds=states, attention_mask=mask)
        out = self.layer(states, attention_mask=attention)
        if isinstance(out, tuple):  # older transformers return (hidden_states, ...)
            out = out[0]
        return Hidden(_zero_padding(out, mask), mask)


class DebertaRelative(nn.Module):
    """DeBERTa-v2's relative-position embeddings, owned by its encoder and shared by every layer."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.relative_attention = bool(encoder.relative_attention)
        self.rel_embeddings = encoder.rel_embeddings if self.relative_attention else None
        self.norm = encoder.LayerNorm if "layer_norm" in encoder.norm_rel_ebd else None
        self.position_buckets = getattr(encoder, "position_buckets", -1)
        self.max_relative_positions = getattr(encoder, "max_relative_positions", -1)

    def embeddings(self) -> Tensor | None:
        if self.rel_embeddings is None:
            return None
        weight = self.rel_embeddings.weight
        return self.norm(weight) if self.norm is not None else weight

    def positions(self, states: Tensor) -> Tensor | None:
        if not self.relative_attention:
            return None
        from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

        return build_relative_position(
            states, states, bucket_size=self.position_buckets, max_position=self.max_relative_positions
        )


class DebertaBlock(nn.Module):
    """One DeBERTa-v2 layer; the first also runs the encoder's convolution over the embeddings."""

    def __init__(self, layer: nn.Module, relative: DebertaRelative, conv: nn.Module | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.relative = relative
        self.conv = conv

    def forward(self, hidden: Hidden) -> Hidden:
        states, mask = hidden
        assert mask is not None, "text blocks need the padding mask"
        real = mask.long()
        pairwise = real[:, None, None, :] * real[:, None, :, None]  # (B, 1, T, T): both tokens real
        out = self.layer(
            states,
            pairwise,
            query_states=None,
            relative_pos=self.relative.positions(states),
            rel_embeddings=self.relative.embeddings(),
        )
        if isinstance(out, tuple):
            out = out[0]
        if self.conv is not None:
            out = self.conv(states, out, real)
        return Hidden(_zero_padding(out, mask), mask)


class FirstTokenPool(nn.Module):
    """The [CLS] / <s> token's state: what BERT-style classifiers are trained to read."""

    def forward(self, hidden: Hidden) -> Tensor:
        return hidden.states[:, 0]


def _zero_padding(states: Tensor, mask: Tensor) -> Tensor:
    return states * mask.unsqueeze(-1).to(states.dtype)


def split_encoder(model: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    """(stem, blocks) of a supported Hugging Face encoder; a `UserError` for other architectures."""
    config = model.config
    kind = config.model_type
    if kind in BERT_FAMILY:
        project = getattr(model, "embeddings_project", None)  # ELECTRA with embedding_size != hidden_size
        return EmbeddingStem(model.embeddings, project), [EncoderLayerBlock(layer, config) for layer in model.encoder.layer]
    if kind == "distilbert":
        return EmbeddingStem(model.embeddings), [EncoderLayerBlock(layer, config) for layer in model.transformer.layer]
    if kind == "deberta-v2":
        if getattr(model, "z_steps", 0) > 1:
            raise UserError("DeBERTa models with z_steps > 1 are not supported")
        encoder = model.encoder
        relative = DebertaRelative(encoder)
        blocks = [DebertaBlock(layer, relative, encoder.conv if i == 0 else None) for i, layer in enumerate(encoder.layer)]
        return EmbeddingStem(model.embeddings, pass_mask=True), blocks
    raise UserError(
        f"model type {kind!r} is not supported by the text plugin",
        hint=f"use an encoder of type {', '.join(SUPPORTED)}",
    )


# --- preprocessing ---------------------------------------------------------------------------


class TextPreprocessor:
    """Text → token ids (in ``load``, cached by the core) → tensors; batches padded to their longest text."""

    def __init__(self, tokenizer: Any, max_length: int, token_types: bool, fingerprint: str, reason: str = "") -> None:
        if tokenizer.pad_token_id is None:
            raise UserError("the tokenizer has no padding token; the text plugin needs an encoder tokenizer (BERT-like)")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.token_types = token_types
        self.pad_id = int(tokenizer.pad_token_id)
        self.special_ids = sorted(set(tokenizer.all_special_ids) - {tokenizer.unk_token_id})
        """Tokens augmentation never drops ([CLS], [SEP]...)."""
        self.fingerprint = fingerprint
        self.max_length_reason = reason
        """How ``max_length`` was chosen, in words."""

    def load(self, item: Any) -> list[int]:
        """Token ids with the special tokens, truncated to ``max_length``."""
        text = str(item)
        if not text.strip():
            raise DataError("an empty text reached the tokenizer")
        return list(self.tokenizer(text, add_special_tokens=True, truncation=True, max_length=self.max_length)["input_ids"])

    def transform(self, raw: list[int], augment: bool) -> dict[str, Tensor]:
        ids = torch.tensor(raw, dtype=torch.long)
        if augment and len(raw) > 3:
            keep = (torch.rand(len(raw)) >= TOKEN_DROPOUT) | torch.isin(ids, torch.tensor(self.special_ids))
            ids = ids[keep]
        features = {"input_ids": ids, "attention_mask": torch.ones(len(ids), dtype=torch.bool)}
        if self.token_types:
            features["token_type_ids"] = torch.zeros(len(ids), dtype=torch.long)
        return features

    def collate(self, features: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        ids = pad_sequence([f["input_ids"] for f in features], batch_first=True, padding_value=self.pad_id)
        lengths = torch.tensor([len(f["input_ids"]) for f in features])
        batch = {"input_ids": ids, "attention_mask": lengths_to_mask(lengths, ids.shape[1])}
        if self.token_types:
            batch["token_type_ids"] = torch.zeros_like(ids)
        return batch

    def length(self, raw: list[int]) -> int:
        return len(raw)


def position_cap(config: Any, tokenizer: Any, sentence_config: dict[str, Any]) -> int:
    """The most tokens this model can take: positions, tokenizer limit, sentence-transformers limit, 512."""
    caps = [MAX_TOKENS]
    positions = getattr(config, "max_position_embeddings", None)
    if positions and getattr(config, "position_biased_input", True):
        offset = (int(config.pad_token_id or 0) + 1) if config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
        caps.append(int(positions) - offset)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        caps.append(limit)
    if isinstance(sentence_config.get("max_seq_length"), int):
        caps.append(int(sentence_config["max_seq_length"]))
    return max(8, min(caps))


def fit_max_length(lengths: Sequence[int], cap: int, percentile: float) -> int:
    """A high percentile of token counts, rounded up to a multiple of 8, within [8, cap].

    Truncating at the 98th percentile cuts only the longest 2% of texts, and their attention cost
    (quadratic in length) is what a 2-core CPU would spend most of its time on.
    """
    if not lengths:
        return cap
    ordered = sorted(lengths)
    rank = min(len(ordered) - 1, max(0, math.ceil(percentile / 100 * len(ordered)) - 1))
    return int(min(cap, max(8, math.ceil(ordered[rank] / 8) * 8)))


def token_lengths(tokenizer: Any, texts: Sequence[str], cap: int) -> list[int]:
    lengths: list[int] = []
    for start in range(0, len(texts), 512):
        encoded = tokenizer(list(texts[start : start + 512]), add_special_tokens=True, truncation=True, max_length=cap)
        lengths += [len(ids) for ids in encoded["input_ids"]]
    return lengths


# --- loading ---------------------------------------------------------------------------------


def offline() -> bool:
    flags = (os.environ.get(name, "").strip().lower() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag in ("1", "true", "yes", "on") for flag in flags)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide transformers' load-time chatter (unused pooler weights and the like): the core reports progress."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_pretrained(resolved: ResolvedBackbone) -> tuple[nn.Module, Any]:
    """(model, tokenizer) from a folder or hub id; a `UserError` saying why when it cannot be loaded."""
    from transformers import AutoModel, AutoTokenizer

    local_only = resolved.local or offline()
    try:
        with _quiet():
            tokenizer = AutoTokenizer.from_pretrained(resolved.location, local_files_only=local_only)
            model = AutoModel.from_pretrained(resolved.location, local_files_only=local_only, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if resolved.local:
            raise UserError(f"cannot load the model folder {resolved.location}: {reason}",
                            hint="give a folder written by save_pretrained (config, weights and tokenizer files)") from None
        if offline():
            raise UserError(
                f"backbone {resolved.name} is not available offline (it is not in the local Hugging Face cache)",
                hint="download it once with network access (HF_HUB_OFFLINE unset), pass a local model folder, or use minilm-l6",
            ) from None
        raise UserError(f"cannot load backbone {resolved.name} from the Hugging Face hub: {reason}") from None
    return model, tokenizer


def _model_files(resolved: ResolvedBackbone, patterns: Sequence[str], names: Sequence[str]) -> list[Path]:
    if resolved.local:
        folder = Path(resolved.location)
        found = {p for pattern in patterns for p in folder.glob(pattern)} | {folder / n for n in names}
        return sorted(p for p in found if p.is_file())
    from huggingface_hub import try_to_load_from_cache

    files = []
    for name in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", *names):
        path = try_to_load_from_cache(resolved.location, name)
        if isinstance(path, str):
            files.append(Path(path))
    return files


def _file_stamp(paths: Sequence[Path]) -> list[str]:
    stamps = []
    for path in paths:
        stat = path.stat()
        stamps.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return stamps


def sentence_transformers_config(resolved: ResolvedBackbone) -> tuple[dict[str, Any], str | None]:
    """(sentence_bert_config.json, pooling mode) of a sentence-transformers model, empty when it is not one."""
    def read(name: str) -> dict[str, Any]:
        if resolved.local:
            path: Path | None = Path(resolved.location) / name
        else:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(resolved.location, name)
            path = Path(found) if isinstance(found, str) else None
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    sentence = read("sentence_bert_config.json")
    pooling = read("1_Pooling/config.json")
    mode = None
    if pooling.get("pooling_mode_mean_tokens"):
        mode = "mean"
    elif pooling.get("pooling_mode_cls_token"):
        mode = "cls"
    return sentence, mode


def build_text_backbone(resolved: ResolvedBackbone, options: TextOptions, texts: Sequence[str] | None) -> Backbone:
    """The backbone for ``resolved``, its ``max_length`` fitted to ``texts`` (the training texts) unless set."""
    model, tokenizer = load_pretrained(resolved)
    stem, blocks = split_encoder(model)
    sentence, declared_pooling = sentence_transformers_config(resolved)
    cap = position_cap(model.config, tokenizer, sentence)
    if options.max_length is not None:
        if options.max_length > cap:
            raise UserError(f"options.max_length = {options.max_length} is more than {resolved.name} takes ({cap} tokens)")
        max_length, how = options.max_length, "set in options"
    elif texts:
        max_length = fit_max_length(token_lengths(tokenizer, texts, cap), cap, options.length_percentile)
        how = f"{options.length_percentile:g}th percentile of {len(texts)} training texts, cap {cap}"
    else:
        max_length, how = cap, "the model's limit (no training texts seen)"
    pooling = options.pooling if options.pooling != "auto" else (declared_pooling or "cls")
    token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ()) and stem.token_types  # type: ignore[attr-defined]
    tokenizer_settings = {
        "class": type(tokenizer).__name__,
        "vocab": len(tokenizer),
        "lower": getattr(tokenizer, "do_lower_case", None),
        "pad": tokenizer.pad_token_id,
        "special": sorted(set(tokenizer.all_special_ids)),
        "files": _file_stamp(_model_files(resolved, (), TOKENIZER_FILES)),
        "max_length": max_length,
        "token_types": token_types,
    }
    pre_key = hashlib.sha256(json.dumps(tokenizer_settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    weights = _file_stamp(_model_files(resolved, WEIGHT_PATTERNS, ()))
    weight_key = hashlib.sha256(json.dumps([weights, pooling, pre_key]).encode()).hexdigest()[:16]
    preprocessor = TextPreprocessor(tokenizer, max_length, token_types, f"text-tokens:{resolved.location}:{pre_key}", how)
    width = int(model.config.hidden_size)
    backbone = Backbone(
        preprocessor=preprocessor,
        stem=stem,
        blocks=blocks,
        pool=FirstTokenPool() if pooling == "cls" else MeanPool(),
        width=width,
        fingerprint=f"text:{resolved.location}:{weight_key}",
    )
    backbone.eval()
    return backbone
