"""The {{name}} backbone: a preprocessor, a stem, blocks that honour the mask, and a pooling.

Replace the random-init network with your pretrained one; keep the cut: ``stem(batch) ->
Hidden``, each block ``Hidden -> Hidden``, ``pool(Hidden) -> (B, width)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from automl_tl.backbone import Backbone, Hidden, MeanPool, lengths_to_mask
from automl_tl.errors import DataError

WIDTH = 32
DEPTH = 3


class Preprocessor:
    """An item (a file path, or the vectors themselves) → a (T, features) tensor."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.fingerprint = f"{{name}}-vectors-v1:scale={scale}"  # everything transform() depends on

    def load(self, item: Any) -> Tensor:
        if isinstance(item, str):
            try:
                item = [[float(v) for v in line.split()] for line in Path(item).read_text().splitlines() if line.strip()]
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read {item}: {exc}") from None
        return torch.tensor(item, dtype=torch.float32)

    def transform(self, raw: Tensor, augment: bool) -> dict[str, Tensor]:
        x = raw * self.scale
        return {"x": x + 0.05 * torch.randn_like(x) if augment else x}  # randomness only when augmenting

    def collate(self, features: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        xs = [f["x"] for f in features]
        return {"x": pad_sequence(xs, batch_first=True), "lengths": torch.tensor([len(x) for x in xs])}

    def length(self, raw: Tensor) -> int:
        return int(raw.shape[0])


class Stem(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.proj = nn.Linear(features, WIDTH)

    def forward(self, batch: dict[str, Tensor]) -> Hidden:
        mask = lengths_to_mask(batch["lengths"], batch["x"].shape[1])
        return Hidden(self.proj(batch["x"]), mask)  # (B, T, D) with a (B, T) mask


class ResidualBlock(nn.Module):
    """Position-wise, so padding cannot leak into real positions; padded outputs are zeroed anyway."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(WIDTH)
        self.mlp = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.GELU(), nn.Linear(WIDTH, WIDTH))

    def forward(self, hidden: Hidden) -> Hidden:
        states, mask = hidden
        out = states + self.mlp(self.norm(states))
        return Hidden(out * mask.unsqueeze(-1), mask)


def build(features: int, scale: float) -> Backbone:
    torch.manual_seed(0)  # random init: the same network every time, as pretrained weights would be
    return Backbone(
        preprocessor=Preprocessor(scale),
        stem=Stem(features),
        blocks=[ResidualBlock() for _ in range(DEPTH)],
        pool=MeanPool(),
        width=WIDTH,
        fingerprint="{{name}}-net:random-init-seed0-v1",  # change it whenever the weights change
    )
