"""How many intra-op threads torch uses for a block of work.

Small tensor operations (decoding and preprocessing one example, head-only training's tiny
matrix products) lose more to thread hand-offs than a second thread gives back, the more so on a
busy machine, where the second thread waits for a core at every operation; a backbone's forward
pass gains from every core. docs/performance.md has the figures. Torch loads only when a block
runs, so the command line can count cores before it decides to load it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, which a container or ``taskset`` narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` intra-op threads, then restore the previous count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
