"""Serving the app: at once, on this machine only unless asked otherwise, and then behind a token.

Importing Gradio and building its page take seconds on a small machine, while the runs a user opened
the app to see can be read sooner. So the port opens at once on `Starting`, which serves the Runs
table read-only (the same rows as the Runs page) on a page that turns itself into the app the moment
Gradio is mounted; anything else asked meanwhile is a 503 "starting". Its loader reads the runs'
boards before it imports Gradio: on two cores both at once would only delay the table.

Gradio's page talks to its server over HTTP; `Guard` stands in front of every request. Bound to
another address than loopback the app is reachable by anyone on the network, so every request
must then carry the token (once in the URL, then as a cookie). And the only files served are those
of the run directories, the data they reference and what the app itself made (plots, uploads,
downloads): any other path, or a URL Gradio would fetch on the page's behalf, is a 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets
import socket
import tempfile
import threading
import time
import webbrowser
from collections.abc import Awaitable, Callable, MutableMapping
from html import escape
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from automl_tl.app.runs import HEADER, Runs, rows
from automl_tl.errors import UserError
from automl_tl.report import html
from automl_tl.report.document import Table

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_AUTO = "auto"
"""``--token auto``: a token is generated and printed once."""
COOKIE = "automl_tl_token"
FILE_ROUTE = "/file="
"""How Gradio's page asks for a file: ``/gradio_api/file=<path or URL>``."""

STARTING = b"x-automl-tl-starting"
"""A header on every answer `Starting` gives: the starting page polls until an answer comes without it."""
RELOAD = """<script>
(function wait() {
  fetch(location.href, {method: "HEAD", cache: "no-store"}).then(
    r => r.headers.has("x-automl-tl-starting") ? setTimeout(wait, 250) : location.reload(),
    () => setTimeout(wait, 1000));
})();
</script>"""

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
Loaded = tuple[Any, list[str]]
"""What the loader makes: the FastAPI app with Gradio mounted, and the roots it may serve files from."""


def app_token(host: str, token: str | None) -> str | None:
    """The token every request must carry, or None on loopback without one; a `UserError` when one is needed."""
    if token is None and host not in LOOPBACK:
        raise UserError(f"--host {host} makes the app reachable from other machines, so it needs --token",
                        hint=f"pass --token SECRET (or --token {TOKEN_AUTO} to have one made and printed once), "
                             "or leave --host at 127.0.0.1")
    return secrets.token_urlsafe(24) if token == TOKEN_AUTO else token


