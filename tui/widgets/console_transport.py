"""The byte pipe between a serial console widget and a guest's serial port.

The widget knows only `ConsoleTransport`; the real one is a websocket to the daemon's serial
console proxy (built by the daemon client), tests hand in a queue. `ReconnectingTransport`
turns "the stream ended" (the guest rebooted, the daemon restarted) into a wait-and-redial
loop with backoff, and reports each link state so the UI can say "reconnecting…".

Contract for a transport:
    read()   -> the next bytes from the guest; b"" exactly once, at end of stream.
                May raise OSError/ConnectionError when the link breaks (treated as end).
    write(b) -> send bytes to the guest. May raise OSError/ConnectionError if the link is down.
    close()  -> release the link; read() then returns b"". Idempotent.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol, runtime_checkable


@runtime_checkable
class ConsoleTransport(Protocol):
    """A duplex byte stream to one guest serial console."""

    async def read(self) -> bytes:
        """Next chunk from the guest; b"" at end of stream."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes (keystrokes) to the guest."""
        ...

    async def close(self) -> None:
        """Release the link; a pending read() returns b""."""
        ...


class LinkState(StrEnum):
    """Where a console link is; shown in the console header."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


LinkListener = Callable[[LinkState, str], None]
Connector = Callable[[], "Awaitable[ConsoleTransport] | ConsoleTransport"]


async def _maybe_await(value: "Awaitable[ConsoleTransport] | ConsoleTransport") -> ConsoleTransport:
    if inspect.isawaitable(value):
        return await value
    return value


class ReconnectingTransport:
    """Wraps a connector; when a stream ends it redials with exponential backoff.

    read() only returns b"" after close(); in between, an ended stream becomes
    RECONNECTING (listeners told, with the reason), then CONNECTED again. Keystrokes written
    while the link is down are dropped — a rebooting guest would not see them either.
    """

    def __init__(
        self,
        connect: Connector,
        *,
        initial_delay: float = 0.25,
        max_delay: float = 5.0,
        factor: float = 2.0,
    ) -> None:
        self._connect = connect
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.factor = factor
        self._inner: ConsoleTransport | None = None
        self._closed = asyncio.Event()
        self._listeners: list[LinkListener] = []
        self.state = LinkState.CONNECTING
        self.detail = ""
        self.reconnects = 0

    def subscribe(self, listener: LinkListener) -> None:
        """Call `listener(state, detail)` on every state change (and once now)."""
        self._listeners.append(listener)
        listener(self.state, self.detail)

    def _set_state(self, state: LinkState, detail: str = "") -> None:
        if (state, detail) == (self.state, self.detail):
            return
        self.state, self.detail = state, detail
        for listener in list(self._listeners):
            listener(state, detail)

    async def _sleep_or_close(self, delay: float) -> bool:
        """Wait `delay` seconds; True if close() happened meanwhile."""
        try:
            await asyncio.wait_for(self._closed.wait(), delay)
            return True
        except TimeoutError:
            return False

    async def _dial(self) -> ConsoleTransport | None:
        """Connect, retrying with backoff until it works or close() is called."""
        delay = self.initial_delay
        while not self._closed.is_set():
            try:
                inner = await _maybe_await(self._connect())
            except (OSError, ConnectionError, asyncio.TimeoutError) as error:
                self._set_state(
                    LinkState.RECONNECTING if self.reconnects or self.state != LinkState.CONNECTING
                    else LinkState.CONNECTING,
                    f"{type(error).__name__}: {error}; retry in {delay:.1f}s",
                )
                if await self._sleep_or_close(delay):
                    return None
                delay = min(self.max_delay, delay * self.factor)
                continue
            self._set_state(LinkState.CONNECTED)
            return inner
        return None

    async def read(self) -> bytes:
        delay = self.initial_delay
        while not self._closed.is_set():
            if self._inner is None:
                self._inner = await self._dial()
                if self._inner is None:
                    break
            try:
                data = await self._inner.read()
            except (OSError, ConnectionError) as error:
                data, reason = b"", f"{type(error).__name__}: {error}"
            else:
                reason = "stream ended"
            if data:
                delay = self.initial_delay
                return data
            inner, self._inner = self._inner, None
            await _close_quietly(inner)
            if self._closed.is_set():
                break
            self.reconnects += 1
            self._set_state(LinkState.RECONNECTING, reason)
            # A stream that ends straight away (guest still down) must not spin: back off.
            if await self._sleep_or_close(delay):
                break
            delay = min(self.max_delay, delay * self.factor)
        self._set_state(LinkState.CLOSED)
        return b""

    async def write(self, data: bytes) -> None:
        inner = self._inner
        if inner is None or self.state != LinkState.CONNECTED:
            return
        try:
            await inner.write(data)
        except (OSError, ConnectionError):
            pass  # the read side notices the broken link and redials

    async def close(self) -> None:
        self._closed.set()
        inner, self._inner = self._inner, None
        if inner is not None:
            await _close_quietly(inner)
        self._set_state(LinkState.CLOSED)


async def _close_quietly(transport: ConsoleTransport) -> None:
    close = getattr(transport, "close", None)
    if close is None:
        return
    try:
        await close()
    except (OSError, ConnectionError):
        pass


class QueueTransport:
    """An in-memory transport: the test (or a demo) is the guest.

    `feed(data)` queues guest output, `end()` ends the current stream (like a reboot),
    `sent` collects what the console wrote. Useful for Pilot tests and the benchmark.
    """

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.sent = bytearray()
        self.writes: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    def feed(self, data: bytes) -> None:
        if data:
            self.incoming.put_nowait(data)

    def end(self) -> None:
        self.incoming.put_nowait(b"")

    async def read(self) -> bytes:
        if self.closed:
            return b""
        data = await self.incoming.get()
        if not data:
            self.closed = True
        return data

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("transport closed")
        self.sent += data
        self.writes.put_nowait(data)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.incoming.put_nowait(b"")
