"""Keeping a browser on this machine: the app promises to fetch nothing from outside it.

A Playwright route handler, ``page.route("**/*", guard)``: local requests go through, every other
is aborted and kept, so a browser test (or a script that takes the docs' screenshots) can check
that the count is zero rather than trust that nothing was asked for.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})


class OffMachineGuard:
    """Lets requests to this machine (and ``data:``/``blob:`` URLs) through; aborts the rest into `aborted`."""

    def __init__(self) -> None:
        self.aborted: list[str] = []

    def __call__(self, route: Any) -> None:
        url = route.request.url
        if urlparse(url).hostname in LOCAL_HOSTS or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.aborted.append(url)
            route.abort()
