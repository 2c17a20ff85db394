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

Nobody is left guessing: a watcher who arrives second is told, in its own output stream (so
every client shows it, the TUI and a bare websocket alike), who holds the console and since
when, and that typing `takeover` + Enter takes it over; otherwise it keeps watching read-only.
The holder who loses the console, and a watcher who becomes the writer, are told too. Only
read-only input is ever looked at for `takeover` (it would be dropped anyway), so nothing a
writer types is ever interpreted.
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

#: What a read-only watcher types to become the writer.
TAKE_OVER = b"takeover"


@dataclass(frozen=True)
class ConsoleGrant:
    instance_id: str
    project_id: str
    expires: float
    holder: str = ""  # who asked for the URL: named to the others sharing the console


class ConsoleTokens:
    def __init__(self, ttl: float = TOKEN_TTL) -> None:
        self.ttl = ttl
        self._grants: dict[str, ConsoleGrant] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue(self, instance_id: str, project_id: str, holder: str = "") -> str:
        self._purge()
        token = secrets.token_urlsafe(32)
        self._grants[self._key(token)] = ConsoleGrant(instance_id, project_id,
                                                      time.monotonic() + self.ttl, holder)
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

    def __init__(self, max_pending: int = 256, label: str = "") -> None:
        self._chunks: deque[bytes | None] = deque()
        self._max = max_pending
        self._ready = asyncio.Event()
        self.label = label or "another client"
        self.since = time.time()
        self.typed = b""  # read-only input, kept only to spot TAKE_OVER (bounded)

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

    async def attach(self, label: str = "") -> Watcher:
        async with self._lock:
            if self._stream is None:
                self._stream = await self._open()
                self._pump = asyncio.create_task(self._run())
            w = Watcher(label=label)
            self.watchers.append(w)
            if len(self.watchers) > 1:
                holder = self.watchers[0]
                held = time.strftime("%H:%M:%S UTC", time.gmtime(holder.since))
                w.push(_notice(f"This console is held by {holder.label} (since {held}). "
                               f"You are watching read-only; type "
                               f"{TAKE_OVER.decode()} and Enter to take it over."))
            return w

    def is_writer(self, w: Watcher) -> bool:
        return bool(self.watchers) and self.watchers[0] is w

    async def write(self, w: Watcher, data: bytes) -> bool:
        """Send input if `w` is the writer; returns whether it went through. A read-only
        watcher's input is dropped, except that typing TAKE_OVER + Enter takes over."""
        if not self.is_writer(w):
            if w in self.watchers:
                w.typed = (w.typed + data)[-64:]
                line = w.typed.rstrip(b"\r\n")
                if line != w.typed and line.endswith(TAKE_OVER):
                    w.typed = b""
                    self.take_over(w)
                else:  # only what follows the last Enter can still become TAKE_OVER
                    w.typed = w.typed.replace(b"\r", b"\n").rsplit(b"\n", 1)[-1]
            return False
        if self._stream is None:
            return False
        await self._stream.write(data)
        return True

    def take_over(self, w: Watcher) -> None:
        """`w` becomes the writer; the one it displaces is told and watches read-only."""
        if w not in self.watchers or self.is_writer(w):
            return
        old = self.watchers[0]
        self.watchers.remove(w)
        self.watchers.insert(0, w)
        w.since = time.time()
        old.push(_notice(f"{w.label} took over this console; you are watching read-only "
                         f"(type {TAKE_OVER.decode()} and Enter to take it back)."))
        w.push(_notice("You hold this console now: your keys reach the guest."))

    async def detach(self, w: Watcher) -> None:
        async with self._lock:
            was_writer = self.is_writer(w)
            if w in self.watchers:
                self.watchers.remove(w)
            if not self.watchers:
                await self._close()
            elif was_writer:
                self.watchers[0].since = time.time()
                self.watchers[0].push(_notice(
                    f"{w.label} left: you hold this console now, your keys reach the guest."))

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


def _notice(text: str) -> bytes:
    """A line for one watcher's screen, set apart from the guest's output."""
    return f"\r\n\x1b[7m[monostack] {text}\x1b[0m\r\n".encode()


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
