"""Assembles a trial's network from a backbone: the frozen prefix stays shared, the rest is copied.

A trial trains its *tail*: the blocks after the freeze depth, the pooling and the head (plus the
stem when nothing is frozen). The frozen prefix is never copied or run per trial; its outputs come
from the feature store, so a trial that freezes k blocks only pays for blocks k+1..n.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from automl_tl.backbone import Backbone, Hidden, mean_pool
from automl_tl.search.adaptation import DomainShift
from automl_tl.search.kernels import attention_kernel
from automl_tl.vocabulary import TrialParams
from automl_tl.vocabulary.layers import LAYERS


class Head(nn.Module):
    """A linear classifier, or a one-hidden-layer MLP with dropout."""

    def __init__(self, width: int, n_classes: int, kind: str, hidden: int | None, dropout: float | None) -> None:
        super().__init__()
        if kind == "linear":
            self.net: nn.Module = nn.Linear(width, n_classes)
        else:
            self.net = nn.Sequential(
                nn.LayerNorm(width),
                nn.Linear(width, hidden or width),
                nn.GELU(),
                nn.Dropout(dropout or 0.0),
                nn.Linear(hidden or width, n_classes),
            )

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


class Tail(nn.Module):
    """The trainable part of a trial.

    Inputs are the frozen prefix's output at ``freeze_depth`` (a `Hidden`), the mean-pooled
    output of each frozen block (``prefix_pooled``, (B, k, D), only for poolings that read every
    block) and, when every block is frozen, the backbone's own pooling of the last block
    (``default_pooled``). With ``freeze_depth == 0`` the tail owns a copy of the stem and takes
    the collated batch. How the blocks' outputs become the head's input is the trial's `Pooling`.
    """

    def __init__(self, backbone: Backbone, params: TrialParams, n_classes: int) -> None:
        super().__init__()
        k = params.freeze_depth
        self.n_classes = n_classes
        self.pooling = params.pool
        self.depth = backbone.depth
        self.stem = copy.deepcopy(backbone.stem) if k == 0 else None
        self.blocks = nn.ModuleList(copy.deepcopy(list(backbone.blocks[k:])))
        self.pool = copy.deepcopy(backbone.pool) if k < backbone.depth else None
        width = backbone.width if self.pooling.reads == "own" else backbone.block_widths[-1]
        self.layer = LAYERS[self.pooling.layer](width, backbone.depth) if self.pooling.layer else None
        self.head = Head(width, n_classes, params.head, params.head_hidden, params.dropout)
        self.width = width
        self.shift = DomainShift(width) if params.adapting.shifts_features else None
        """Maps target features onto the source's statistics before the head reads them (``statistics``)."""

    @classmethod
    def trained(cls, backbone: Backbone, params: TrialParams, n_classes: int, state: Mapping[str, Tensor]) -> Tail:
        """A tail holding trained weights: a trial's, a refit's or a fold model's."""
        tail = cls(backbone, params, n_classes)
        tail.load_state_dict(state)
        return tail

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Pretrained parameters, trained at the (lower) backbone learning rate."""
        modules = [m for m in (self.stem, self.blocks, self.pool) if m is not None]
        return [p for m in modules for p in m.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        """New parameters (the head and any pooling layer), trained at the head learning rate."""
        extra = list(self.layer.parameters()) if self.layer is not None else []
        return [*self.head.parameters(), *extra]

    def features(
        self,
        hidden: Hidden | None,
        prefix_pooled: Tensor | None = None,
        default_pooled: Tensor | None = None,
        batch: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """The pooled vector the head sees."""
        if self.stem is not None:
            assert batch is not None
            hidden = self.stem(batch)
        if not self.blocks:  # every block frozen: the store has pooled already
            return self.frozen_features(prefix_pooled, default_pooled, hidden)
        assert hidden is not None
        reads = self.pooling.reads
        means: list[Tensor] = []
        with attention_kernel(hidden.states):
            for block in self.blocks:
                hidden = block(hidden)
                if reads == "blocks":
                    means.append(mean_pool(hidden))
        if reads == "own":
            assert self.pool is not None
            return self.pool(hidden)
        if reads == "mean":
            return mean_pool(hidden)
        assert self.layer is not None
        if reads == "sequence":
            return self.layer(hidden)
        frozen = [prefix_pooled] if prefix_pooled is not None and prefix_pooled.shape[1] else []
        return self.layer(torch.cat([*frozen, torch.stack(means, dim=1)], dim=1))

    def frozen_features(
        self, prefix_pooled: Tensor | None, default_pooled: Tensor | None, hidden: Hidden | None = None,
    ) -> Tensor:
        """The head's input when every block is frozen, from the store's outputs.

        ``prefix_pooled`` is every block's mean (B, n, D) for a pooling that reads every block,
        else the last block's (B, D); ``hidden`` is the last block's output, for a pooling that
        reads the sequence. Feature extraction and the linear-probe phase of LP-FT both use this.
        """
        reads = self.pooling.reads
        features = {"own": default_pooled, "mean": prefix_pooled}.get(reads)
        if reads in ("blocks", "sequence"):
            assert self.layer is not None
            features = self.layer(prefix_pooled if reads == "blocks" else hidden)
        assert features is not None
        return features

    def forward(self, *args: object, **kwargs: object) -> Tensor:
        return self.head(self.features(*args, **kwargs))  # type: ignore[arg-type]

    def classify(self, features: Tensor, target: bool) -> Tensor:
        """Logits from the pooled features; a target domain's first go through the shift, if any."""
        return self.head(self.head_input(features, target))

    def head_input(self, features: Tensor, target: bool) -> Tensor:
        """What the head reads: the pooled features, a target domain's mapped onto the source's by the shift, if any."""
        return self.shift.to_source(features) if target and self.shift is not None else features


def set_train_mode(tail: Tail, batchnorm: str | None) -> None:
    """Train mode, except BatchNorm statistics stay frozen unless the trial chose to adapt them.

    EfficientNet-style BatchNorm (momentum 0.01) drifts badly on small fine-tuning sets (measured
    on the CIFAR subset: docs/performance.md), so frozen statistics are the default choice.
    """
    tail.train()
    if batchnorm != "adapt":
        for module in tail.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def count_trainable(tail: Tail) -> int:
    return sum(p.numel() for p in tail.parameters() if p.requires_grad)
