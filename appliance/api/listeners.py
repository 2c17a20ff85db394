"""Where the API listens, and the limits that keep TCP clients from holding the daemon.

Idle and half-sent connections used to stay open forever: ~19,600 of them used up the
daemon's descriptors and then nobody, the operators included, got an answer. Now:

- The unix socket (operators, the TUI, host-side commands) and the TCP port are separate
  listening sockets with separate accept paths. TCP connections are accepted by our own loop,
  not asyncio's server, so every limit applies at accept time — before a TLS handshake, before
  a byte is read — and a refused connection is closed at once.
- TCP holds at most `max_connections` connections, and at most `max_connections_per_address`
  from one peer address, so a flooder from one address is refused while others are served.
- The descriptor limit is raised to its hard limit at start and TCP may use only part of it
  (FD_RESERVE_FRACTION is kept back), so the unix socket, the state journal, images and
  libvirt always find descriptors whatever TCP clients do.
- A TCP client must deliver a complete request head within `header_timeout` of connecting,
  or of the first byte of its next request (slowloris); a TLS handshake gets as long. An idle
  keep-alive connection, on either socket, is closed after `keepalive_timeout`.
- A TCP client that has sent a request head but falls silent in its body for `body_timeout`
  is cut off (a slow-body slowloris held a handler and its buffers for ever). Silence we
  caused does not count: while we have paused reading (backpressure) the clock stops.
- Request lines and header fields are bounded (`max_line_bytes`, `max_header_bytes`,
  `max_headers`): aiohttp answers 400 beyond them.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from appliance.config import ApiConfig

log = logging.getLogger("monostack.api.listeners")

#: Part of the descriptor limit TCP connections may never take (the rest of the daemon's).
FD_RESERVE_FRACTION = 0.25
MIN_FD_RESERVE = 256
#: Errors of accept(2) that mean "out of something for now": wait a little, then go on.
_ACCEPT_SHORTAGE = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 27\r\nConnection: close\r\n\r\ntoo many connections, later")


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one; the (new) soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def server_options(api: ApiConfig) -> dict[str, Any]:
    """aiohttp server settings for both sockets."""
    return {"keepalive_timeout": api.keepalive_timeout, "max_line_size": api.max_line_bytes,
            "max_field_size": api.max_header_bytes, "max_headers": api.max_headers}


@dataclass(frozen=True)
class TcpLimits:
    max_connections: int
    per_address: int
    header_timeout: float
    body_timeout: float = 60.0

    @classmethod
    def for_config(cls, api: ApiConfig, fd_limit: int) -> "TcpLimits":
        reserve = max(MIN_FD_RESERVE, int(fd_limit * FD_RESERVE_FRACTION))
        return cls(max_connections=max(1, min(api.max_connections, fd_limit - reserve)),
                   per_address=api.max_connections_per_address,
                   header_timeout=api.header_timeout, body_timeout=api.body_timeout)


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one TCP connection, behind a head-read deadline.

    The deadline runs while the connection waits for a request head: from connection_made,
    and from the first byte after a finished request; `connection_middleware` stops it when
    the request reaches the application and marks the connection idle when it is done."""

    def __init__(self, inner: asyncio.Protocol, header_timeout: float,
                 on_lost: Callable[[], None], body_timeout: float = 60.0) -> None:
        self.inner = inner
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.on_lost = on_lost
        self.transport: asyncio.BaseTransport | None = None
        self.busy = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._request: web.BaseRequest | None = None
        self._body_watch: asyncio.TimerHandle | None = None
        self._last_data = 0.0

    # the middleware's half
    def request_started(self, request: web.BaseRequest | None = None) -> None:
        self.busy += 1
        self._disarm()
        self._request = request
        if request is not None and self.body_timeout > 0 and not request.content.is_eof():
            loop = asyncio.get_running_loop()
            self._last_data = loop.time()
            self._body_watch = loop.call_later(self.body_timeout, self._check_body)

    def request_finished(self) -> None:
        self.busy -= 1
        self._request = None
        if self._body_watch is not None:
            self._body_watch.cancel()
            self._body_watch = None

    # asyncio's half
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._arm()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy and self._deadline is None:
            self._arm()
        if self._body_watch is not None:
            self._last_data = asyncio.get_running_loop().time()
        self.inner.data_received(data)

    def _check_body(self) -> None:
        self._body_watch = None
        request, transport = self._request, self.transport
        if request is None or transport is None or request.content.is_eof():
            return
        loop = asyncio.get_running_loop()
        reading = getattr(transport, "is_reading", lambda: True)()
        if not reading:  # we paused the client (backpressure): its silence is ours
            self._last_data = loop.time()
        idle = loop.time() - self._last_data
        if idle >= self.body_timeout:
            log.warning("request body from %s stalled for %.0f s: connection cut off",
                        request.remote, idle)
            transport.abort()
            return
        self._body_watch = loop.call_later(self.body_timeout - idle, self._check_body)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._body_watch is not None:
            self._body_watch.cancel()
            self._body_watch = None
        try:
            self.inner.connection_lost(exc)
        finally:
            self.on_lost()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _arm(self) -> None:
        self._deadline = asyncio.get_running_loop().call_later(self.header_timeout, self._overdue)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _overdue(self) -> None:
        self._deadline = None
        if not self.busy and self.transport is not None:
            self.transport.abort()


