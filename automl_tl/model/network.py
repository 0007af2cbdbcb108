"""The whole trained network in one module: the backbone's frozen prefix, then the trial's tail.

During a search the frozen prefix's output comes from the feature store and only the `Tail` runs.
A model that is used (predicted with, exported) has no store: `Network` runs the stem and the first
``freeze_depth`` blocks itself and hands the tail exactly what the store would have, so the same
weights give the same predictions, in fp32, from a collated batch to class probabilities.

A model trained for a target domain (``--target``) is used on that domain: a tail adapted by
``statistics`` maps its input features onto the source's before the head reads them, as the
search's target evaluation did (`automl_tl.search.model.Tail.classify`). What other methods train
beside the tail (a domain classifier) is not part of its weights, so it loads and exports as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from automl_tl.backbone import Backbone, mean_pool
from automl_tl.search.model import Tail
from automl_tl.vocabulary import TrialParams


class Network(nn.Module):
    """Collated batch (the preprocessor's dict) → class probabilities (B, n_classes)."""

    def __init__(self, backbone: Backbone, params: TrialParams, n_classes: int, state: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.tail = Tail(backbone, params, n_classes)
        self.tail.load_state_dict(state)
        k = params.freeze_depth
        self.stem = backbone.stem if self.tail.stem is None else None
        self.prefix = nn.ModuleList(backbone.blocks[:k]) if self.tail.stem is None else nn.ModuleList()
        self.pool = backbone.pool if k == backbone.depth else None
        """The backbone's own pooling, used only when every block is frozen (the store's ``default_pooled``)."""
        self.blocks_pooled = params.pool.reads == "blocks"
        """The tail's pooling mixes every block's mean, so the frozen blocks' means go to it too."""
        self.eval()

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return torch.softmax(self.logits(batch), dim=-1)

    def logits(self, batch: dict[str, Tensor]) -> Tensor:
        return self.tail.classify(self.features(batch), target=True)

    def features(self, batch: dict[str, Tensor]) -> Tensor:
        """The head's input, as `Tail.features` computes it from the store's inputs during a search."""
        if self.stem is None:  # nothing frozen: the tail owns the stem
            return self.tail.features(None, batch=batch)
        hidden = self.stem(batch)
        means: list[Tensor] = []
        for block in self.prefix:
            hidden = block(hidden)
            means.append(mean_pool(hidden))
        if self.tail.blocks:
            prefix_pooled = torch.stack(means, dim=1) if self.blocks_pooled else None
            return self.tail.features(hidden, prefix_pooled)
        prefix_pooled = torch.stack(means, dim=1) if self.blocks_pooled else means[-1]
        default_pooled = self.pool(hidden) if self.pool is not None else None
        return self.tail.features(hidden, prefix_pooled, default_pooled)  # a pooling that reads the sequence takes ``hidden``


class Positional(nn.Module):
    """`Network` over positional tensors named ``keys``: exporters take tensors, not a dict."""

    def __init__(self, network: Network, keys: Sequence[str]) -> None:
        super().__init__()
        self.network = network
        self.keys = list(keys)

    def forward(self, *tensors: Tensor) -> Tensor:
        return self.network(dict(zip(self.keys, tensors, strict=True)))
