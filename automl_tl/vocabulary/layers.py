"""The learned layers that poolings of the vocabulary name (`Pooling.layer`), kept beside their words.

Each is built as ``LAYERS[name](width, depth)`` and pools what its pooling `reads`: ``blocks``
layers take every block's mean, stacked (B, n, D); ``sequence`` layers take the last block's
`Hidden`, (B, T, D) with its mask or (B, C, H, W). Their parameters train at the head's rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from automl_tl.backbone import Hidden


class BlockMix(nn.Module):
    """A learned softmax-weighted sum of per-block pooled outputs (B, n, D) → (B, D).

    The weights start equal. With frozen blocks the store supplies the first blocks' means, so a
    tail that trains only the last blocks still mixes every block.
    """

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(depth))

    def forward(self, stacked: Tensor) -> Tensor:
        weights = torch.softmax(self.logits, dim=0)
        return (stacked * weights[None, :, None]).sum(dim=1)


class AttentionPool(nn.Module):
    """One learned query attending over the real positions of the last block: (B, T, D) → (B, D).

    Scaled dot-product scores against the query, masked where the batch is padded, so an
    example's pooled vector does not depend on its batch mates. The query starts at zero, i.e.
    as a mean over real positions, and learns which positions carry the class. Image activations
    (B, C, H, W) are read as H·W positions of C channels.
    """

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(width))
        self.scale = 1.0 / math.sqrt(width)

    def forward(self, hidden: Hidden) -> Tensor:
        states, mask = hidden
        if states.dim() == 4:
            states, mask = states.flatten(2).transpose(1, 2), None
        scores = states @ self.query * self.scale
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return (states * weights).sum(dim=1)


LAYERS: dict[str, Callable[[int, int], nn.Module]] = {"weighted": BlockMix, "attention": AttentionPool}
"""Pooling layers by the name a `Pooling` record gives in its ``layer``."""
