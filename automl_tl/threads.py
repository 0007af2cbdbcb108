"""How many intra-op threads torch uses for a block of work.

Small tensor operations (decoding and preprocessing one example, head-only training's tiny
matrix products) lose more to thread hand-offs than a second thread gives back, the more so on a
busy machine, where the second thread waits for a core at every operation; a backbone's forward
pass gains from every core. docs/performance.md has the figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
