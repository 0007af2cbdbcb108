"""The {{name}} modality for automl-tl.

This module is what the entry point names: it stays cheap to import (no torch), so
``automl-tl plugins list`` stays fast; the network is imported in `build_backbone`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from automl_tl.contract import BackboneInfo, DataRequest, Example, LabelledData, ModalityPlugin
from automl_tl.errors import DataError, UserError

if TYPE_CHECKING:
    from automl_tl.backbone import Backbone

CLASSES = ("low", "high")
FEATURES = 6


@dataclass
class {{Class}}Options:
    """What a recipe's ``[options]`` table (or ``--scale 2``) may set."""

    scale: float = 1.0
    """Inputs are multiplied by it; part of the preprocessing's fingerprint."""

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise UserError(f"options.scale must be positive, got {self.scale!r}")


class {{Class}}Plugin(ModalityPlugin):
    name = "{{name}}"
    description = "{{name}}: sequences of feature vectors, one text file per example"
    default_backbone = "{{name}}-net"
    default_dataset = "synthetic sequences, 2 classes (pass --data DATA/<label>/<example>.txt)"
    options_type = {{Class}}Options

    def backbones(self) -> Sequence[BackboneInfo]:
        return [BackboneInfo("{{name}}-net", "random init", "5k params", available_offline=True,
                             description="a small masked residual network; replace it with your pretrained one")]

    def load_data(self, request: DataRequest) -> LabelledData:
        if request.path is None:
            return LabelledData(synthetic(request.seed), "synthetic sequences (no --data given)", group_name="session")
        files = sorted(request.path.glob("*/*.txt"))
        if not files:
            raise DataError(f"no DATA/<label>/<example>.txt files in {request.path}")
        examples = [Example(item=str(path), label=path.parent.name) for path in files]
        return LabelledData(examples, f"{len(examples)} sequences from {request.path}")

    def build_backbone(self, name: str, options: {{Class}}Options) -> Backbone:
        if name != self.default_backbone:
            raise UserError(f"unknown backbone {name!r}", hint=f"use {self.default_backbone}")
        from automl_tl_{{name}}.network import build

        return build(FEATURES, options.scale)


def synthetic(seed: int, per_class: int = 30) -> list[Example]:
    """Sequences of 4-16 vectors; the class shifts the mean of one feature. Items are the vectors themselves."""
    rng = random.Random(seed)
    examples = []
    for c, label in enumerate(CLASSES):
        for i in range(per_class):
            rows = [[rng.gauss(1.5 * c if d == 0 else 0.0, 1.0) for d in range(FEATURES)] for _ in range(rng.randint(4, 16))]
            examples.append(Example(item=rows, label=label, group=f"s{i % 5}"))
    return examples