@web.middleware
async def connection_middleware(request: web.Request, handler):
    """Tell a guarded TCP connection when a request runs (its head is complete)."""
    transport = request.transport
    guard = transport.get_protocol() if transport is not None else None
    if not isinstance(guard, GuardedConnection):
        return await handler(request)
    guard.request_started(request)
    try:
        return await handler(request)
    finally:
        guard.request_finished()


class LimitedTCPSite(web.BaseSite):
    """A TCP site with its own accept loop and the limits above."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, limits: TcpLimits,
                 ssl_context: ssl.SSLContext | None = None, backlog: int = 1024) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self.host, self.port, self.limits = host, port, limits
        self.open_connections = 0
        self.per_address: dict[str, int] = {}
        self.refused = 0
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task] = set()
        self._last_warning = 0.0

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        for family, type_, proto, address in dict.fromkeys(
                (i[0], i[1], i[2], i[4]) for i in infos):
            sock = socket.socket(family, type_, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(self._backlog)
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            self._sockets.append(sock)
            self._spawn(self._accept_forever(sock))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        await super().stop()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(listener)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as exc:
                if exc.errno not in _ACCEPT_SHORTAGE:
                    raise
                self._warn(f"accept: {exc.strerror}")
                await asyncio.sleep(0.1)
                continue
            self._admit(conn, str(peer[0]))

    def _admit(self, conn: socket.socket, address: str) -> None:
        if (self.open_connections >= self.limits.max_connections
                or self.per_address.get(address, 0) >= self.limits.per_address):
            self.refused += 1
            self._warn(f"connection limit reached (last refused: {address})")
            try:
                if self._ssl_context is None:
                    conn.send(_REFUSAL)
            except OSError:
                pass
            conn.close()
            return
        self.open_connections += 1
        self.per_address[address] = self.per_address.get(address, 0) + 1
        self._spawn(self._serve(conn, address))

    async def _serve(self, conn: socket.socket, address: str) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open_connections -= 1
                left = self.per_address[address] - 1
                if left:
                    self.per_address[address] = left
                else:
                    del self.per_address[address]

        server = self._runner.server
        assert server is not None
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: GuardedConnection(server(), self.limits.header_timeout, release,
                                          self.limits.body_timeout),
                conn, ssl=self._ssl_context,
                ssl_handshake_timeout=self.limits.header_timeout if self._ssl_context else None)
        except Exception:  # a failed or timed-out handshake: no protocol ever saw the socket
            release()
            conn.close()

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 10:
            self._last_warning = now
            log.warning("tcp %s", what, extra={"open": self.open_connections,
                                               "refused": self.refused})
