"""The whole trained network in one module: the backbone's frozen prefix, then the trial's tail.

During a search the frozen prefix's output comes from the feature store and only the `Tail` runs.
A model that is used (predicted with, exported) has no store: `Network` runs the stem and the first
``freeze_depth`` blocks itself and hands the tail exactly what the store would have, so the same
weights give the same predictions, in fp32, from a collated batch to class probabilities.

A model trained for a target domain (``--target``) is used on that domain: a tail adapted by
``statistics`` maps its input features onto the source's before the head reads them, as the
search's target evaluation did (`automl_tl.search.model.Tail.classify`). What other methods train
beside the tail (a domain classifier) is not part of its weights, so it loads and exports as is.

A final model may average several tails of one configuration (the cross-validation folds',
`automl_tl.search.final`): they share the frozen prefix, which runs once, and their class
probabilities are averaged. One member is the usual case and computes exactly what one tail does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from automl_tl.backbone import Backbone, Hidden, mean_pool
from automl_tl.search.model import Tail
from automl_tl.vocabulary import TrialParams


class Network(nn.Module):
    """Collated batch (the preprocessor's dict) → class probabilities (B, n_classes), averaged over ``states``' tails."""

    def __init__(self, backbone: Backbone, params: TrialParams, n_classes: int, states: Sequence[Mapping[str, Tensor]]) -> None:
        super().__init__()
        if not states:
            raise ValueError("a network needs at least one tail's weights")
        self.tails = nn.ModuleList(Tail.trained(backbone, params, n_classes, state) for state in states)
        k = params.freeze_depth
        owns_stem = k == 0
        self.stem = None if owns_stem else backbone.stem
        self.prefix = nn.ModuleList() if owns_stem else nn.ModuleList(backbone.blocks[:k])
        self.pool = backbone.pool if k == backbone.depth else None
        """The backbone's own pooling, used only when every block is frozen (the store's ``default_pooled``)."""
        self.blocks_pooled = params.pool.reads == "blocks"
        """The tail's pooling mixes every block's mean, so the frozen blocks' means go to it too."""
        self.eval()

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        hidden, prefix_pooled, default_pooled = self.prefix_outputs(batch)
        owned = batch if self.stem is None else None  # nothing frozen: each tail runs its own stem
        probs = [torch.softmax(tail.classify(tail.features(hidden, prefix_pooled, default_pooled, owned), target=True), dim=-1)
                 for tail in self.tails]
        return probs[0] if len(probs) == 1 else torch.stack(probs).mean(dim=0)

    def prefix_outputs(self, batch: dict[str, Tensor]) -> tuple[Hidden | None, Tensor | None, Tensor | None]:
        """(hidden, prefix_pooled, default_pooled): what the tails read, as the feature store hands it over during a
        search (`Tail.features`); nothing when nothing is frozen."""
        if self.stem is None:
            return None, None, None
        hidden = self.stem(batch)
        means: list[Tensor] = []
        for block in self.prefix:
            hidden = block(hidden)
            means.append(mean_pool(hidden))
        if self.tails[0].blocks:
            return hidden, torch.stack(means, dim=1) if self.blocks_pooled else None, None
        prefix_pooled = torch.stack(means, dim=1) if self.blocks_pooled else means[-1]
        default_pooled = self.pool(hidden) if self.pool is not None else None
        return hidden, prefix_pooled, default_pooled  # a pooling that reads the sequence takes ``hidden``


class Positional(nn.Module):
    """`Network` over positional tensors named ``keys``: exporters take tensors, not a dict."""

    def __init__(self, network: Network, keys: Sequence[str]) -> None:
        super().__init__()
        self.network = network
        self.keys = list(keys)

    def forward(self, *tensors: Tensor) -> Tensor:
        return self.network(dict(zip(self.keys, tensors, strict=True)))
