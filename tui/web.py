"""`monostack web`: the operator console in a browser, nothing installed on the operator's side.

textual-serve runs one TUI process per browser tab (`python -m tui`, the web driver over
pipes) and relays it to xterm.js over a websocket. Around it, what an appliance needs:

- TLS with the appliance's own certificate (the TCP API's); plain HTTP only on loopback.
- The TUI's own login in every session: the web server grants nothing by itself.
- A cap on sessions: each one is a TUI process (~50 MB, measured by tests/bench/bench_web.py),
  so past `max_sessions` a new tab is told to close another one instead of getting a process.
- Cross-site pages cannot open sessions: the websocket checks Origin against the host.
- The page, fonts and scripts all come from the appliance (textual-serve's own page pulls a
  font from the internet; ours does not).
The served textual.js is textual-serve's, with one line added that lets a test read the
terminal's text (`window.monostackTerminals`), the way a screen reader would.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

log = logging.getLogger("monostack.web")

PAGE_DIR = Path(__file__).with_name("web_page")
DEFAULT_MAX_SESSIONS = 8
#: Seconds a session's TUI gets to quit by itself when its tab goes away.
QUIT_GRACE = 3.0
#: Where textual.js opens its terminal; the addition exposes it to tests (read-only use).
TERMINAL_OPEN = "this.terminal.open(e),"
TERMINAL_EXPOSE = ("this.terminal.open(e),(window.monostackTerminals=window.monostackTerminals"
                   "||[]).push(this.terminal),")


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value or default)))
    except ValueError:
        return default


async def _reap(process: asyncio.subprocess.Process | None) -> None:
    if process is None:
        return
    for stop in (None, process.terminate, process.kill):
        if stop is not None:
            with contextlib.suppress(ProcessLookupError):
                stop()
        try:
            await asyncio.wait_for(process.wait(), QUIT_GRACE)
            return
        except asyncio.TimeoutError:
            continue


def session_command(socket_path: Path | None, url: str | None) -> str:
    """The command textual-serve runs for each tab: one TUI, remembering nothing."""
    cmd = [sys.executable, "-m", "tui"]
    if url:
        cmd += ["--url", url]
    elif socket_path:
        cmd += ["--socket", str(socket_path)]
    return shlex.join(cmd)


def patched_textual_js(statics: Path) -> bytes:
    js = (statics / "js" / "textual.js").read_text()
    if TERMINAL_OPEN not in js:
        raise RuntimeError("textual-serve's textual.js changed: update tui/web.py")
    return js.replace(TERMINAL_OPEN, TERMINAL_EXPOSE, 1).encode()


class WebConsole(Server):
    def __init__(self, *, host: str, port: int, socket_path: Path | None = None,
                 url: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        if ssl_context is None and host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the web console serves plain HTTP only on loopback: give it "
                             "the appliance's TLS certificate")
        scheme = "https" if ssl_context else "http"
        super().__init__(session_command(socket_path, url), host=host, port=port,
                         title="monostack", public_url=f"{scheme}://{host}:{port}")
        self.ssl_context = ssl_context
        self.max_sessions = max_sessions
        self.sessions = 0
        self._js = patched_textual_js(self.statics_path)
        self.runner: web.AppRunner | None = None

    async def _make_app(self) -> web.Application:
        app = web.Application()
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(PAGE_DIR))
        app.add_routes([
            web.get("/", self.handle_index, name="index"),
            web.get("/ws", self.handle_websocket, name="websocket"),
            web.get("/static/js/textual.js", self.handle_script),
            web.static("/static", self.statics_path, name="static"),
        ])
        return app

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        if self.sessions >= self.max_sessions:
            return web.Response(status=503, content_type="text/html", text=(
                f"<h1>All {self.max_sessions} console sessions are in use</h1>"
                "<p>Close a console tab (or ask who has one open), then reload this page.</p>"))
        font_size = request.query.get("fontsize", "16")
        context = {"font_size": int(font_size) if font_size.isdigit() else 16}
        response = aiohttp_jinja2.render_template("index.html", request, context)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    async def handle_script(self, request: web.Request) -> web.Response:
        return web.Response(body=self._js, content_type="application/javascript")

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        return origin is None or urlsplit(origin).netloc.lower() == request.host.lower()

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._same_origin(request):
            raise web.HTTPForbidden(text="cross-origin console sessions are refused")
        if self.sessions >= self.max_sessions:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.close(code=1013, message=b"all console sessions are in use")
            return ws
        self.sessions += 1
        log.info("web console session opened (%d of %d)", self.sessions, self.max_sessions)
        try:
            return await self._run_session(request)
        finally:
            self.sessions -= 1
            log.info("web console session closed (%d of %d)", self.sessions, self.max_sessions)

    async def _run_session(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's session loop, owning the process: it always ends with the tab
        (asked to quit, then terminated, then killed), so a wedged TUI never outlives its
        slot under the cap."""
        ws = web.WebSocketResponse(heartbeat=15)
        width = _int(request.query.get("width"), 80, 20, 500)
        height = _int(request.query.get("height"), 24, 10, 300)
        await ws.prepare(request)
        service = AppService(self.command, write_bytes=ws.send_bytes, write_str=ws.send_str,
                             close=ws.close, download_manager=self.download_manager)
        await service.start(width, height)
        try:
            await self._process_messages(ws, service)
        except Exception as exc:  # a broken tab must not take the server down
            log.info("web console session ended: %s", exc)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service.stop(), QUIT_GRACE)
            await _reap(service._process)
            await ws.close()
        return ws

    async def start(self) -> None:
        """Listen (for tests and the bench, in a running loop); `serve()` for the command."""
        self.runner = web.AppRunner(await self._make_app(), handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        if self.port == 0:  # the port the system picked
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def serve(self, debug: bool = False) -> None:
        logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(message)s")
        scheme = "https" if self.ssl_context else "http"
        log.info("monostack web console on %s://%s:%d (at most %d sessions)", scheme,
                 self.host, self.port, self.max_sessions)
        web.run_app(self._make_app(), host=self.host, port=self.port,
                    ssl_context=self.ssl_context, print=None)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def run_web(*, listen: str, socket_path: Path | None, cert: Path | None, key: Path | None,
            max_sessions: int) -> int:
    """Entry point of `monostack web`."""
    host, _, port = listen.rpartition(":")
    ctx = tls_context(cert, key) if cert and key else None
    WebConsole(host=host.strip("[]") or "0.0.0.0", port=int(port), socket_path=socket_path,
               ssl_context=ctx, max_sessions=max_sessions).serve()
    return 0


__all__ = ["WebConsole", "run_web", "session_command", "tls_context"]
