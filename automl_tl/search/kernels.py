"""Picks PyTorch's attention kernel for the trainable blocks by precision and sequence length.

Under bfloat16 autocast PyTorch sends ``scaled_dot_product_attention`` on the CPU to its flash
kernel, which for short sequences is slower than the plain (math) kernel; past a few hundred
tokens the flash kernel wins again, and in fp32 it wins at every length (``bench/attention.py``
measures the crossover; the figures are in docs/performance.md). Spoken digits and short texts
sit well inside the math kernel's range.

The choice depends only on the activations, so the core makes it for every plugin's blocks;
convolutional activations (B, C, H, W) and backbones without attention are unaffected.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

MATH_ATTENTION_UP_TO = 192
"""Longest sequence (tokens) for which bf16 training uses the math kernel: inside the measured crossover."""


def attention_kernel(states: Tensor) -> AbstractContextManager[object]:
    """A context for running blocks on ``states`` (B, T, D): the math kernel for short bf16 sequences, else no change."""
    short_sequence = states.dim() == 3 and states.shape[1] <= MATH_ATTENTION_UP_TO
    bf16 = torch.is_autocast_enabled(states.device.type) and torch.get_autocast_dtype(states.device.type) == torch.bfloat16
    return sdpa_kernel(SDPBackend.MATH) if short_sequence and bf16 else nullcontext()
