"""`monostack web`: the operator console in a browser, nothing installed on the operator's side.

textual-serve runs one TUI process per browser tab (`python -m tui`, the web driver over
pipes) and relays it to xterm.js over a websocket. Around it, what an appliance needs:

- TLS with the appliance's own certificate (the TCP API's); plain HTTP only on loopback.
- The TUI's own login in every session: the web server grants nothing by itself.
- A cap on sessions: each one is a TUI process (~50 MB, measured by tests/bench/bench_web.py),
  so past `max_sessions` a new tab is told to close another one instead of getting a process.
- Cross-site pages cannot open sessions: the websocket checks Origin against the host.
- A new tab does not wait for Python to start: one spare TUI process is kept started (its
  output held until a tab takes it), and the next spare starts when one is taken.
- The page, fonts and scripts all come from the appliance (textual-serve's own page pulls a
  font from the internet; ours does not).
The served textual.js is textual-serve's, with one line added that lets a test read the
terminal's text (`window.monostackTerminals`), the way a screen reader would.
"""
from __future__ import annotations

import asyncio
import contextlib
import gzip
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


class Relay:
    """Where a session's output goes: held until a tab takes the session, then to its
    websocket. Lets a spare TUI start before anyone asks for it."""

    def __init__(self) -> None:
        self.ws: web.WebSocketResponse | None = None
        self.held: list[bytes | str] = []

    async def write_bytes(self, data: bytes) -> None:
        await self._send(data)

    async def write_str(self, data: str) -> None:
        await self._send(data)

    async def _send(self, data: bytes | str) -> None:
        if self.ws is None:
            self.held.append(data)
            del self.held[:-256]  # a spare's first frames only; it redraws when taken
        elif isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def attach(self, ws: web.WebSocketResponse) -> None:
        held, self.held = self.held, []
        for data in held:
            if isinstance(data, bytes):
                await ws.send_bytes(data)
            else:
                await ws.send_str(data)
        self.ws = ws


class WebConsole(Server):
    def __init__(self, *, host: str, port: int, socket_path: Path | None = None,
                 url: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 max_sessions: int = DEFAULT_MAX_SESSIONS, keep_spare: bool = True) -> None:
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
        self._js_gz = gzip.compress(self._js, 9)  # 0.5 MB → ~0.13 MB: the first paint waits on it
        self.runner: web.AppRunner | None = None
        self.keep_spare = keep_spare
        self._spare: tuple[AppService, Relay] | None = None
        self._spare_task: asyncio.Task[None] | None = None
        self._closing = False

    async def _make_app(self) -> web.Application:
        app = web.Application()
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(PAGE_DIR))
        app.add_routes([
            web.get("/", self.handle_index, name="index"),
            web.get("/ws", self.handle_websocket, name="websocket"),
            web.get("/static/js/textual.js", self.handle_script),
            web.static("/static", self.statics_path, name="static"),
        ])
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
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
        gz = "gzip" in request.headers.get("Accept-Encoding", "")
        response = web.Response(body=self._js_gz if gz else self._js,
                                content_type="application/javascript")
        if gz:
            response.headers["Content-Encoding"] = "gzip"
        response.headers["Cache-Control"] = "max-age=86400"
        return response

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
            self._prepare_spare()

    async def _run_session(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's session loop, owning the process: it always ends with the tab
        (asked to quit, then terminated, then killed), so a wedged TUI never outlives its
        slot under the cap."""
        ws = web.WebSocketResponse(heartbeat=15)
        width = _int(request.query.get("width"), 80, 20, 500)
        height = _int(request.query.get("height"), 24, 10, 300)
        await ws.prepare(request)
        service, relay = await self._take_session(width, height)
        await relay.attach(ws)
        await service.set_terminal_size(width, height)
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

    async def _new_session(self, width: int = 80, height: int = 24) -> tuple[AppService, Relay]:
        relay = Relay()
        service = AppService(self.command, write_bytes=relay.write_bytes,
                             write_str=relay.write_str, close=relay.close,
                             download_manager=self.download_manager)
        await service.start(width, height)
        return service, relay

    async def _take_session(self, width: int, height: int) -> tuple[AppService, Relay]:
        """The spare if it is alive (then start the next spare), else a new process."""
        if self._spare_task is not None and not self._spare_task.done():
            await asyncio.shield(self._spare_task)
        spare, self._spare = self._spare, None
        if spare is not None and (spare[0]._task is None or spare[0]._task.done()):
            await _reap(spare[0]._process)
            spare = None
        session = spare or await self._new_session(width, height)
        self._prepare_spare()
        return session

    def _prepare_spare(self) -> None:
        """Start the next spare while there is room for it under the cap."""
        if self.keep_spare and not self._closing and self._spare is None and \
                self.sessions < self.max_sessions and \
                (self._spare_task is None or self._spare_task.done()):
            self._spare_task = asyncio.ensure_future(self._make_spare())

    async def _make_spare(self) -> None:
        try:
            self._spare = await self._new_session()
        except OSError as exc:
            log.warning("could not start a spare console session: %s", exc)

    async def _drop_spare(self) -> None:
        if self._spare_task is not None:
            self._spare_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._spare_task
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(spare[0].stop(), QUIT_GRACE)
            await _reap(spare[0]._process)

    async def _on_startup(self, app: web.Application) -> None:
        self._prepare_spare()

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing = True  # no new spare from here on
        await self._drop_spare()

    async def start(self) -> None:
        """Listen (for tests and the bench, in a running loop); `serve()` for the command."""
        self.runner = web.AppRunner(await self._make_app(), handle_signals=False,
                                    shutdown_timeout=QUIT_GRACE * 2)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        if self.port == 0:  # the port the system picked
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self._closing = True
        if self.runner is not None:
            await self.runner.cleanup()
        await self._drop_spare()

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