class Guard:
    """ASGI middleware: the token check, and 404 for any file outside ``roots()``."""

    def __init__(self, app: ASGIApp, token: str | None, roots: Callable[[], list[str]]) -> None:
        self.app = app
        self.token = token
        self.roots = roots

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.token is not None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("token") or [""])[0]
            if given and hmac.compare_digest(given, self.token) and scope["type"] == "http":
                # once in the URL, then a cookie: the page's own requests carry no query
                rest = urlencode([(k, v) for k, vs in query.items() if k != "token" for v in vs])
                location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
                await _respond(send, 303, b"", [(b"location", location.encode()), (b"set-cookie", (
                    f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/").encode())])
                return
            if not hmac.compare_digest(_cookie(scope).encode(), self.token.encode()):
                if scope["type"] == "http":
                    await _respond(send, 401, b"this app needs its token: open the URL it printed (?token=...)\n")
                else:
                    await send({"type": "websocket.close", "code": 1008})  # policy violation
                return
        path = unquote(scope["path"])
        if FILE_ROUTE in path and not self.servable(path.split(FILE_ROUTE, 1)[1]):
            await _respond(send, 404, b"not found\n")
            return
        await self.app(scope, receive, send)

    def servable(self, target: str) -> bool:
        """Whether ``target`` is a local file under one of the roots (links resolved first)."""
        if "://" in target or target.startswith("//"):
            return False
        resolved = Path(target).resolve()
        return any(resolved.is_relative_to(root) for root in self.roots())


class Starting:
    """ASGI: the starting page until the loader's app is mounted, then that app, its lifespan included.

    ``load`` runs in a thread of its own once the server is up; ``failed`` gets what it raised (the
    server should stop: an app that cannot load must not leave a page waiting for it forever).
    """

    def __init__(self, runs: Runs, load: Callable[[], Loaded], failed: Callable[[BaseException], None]) -> None:
        self.runs = runs
        self.load = load
        self.failed = failed
        self.app: ASGIApp | None = None
        self.roots: list[str] = [str(runs.root)]
        self._mounted = contextlib.AsyncExitStack()

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == "/" and scope["method"] == "GET":
            page = await asyncio.to_thread(self.page)
            await _respond(send, 200, page.encode(), [(b"content-type", b"text/html; charset=utf-8"), (STARTING, b"1")])
        elif scope["type"] == "http":
            await _respond(send, 503, b"the app is starting\n", [(b"retry-after", b"1"), (STARTING, b"1")])
        else:
            await send({"type": "websocket.close", "code": 1013})  # try again later

    def page(self) -> str:
        """The Runs table, read as the Runs page reads it, on a page that reloads into the app once it is there."""
        table = Table(list(HEADER), [[str(cell) for cell in row] for row in rows(self.runs.summaries())], numeric=frozenset({"trials"}))
        return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>automl-tl</title>"
                f"<style>{html.CSS}</style></head><body><main><h1>automl-tl</h1>"
                "<p class=\"subtitle\">Starting: this page turns into the app by itself in a few seconds.</p>"
                f"<p>Every run in <code>{escape(str(self.runs.root))}</code>, newest first.</p>"
                f"<div id=\"runs-table\">{html.fragment([table])}</div></main>{RELOAD}</body></html>")

    async def _lifespan(self, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                loop = asyncio.get_running_loop()
                threading.Thread(target=self._load, args=(loop,), name="automl-tl-load-app", daemon=True).start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._mounted.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _load(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.runs.summaries()  # the starting page's rows before Gradio: a browser may be waiting for them
            app, roots = self.load()
            asyncio.run_coroutine_threadsafe(self._mount(app, roots), loop).result()
        except BaseException as exc:  # noqa: BLE001  handed to the server, which stops and raises it
            loop.call_soon_threadsafe(self.failed, exc)

    async def _mount(self, app: Any, roots: list[str]) -> None:
        await self._mounted.enter_async_context(app.router.lifespan_context(app))  # Gradio's queue starts here
        self.roots = roots
        self.app = app


async def _respond(send: Callable[[Any], Awaitable[None]], status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    if not any(name == b"content-type" for name, _ in headers):
        headers = [(b"content-type", b"text/plain; charset=utf-8"), *headers]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _cookie(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            morsel = SimpleCookie(value.decode("latin-1")).get(COOKIE)
            if morsel is not None:
                return morsel.value
    return ""


def offline_environment() -> Path:
    """Turn off everything in Gradio that reaches the internet; returns the app's own file folder.

    Set before Gradio is imported: it reads these at import. Its files (uploads, plots, downloads)
    go to a folder of this app's own, so "what the app made" is that folder and nothing else.
    """
    folder = Path(tempfile.mkdtemp(prefix="automl-tl-app-"))
    os.environ.update({"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                       "GRADIO_TEMP_DIR": str(folder / "gradio")})
    return folder


def serve(host: str, port: int, token: str | None, runs_folder: Path, open_browser: bool) -> None:
    """Serve the app over ``runs_folder`` until Ctrl-C: the starting page at once, the app when Gradio has loaded."""
    _check_port(host, port)
    folder = offline_environment()
    import uvicorn

    runs_folder.mkdir(parents=True, exist_ok=True)
    runs = Runs(runs_folder)
    problems: list[BaseException] = []

    def load() -> Loaded:
        import fastapi
        import gradio as gr

        from automl_tl.app.ui import build

        blocks, theme, css, roots = build(runs, folder)
        app = fastapi.FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        app = gr.mount_gradio_app(app, blocks, path="", server_name=host, server_port=port, allowed_paths=roots,
                                  footer_links=[], ssr_mode=False, pwa=False, mcp_server=False, theme=theme, css=css)
        return app, roots

    def failed(exc: BaseException) -> None:
        problems.append(exc)
        server.should_exit = True

    starting = Starting(runs, load, failed)
    guarded = Guard(starting, token, lambda: [*starting.roots, str(folder)])
    server = uvicorn.Server(uvicorn.Config(guarded, host=host, port=port, log_level="warning", lifespan="on"))
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    print(f"automl-tl app: {url}{f'?token={token}' if token else ''}  (Ctrl-C stops it)", flush=True)
    if open_browser:
        threading.Thread(target=_open_when_up, args=(host, port, url + (f"?token={token}" if token else "")), daemon=True).start()
    server.run()
    if problems:
        raise problems[0]


def _check_port(host: str, port: int) -> None:
    """A port in use is the user's to change: one line, before anything loads."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot serve on {host}:{port}: {exc.strerror or exc}",
                            hint="pass another --port, or stop what uses it") from None


def _open_when_up(host: str, port: int, url: str, wait: float = 30.0) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1" if host in ("0.0.0.0", "::") else host, port), timeout=1):
                webbrowser.open(url)
                return
        except OSError:
            time.sleep(0.2)
