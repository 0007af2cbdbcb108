"""A bundle's README.md: a model card in Hugging Face's format, for people who did not run the search.

The YAML header is what the Hub and other tools read (library, task, datasets, metrics with their
values); the body says what the model is for, what data it learnt from and how its one test
score was measured, the configuration the search found, where it may fail, and how to run it.
YAML values are written as JSON, which every YAML 1.2 reader parses, so no YAML library is needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from automl_tl.model.source import ModelSource, final_training

CONFIGURATION_LABELS = {
    "backbone": "backbone", "strategy": "transfer strategy", "freeze_depth": "blocks frozen", "backbone_lr": "backbone learning rate",
    "head_lr": "head learning rate", "weight_decay": "weight decay", "epochs": "epochs", "batch_size": "batch size",
    "head": "head", "head_hidden": "head hidden width", "dropout": "head dropout", "pooling": "pooling",
    "augment": "augmentation", "batchnorm": "BatchNorm statistics",
}


def model_card(source: ModelSource, pipeline_tag: str, distribution: str, version: str | None, network_file: str) -> str:
    """The README.md of a bundle made from ``source`` (a run) whose network is ``network_file``."""
    card = source.card
    test: Mapping[str, Any] = card.get("test") or {}
    data: Mapping[str, Any] = card.get("data") or {}
    name = source.config.get("study") or source.root.name
    dataset = str(card.get("dataset") or data.get("name") or "unknown")
    header = [
        "---",
        "library_name: automl-tl",
        f"pipeline_tag: {pipeline_tag}",
        f"tags: {json.dumps(['automl-tl', 'transfer-learning', source.modality, source.backbone, network_file.split('.')[-1]])}",
        f"datasets: {json.dumps([dataset])}",
        "metrics: [\"accuracy\", \"f1\"]",
        "model-index:",
        f"- name: {json.dumps(name)}",
        "  results:",
        f"  - task: {{type: {pipeline_tag}}}",
        f"    dataset: {{name: {json.dumps(dataset)}, type: {json.dumps(dataset)}, split: test}}",
        "    metrics:",
        *(f"    - {{type: {kind}, value: {json.dumps(round(float(test[key]), 4))}, name: {json.dumps(title)}}}"
          for key, kind, title in (("accuracy", "accuracy", "test accuracy"), ("macro_f1", "f1", "test macro-F1")) if key in test),
        "---",
    ]
    classes = source.classes
    install = f"pip install 'automl-tl[export]' '{distribution}{'==' + version if version else ''}'"
    body = [
        f"# {name}: {source.modality} classification into {len(classes)} classes",
        "",
        "Made with automl-tl by a transfer-learning search; the network runs in "
        f"{'onnxruntime' if network_file.endswith('.onnx') else 'PyTorch (TorchScript)'}, the preprocessing is the "
        f"`{source.modality}` plugin's own code.",
        "",
        "## Intended use",
        "",
        f"Classifying {source.modality} inputs into one of: {_listing(classes)}. It was trained for the data described "
        "below; use it on inputs like those, and check it on a sample of your own before relying on it.",
        "",
        "## Data and how the test split was held out",
        "",
        f"- Data: {data.get('description') or dataset}",
        f"- Split: {_sizes(data.get('sizes') or {})}; {data.get('split') or 'see the run'}",
        f"- The configuration was chosen by validation {card.get('objective') or 'score'}; the test split was used once, "
        f"after the search, on the final model ({final_training(dict(test))}).",
        "",
        "## Test scores",
        "",
        *_scores(test),
        "",
        "## Configuration found",
        "",
        *(f"- {CONFIGURATION_LABELS.get(key, key)}: {value}" for key, value in source.params.items() if value is not None),
        "",
        "## Limitations",
        "",
        f"- Tested once, on {test.get('n', '?')} examples ({data.get('split') or 'one held-out split'}): "
        "a single test split measures the model on the kind of data it holds, not on every kind.",
        "- Inputs unlike the training data (other recording conditions, wording, image sources...) may score lower.",
        f"- The classes are fixed: every input gets one of the {len(classes)}, even one that belongs to none; "
        "a low score says the model is unsure.",
        "",
        "## How to use it",
        "",
        "```bash",
        install,
        "automl-tl predict THIS_FOLDER INPUT... --top-k 3        # files, folders, a manifest, or - for stdin",
        "```",
        "",
        "```python",
        "import automl_tl",
        "model = automl_tl.load_model(\"THIS_FOLDER\")",
        "model.predict([...], top_k=3)   # per input: [{\"label\": ..., \"score\": ...}, ...], best first",
        "```",
        "",
        "Files: the network (`" + network_file + "`), `preprocessing.json` (plugin, version, options, preprocessor "
        "fingerprint), `labels.json` (the classes in output order), `metrics.json` (test scores, confusion matrix, split).",
    ]
    return "\n".join(header + [""] + body) + "\n"


def _scores(test: Mapping[str, Any]) -> list[str]:
    if not test:
        return ["The test split was not evaluated (the search was interrupted before its end)."]
    lines = [f"Accuracy **{test['accuracy']:.4f}**, macro-F1 **{test['macro_f1']:.4f}** on {test.get('n', '?')} test examples.", "",
             "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, s in (test.get("per_class") or {}).items():
        lines.append(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['support']} |")
    return lines


def _sizes(sizes: Mapping[str, int]) -> str:
    return " / ".join(f"{sizes[s]:,} {s}" for s in ("train", "validation", "test") if s in sizes) or "sizes unknown"


def _listing(classes: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(classes[:limit])
    return shown + (f" and {len(classes) - limit} more" if len(classes) > limit else "")
