"""The network side of the plugin contract: a backbone cut into stem, blocks and pooling.

Between the cuts flows a `Hidden`: a batch-first tensor and, for variable-length data, a boolean
mask of real positions along dim 1. With the mask the core can store each example's prefix
output unpadded (the frozen-prefix cache) and re-pad any batch later, so blocks must honour the
mask: an example's output may not depend on what else is in its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn


class Hidden(NamedTuple):
    """Activations between two cuts: ``states`` is (B, T, ...) or (B, C, H, W); ``mask`` is (B, T) or None."""

    states: Tensor
    mask: Tensor | None = None


@runtime_checkable
class Preprocessor(Protocol):
    """Turns a raw example into tensors. ``load`` is deterministic and cached by the core."""

    fingerprint: str
    """Everything that changes the output of ``transform(raw, augment=False)``, for cache keys."""

    def load(self, item: Any) -> Any:
        """Decode an example's item (read a file...); raise `DataError` for bad input."""

    def transform(self, raw: Any, augment: bool) -> dict[str, Tensor]:
        """Per-example tensors; ``augment`` asks for a random training-time augmentation."""

    def collate(self, features: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Stack per-example tensors into a batch (padding variable lengths)."""

    def length(self, raw: Any) -> int:
        """A loaded example's size, to batch similar lengths together (0 when all are alike)."""


class Backbone(nn.Module):
    """A pretrained network cut where the core needs to cut it.

    ``stem(batch) -> Hidden``; each ``blocks[i](Hidden) -> Hidden``; ``pool(Hidden) -> (B, width)``
    is the backbone's own (default) pooling of the last block's output.
    """

    def __init__(
        self,
        *,
        preprocessor: Preprocessor,
        stem: nn.Module,
        blocks: Sequence[nn.Module],
        pool: nn.Module,
        width: int,
        block_widths: Sequence[int] | None = None,
        fingerprint: str,
        notes: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("a backbone needs at least one block")
        self.preprocessor = preprocessor
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.pool = pool
        self.width = width
        self.block_widths = list(block_widths) if block_widths is not None else [width] * len(blocks)
        self.fingerprint = fingerprint
        """Identifies the weights (name, source, a hash of a local file's bytes...), for cache keys."""
        self.notes = list(notes)
        """What the user should know about how it was built, e.g. a fallback taken; shown when it loads."""

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def uniform_width(self) -> bool:
        """Whether block outputs can be mixed by a learned weighted sum."""
        return len(set(self.block_widths)) == 1

    def has_batchnorm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())


def mean_pool(hidden: Hidden) -> Tensor:
    """Mean over every non-batch, non-channel position, honouring the mask.

    (B, T, D) averages real positions along T; (B, C, H, W) averages the spatial grid.
    """
    states, mask = hidden
    if states.dim() == 4:
        return states.mean(dim=(2, 3))
    if states.dim() != 3:
        raise ValueError(f"cannot mean-pool activations of shape {tuple(states.shape)}")
    if mask is None:
        return states.mean(dim=1)
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class MeanPool(nn.Module):
    """`mean_pool` as a module, the default pooling of most backbones."""

    def forward(self, hidden: Hidden) -> Tensor:
        return mean_pool(hidden)


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(B,) lengths → (B, T) boolean mask of real positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
