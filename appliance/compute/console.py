"""Serial console: short-lived single-use tokens (consoleauth) and a fan-out proxy (serialproxy).

Tokens: `issue()` returns a random token valid for TOKEN_TTL seconds; only its SHA-256 is kept
(in memory: a restart invalidates every outstanding URL, which is what a 60-second credential
should do). `consume()` removes it: a URL opens one websocket, once.

Fan-out: libvirt gives one console stream per domain, so one `ConsoleHub` per instance holds
it and copies every chunk to each attached watcher (a slow watcher loses its oldest pending
output, never blocks the others; the log file keeps everything). Input: only the *writer*
goes through — the longest-attached watcher still connected; when it leaves, the next oldest
becomes the writer. Everybody else watches read-only (their keystrokes are dropped), so two
people never type into one shell at once by accident.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from appliance.errors import Unauthorized

log = logging.getLogger("monostack.compute.console")

TOKEN_TTL = 60.0


@dataclass(frozen=True)
class ConsoleGrant:
    instance_id: str
    project_id: str
    expires: float


class ConsoleTokens:
    def __init__(self, ttl: float = TOKEN_TTL) -> None:
        self.ttl = ttl
        self._grants: dict[str, ConsoleGrant] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue(self, instance_id: str, project_id: str) -> str:
        self._purge()
        token = secrets.token_urlsafe(32)
        self._grants[self._key(token)] = ConsoleGrant(instance_id, project_id,
                                                      time.monotonic() + self.ttl)
        return token

    def consume(self, token: str | None) -> ConsoleGrant:
        self._purge()
        grant = self._grants.pop(self._key(token or ""), None)
        if grant is None:
            raise Unauthorized("The console token is invalid, expired or already used.")
        return grant

    def _purge(self) -> None:
        now = time.monotonic()
        for key in [k for k, g in self._grants.items() if g.expires < now]:
            del self._grants[key]

    def __len__(self) -> int:
        self._purge()
        return len(self._grants)


class Watcher:
    """One attached client: a bounded queue of output chunks (None = the console ended)."""

    def __init__(self, max_pending: int = 256) -> None:
        self._chunks: deque[bytes | None] = deque()
        self._max = max_pending
        self._ready = asyncio.Event()

    def push(self, data: bytes | None) -> None:
        self._chunks.append(data)
        while len(self._chunks) > self._max:
            self._chunks.popleft()
        self._ready.set()

    async def read(self) -> bytes | None:
        while not self._chunks:
            self._ready.clear()
            await self._ready.wait()
        return self._chunks.popleft()


class ConsoleHub:
    """One driver console stream shared by every watcher of one instance."""

    def __init__(self, instance_id: str, open_stream: Callable[[], Awaitable[Any]],
                 on_empty: Callable[["ConsoleHub"], None]) -> None:
        self.instance_id = instance_id
        self._open = open_stream
        self._on_empty = on_empty
        self.watchers: list[Watcher] = []
        self._stream: Any = None
        self._pump: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def attach(self) -> Watcher:
        async with self._lock:
            if self._stream is None:
                self._stream = await self._open()
                self._pump = asyncio.create_task(self._run())
            w = Watcher()
            self.watchers.append(w)
            return w

    def is_writer(self, w: Watcher) -> bool:
        return bool(self.watchers) and self.watchers[0] is w

    async def write(self, w: Watcher, data: bytes) -> bool:
        """Send input if `w` is the writer; returns whether it went through."""
        if not self.is_writer(w) or self._stream is None:
            return False
        await self._stream.write(data)
        return True

    async def detach(self, w: Watcher) -> None:
        async with self._lock:
            if w in self.watchers:
                self.watchers.remove(w)
            if not self.watchers:
                await self._close()

    async def _run(self) -> None:
        stream = self._stream
        try:
            while True:
                data = await stream.read()
                if not data:
                    break
                for w in list(self.watchers):
                    w.push(data)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("console stream failed", extra={"instance": self.instance_id})
        for w in list(self.watchers):
            w.push(None)

    async def _close(self) -> None:
        pump, self._pump = self._pump, None
        stream, self._stream = self._stream, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.close()
        self._on_empty(self)

    async def close(self) -> None:
        async with self._lock:
            for w in self.watchers:
                w.push(None)
            self.watchers.clear()
            if self._stream is not None:
                await self._close()


class ConsoleProxy:
    """Hubs by instance id, created on first watcher and dropped with the last."""

    def __init__(self, open_stream: Callable[[str], Awaitable[Any]]) -> None:
        self._open = open_stream
        self.hubs: dict[str, ConsoleHub] = {}

    def hub(self, instance_id: str) -> ConsoleHub:
        hub = self.hubs.get(instance_id)
        if hub is None:
            hub = ConsoleHub(instance_id, lambda: self._open(instance_id), self._dropped)
            self.hubs[instance_id] = hub
        return hub

    def _dropped(self, hub: ConsoleHub) -> None:
        if self.hubs.get(hub.instance_id) is hub and not hub.watchers:
            del self.hubs[hub.instance_id]

    async def close_instance(self, instance_id: str) -> None:
        hub = self.hubs.pop(instance_id, None)
        if hub is not None:
            await hub.close()

    async def close(self) -> None:
        for iid in list(self.hubs):
            await self.close_instance(iid)
