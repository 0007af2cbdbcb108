"""How a search's arithmetic is carried out, as opposed to what it computes: cached inputs or not, bf16 or fp32.

Every trial, refit, fold model and test evaluation takes a `Compute`; the search resolves it once
(`resolve_bf16` asks the CPU), so all of a run's training computes alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Compute:
    """How a trial's arithmetic is carried out, as opposed to what it computes."""

    cached: bool = True
    """Read pooled and prefix inputs from the store; off, recompute them every batch."""
    bf16: bool = False
    """Run the trainable backbone blocks under bfloat16 autocast (weights and optimiser stay fp32).

    Where the CPU has native bf16 (AVX512-BF16, AMX) a fine-tuning step is markedly faster
    (docs/performance.md, "Figures behind the code's choices"). Head-only training stays fp32: its
    matrices are too small to gain.
    """

    def autocast(self, mode: str) -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16 and mode != "pooled")


def resolve_bf16(precision: str) -> bool:
    """``auto`` is bf16 exactly where the CPU computes it natively (emulated bf16 is slower than fp32)."""
    if precision != "auto":
        return precision == "bf16"
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False
