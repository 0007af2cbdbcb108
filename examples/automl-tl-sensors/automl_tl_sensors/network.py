"""The sensors backbone: a preprocessor, a linear stem, masked temporal-convolution blocks, mean pooling.

The worked example of docs/plugins.md: `automl-tl plugins new sensors` with the template's
position-wise blocks replaced by convolutions, the usual source of layout and mask mistakes.
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
        self.fingerprint = f"sensors-vectors-v1:scale={scale}"  # everything transform() depends on

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


class ConvBlock(nn.Module):
    """A temporal convolution, written for the contract's two rules a Conv1d breaks by default.

    Conv1d reads and returns (B, C, T); the core reads (B, T, D): transpose in and out. A kernel
    wider than 1 reads its neighbours, so padded positions are zeroed before it runs (as if the
    sequence ended there), and again after: an example's output is then the same alone or padded
    in a batch with longer ones.
    """

    def __init__(self, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(WIDTH, WIDTH, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, hidden: Hidden) -> Hidden:
        states, mask = hidden
        keep = mask.unsqueeze(-1).to(states.dtype)
        out = self.conv((states * keep).transpose(1, 2)).transpose(1, 2)  # (B, T, D) in and out
        return Hidden((states + torch.relu(self.norm(out))) * keep, mask)


def build(features: int, scale: float) -> Backbone:
    torch.manual_seed(0)  # random init: the same network every time, as pretrained weights would be
    return Backbone(
        preprocessor=Preprocessor(scale),
        stem=Stem(features),
        blocks=[ConvBlock() for _ in range(DEPTH)],
        pool=MeanPool(),
        width=WIDTH,
        fingerprint="sensors-net:conv3-random-init-seed0-v1",  # change it whenever the weights change
    )
