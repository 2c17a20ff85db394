"""The metadata HTTP service at 169.254.169.254:80, one listener per bridge, in the namespace.

How a guest is recognised (as Neutron's metadata proxy does it): by the bridge its connection
came in on and its source address, never by anything it sends. Each listener is a TCP socket
opened inside the data-plane namespace and SO_BINDTODEVICE'd to one bridge, so the accepting
socket says which network the guest is on, replies leave through that bridge even when two
networks use the same subnet, and nothing listens on the host's addresses. The source address
is trustworthy because the bridge's anti-spoofing rules drop any IPv4 packet whose source is
not the sending port's own (appliance/network/rules.py).

Defences, all here so one reading shows them:
  * a request is parsed by h11 with a cap on the header block (`max_header_bytes`) and on the
    number of header fields; a body only on the password POST, at most 256 bytes;
  * only origin-form targets ("/path"): an absolute URL or CONNECT is refused, and nothing is
    ever forwarded anywhere (the answer is built in-process from the instance's records);
  * per-source connection cap and a global one; a request must arrive within
    `header_timeout` seconds of the connection, or the connection is closed;
  * a token bucket per instance (per source address while unidentified): a guest that floods
    gets 429 and the others keep their share;
  * an address that is no instance's fixed IP on that network (or that another port may also
    claim through allowed address pairs), or an instance being deleted, gets 404.

Every response closes its connection (HTTP/1.1 clients handle `Connection: close`), which
keeps the per-connection state to one request and makes the limits above simple to reason
about.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import h11

from appliance.compute.configdrive import ConfigDriveContent
from appliance.metadata import documents
from appliance.metadata.documents import Answer, RequestFacts

log = logging.getLogger("monostack.metadata")

METADATA_ADDRESS = "169.254.169.254"
METADATA_PORT = 80


@dataclass(frozen=True)
class MetadataClient:
    """Who is asking, as the network records say: resolved from (bridge, source address)."""

    instance_id: str
    fixed_ip: str
    floating_ip: str | None = None


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 8192
    max_headers: int = 32
    max_body: int = documents.PASSWORD_MAX
    header_timeout: float = 10.0
    max_connections: int = 512
    max_connections_per_source: int = 8
    #: token bucket per instance: sustained requests per second and the burst above it
    #: (cloud-init reads ~40 files at boot; a busybox guest a handful)
    rate: float = 20.0
    burst: int = 100
    #: buckets kept at most (full ones are dropped first): memory does not grow with guests
    max_buckets: int = 4096


Resolve = Callable[[str, str], "MetadataClient | None"]
ContentSource = Callable[[str], "ConfigDriveContent | None | Awaitable[ConfigDriveContent | None]"]
NetworkData = Callable[[str], Awaitable[Any]]
PasswordSink = Callable[[str, str], Awaitable[bool]]

STAT_KEYS = ("connections", "refused_connections", "requests", "ok", "not_found",
             "rate_limited", "bad_requests", "timeouts", "errors")

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}


def _response(status: int, body: bytes = b"", content_type: str = documents.TEXT, *,
              head: bool = False, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
             f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
             "Connection: close", *(f"{k}: {v}" for k, v in extra)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else body)


class TokenBuckets:
    """Per-key token buckets with bounded memory (idle, full buckets are forgotten)."""

    def __init__(self, rate: float, burst: int, max_keys: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_keys, self.clock = rate, float(burst), max_keys, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_keys:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        full = [k for k, (t, last) in self._buckets.items()
                if t + (now - last) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        while len(self._buckets) > self.max_keys:  # all busy: the oldest go
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)


class _Connection(asyncio.Protocol):
    def __init__(self, server: MetadataServer, bridge: str) -> None:
        self.server, self.bridge = server, bridge
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.parser = h11.Connection(h11.SERVER,
                                     max_incomplete_event_size=server.limits.max_header_bytes)
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.done = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        if not self.server._admit(self):
            self.done = True
            transport.abort()
            return
        self.timer = asyncio.get_running_loop().call_later(
            self.server.limits.header_timeout, self._timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.server._release(self)

    def _timed_out(self) -> None:
        if not self.done and self.transport is not None:
            self.server.stats["timeouts"] += 1
            self.done = True
            self.transport.abort()

    def _reply(self, data: bytes) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        self.server.stats["bad_requests"] += 1
        self._reply(_response(status, message.encode()))

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        try:
            self.parser.receive_data(data)
            while not self.done:
                event = self.parser.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Request):
                    self._on_request(event)
                elif isinstance(event, h11.Data):
                    self.body += event.data
                    if len(self.body) > self.server.limits.max_body:
                        self._refuse(413, "Request body too large")
                elif isinstance(event, h11.EndOfMessage):
                    self._dispatch()
                elif isinstance(event, h11.ConnectionClosed):
                    self.done = True
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if exc.error_status_hint in _REASONS else 400
            self._refuse(status, "Bad request")

    def _on_request(self, request: h11.Request) -> None:
        limits = self.server.limits
        if len(request.headers) > limits.max_headers:
            self._refuse(431, "Too many header fields")
            return
        # h11 caps a header block still arriving; one that came in a single read is
        # measured here, so the limit does not depend on how the bytes were segmented.
        size = len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)
        if size > limits.max_header_bytes:
            self._refuse(431, "Request header fields too large")
            return
        method = request.method
        if method == b"CONNECT" or not request.target.startswith(b"/"):
            # authority or absolute form: a proxy request. This service forwards nothing.
            self._refuse(400 if method != b"CONNECT" else 405, "Not a proxy")
            return
        if method not in (b"GET", b"HEAD", b"POST"):
            self._refuse(405, "Method not allowed")
            return
        if method == b"POST":
            length = next((v for k, v in request.headers if k == b"content-length"), None)
            if length is not None and int(length) > limits.max_body:
                self._refuse(413, "Request body too large")
                return
        self.request = request

    def _dispatch(self) -> None:
        request = self.request
        if request is None:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.transport.pause_reading()
        target = request.target.split(b"?", 1)[0]
        try:
            path = unquote(target.decode("ascii"), errors="strict")
        except (UnicodeDecodeError, ValueError):
            self._refuse(400, "Bad path")
            return
        if "\x00" in path:
            self._refuse(400, "Bad path")
            return
        task = asyncio.ensure_future(self.server._serve(self, request.method, path,
                                                        bytes(self.body)))
        self.server._tasks.add(task)
        task.add_done_callback(self.server._tasks.discard)


class MetadataServer:
    """The service for one namespace. Listeners are added per bridge (`listen`), removed
    with `unlisten`, all closed by `stop`. Instance data comes only through the callables
    handed in, so this module knows nothing of records or the store."""

    def __init__(self, resolve: Resolve, content: ContentSource, *,
                 network_data: NetworkData | None = None,
                 set_password: PasswordSink | None = None,
                 limits: Limits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._resolve = resolve
        self._content = content
        self._network_data = network_data
        self._set_password = set_password
        self.limits = limits or Limits()
        self.buckets = TokenBuckets(self.limits.rate, self.limits.burst,
                                    self.limits.max_buckets, clock)
        self._servers: dict[str, asyncio.base_events.Server] = {}
        self._open: dict[tuple[str, str], int] = {}
        self._total = 0
        self._tasks: set[asyncio.Future[Any]] = set()
        self.stats: dict[str, int] = {k: 0 for k in STAT_KEYS}

    @property
    def bridges(self) -> set[str]:
        return set(self._servers)

    async def listen(self, bridge: str, sock: socket.socket) -> None:
        """Serve on `sock` (a listening TCP socket bound to `bridge`) until unlisten/stop."""
        if bridge in self._servers:
            sock.close()
            return
        loop = asyncio.get_running_loop()
        self._servers[bridge] = await loop.create_server(
            lambda: _Connection(self, bridge), sock=sock)

    async def unlisten(self, bridge: str) -> None:
        server = self._servers.pop(bridge, None)
        if server is not None:
            server.close()

    async def stop(self) -> None:
        for bridge in list(self._servers):
            await self.unlisten(bridge)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- connection accounting ---------------------------------------------------------------

    def _admit(self, conn: _Connection) -> bool:
        key = (conn.bridge, conn.peer)
        if (self._total >= self.limits.max_connections
                or self._open.get(key, 0) >= self.limits.max_connections_per_source):
            self.stats["refused_connections"] += 1
            conn.peer = ""  # not counted, so _release must not uncount it
            return False
        self.stats["connections"] += 1
        self._total += 1
        self._open[key] = self._open.get(key, 0) + 1
        return True

    def _release(self, conn: _Connection) -> None:
        if not conn.peer:
            return
        key = (conn.bridge, conn.peer)
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)
        self._total -= 1
        conn.peer = ""

    # ---- answering ---------------------------------------------------------------------------

    async def _serve(self, conn: _Connection, method: bytes, path: str, body: bytes) -> None:
        self.stats["requests"] += 1
        head = method == b"HEAD"
        try:
            data = await self._answer(conn.bridge, conn.peer, method, path, body, head)
        except Exception:
            self.stats["errors"] += 1
            log.exception("metadata: error answering %s on %s", path, conn.bridge)
            data = _response(500, b"Internal error", head=head)
        conn._reply(data)

    async def _answer(self, bridge: str, peer: str, method: bytes, path: str, body: bytes,
                      head: bool) -> bytes:
        client = self._resolve(bridge, peer)
        key = client.instance_id if client is not None else f"{bridge}/{peer}"
        if not self.buckets.allow(key):
            self.stats["rate_limited"] += 1
            return _response(429, b"Too many requests", head=head,
                             extra=(("Retry-After", "1"),))
        content = None
        if client is not None:
            content = self._content(client.instance_id)
            if inspect.isawaitable(content):
                content = await content
        if client is None or content is None:
            self.stats["not_found"] += 1
            return _response(404, b"Not Found", head=head)
        if method == b"POST":
            return await self._post(client, path, body)
        instance_id = client.instance_id

        def network_data() -> Any:
            return self._network_data(instance_id) if self._network_data else {}

        facts = RequestFacts(fixed_ip=client.fixed_ip, floating_ip=client.floating_ip,
                             network_data=network_data)
        ans: Answer = await documents.answer(path, content, facts)
        self.stats["ok" if ans.status == 200 else "not_found"] += 1
        return _response(ans.status, ans.body, ans.content_type, head=head)

    async def _post(self, client: MetadataClient, path: str, body: bytes) -> bytes:
        """Only the password file takes a POST: once, as Nova's handler does (409 after)."""
        if not documents.is_password_path(path) or self._set_password is None:
            self.stats["bad_requests"] += 1
            return _response(405, b"Method not allowed")
        try:
            value = body.decode("utf-8")
        except UnicodeDecodeError:
            self.stats["bad_requests"] += 1
            return _response(400, b"Password must be text")
        if not await self._set_password(client.instance_id, value):
            return _response(409, b"Password already set")
        self.stats["ok"] += 1
        return _response(200)
