"""Which attention kernel trains faster on this CPU: PyTorch's flash kernel or the plain (math) one?

One forward + backward of ``scaled_dot_product_attention`` with a key-padding mask (as the speech
and text backbones call it), per dtype and sequence length, each kernel forced in turn:

    .venv/bin/python bench/attention.py [--batch 16 --heads 6 --head-dim 64] [--lengths 32,64,128,256,512]

Why it matters (issue #6): under bf16 autocast a fine-tuning step of Whisper tiny.en on FSDD
(25-100 frames a clip) spends ~13 % of its time in the flash kernel's backward, and for short
sequences the math kernel is faster still. Run it with ``taskset -c 0`` and ``OMP_NUM_THREADS=1``
to compare with one core's search timings.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

KERNELS = {"flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}
WARMUP = 3


def step_ms(length: int, dtype: torch.dtype, kernel: SDPBackend, batch: int, heads: int, head_dim: int, reps: int) -> float:
    """Mean milliseconds of one masked attention forward + backward with ``kernel`` forced."""
    q, k, v = (torch.randn(batch, heads, length, head_dim, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = torch.zeros(batch, 1, 1, length, dtype=dtype)
    with sdpa_kernel([kernel]):
        for rep in range(WARMUP + reps):
            if rep == WARMUP:
                started = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
    return (time.perf_counter() - started) / reps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--heads", type=int, default=6, help="Whisper tiny.en: 6 heads of 64; MiniLM-L6: 12 of 32")
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--lengths", default="32,64,128,256,512")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); batch {args.batch}, {args.heads} heads of {args.head_dim}")
    print(f"{'dtype':<9} {'length':>6} {'flash ms':>9} {'math ms':>8} {'math / flash':>12}")
    for dtype in (torch.bfloat16, torch.float32):
        for length in (int(n) for n in args.lengths.split(",")):
            flash, math = (step_ms(length, dtype, KERNELS[name], args.batch, args.heads, args.head_dim, args.reps)
                           for name in ("flash", "math"))
            print(f"{str(dtype).removeprefix('torch.'):<9} {length:>6} {flash:>9.2f} {math:>8.2f} {math / flash:>12.2f}")


if __name__ == "__main__":
    main()
