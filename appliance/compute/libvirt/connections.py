"""The connections libvirt calls run on, beside the driver's event connection.

libvirtd serves at most `max_client_requests` calls of one client connection at a time (5 by
default) and leaves the rest unread on the socket. With every call on the one connection that
also carries the lifecycle events, 20 concurrent boots had at most 5 domain starts inside
libvirtd while 20 raw clients (a connection each) had all 20, and a power-state read waited
behind the starts. Calls therefore borrow a connection carrying fewer than PER_CONNECTION
calls, opening one more (up to MAX_CONNECTIONS) when all are that busy; the connections stay
open for the next burst. The event connection keeps only events and console streams (whose
domain and stream must share one connection).

A connection libvirtd drops is discarded by the call that found it dead, and all of them when
the event connection is lost (libvirtd restarted): the next call opens a fresh one.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import libvirt

#: calls one connection carries at once: below libvirtd's default max_client_requests (5), so
#: a call borrowed here is never the one libvirtd leaves waiting
PER_CONNECTION = 4
#: connections at most: PER_CONNECTION × MAX_CONNECTIONS is the driver's call threads (48)
MAX_CONNECTIONS = 12


def _close_quietly(conn: libvirt.virConnect) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        conn.close()


class _Pooled:
    __slots__ = ("conn", "calls", "dropped")

    def __init__(self, conn: libvirt.virConnect) -> None:
        self.conn = conn
        self.calls = 0
        self.dropped = False


class CallConnections:
    """Thread-safe: borrowed inside the worker threads that run the calls (opening a
    connection blocks, like any libvirt call)."""

    def __init__(self, open_: Callable[[], libvirt.virConnect], *,
                 per_connection: int = PER_CONNECTION,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self._open = open_
        self._per = per_connection
        self._max = max_connections
        self._lock = threading.Lock()
        self._pool: list[_Pooled] = []

    def __len__(self) -> int:
        return len(self._pool)

    @contextlib.contextmanager
    def borrow(self) -> Iterator[libvirt.virConnect]:
        """A connection for one call. A call that finds it dead (libvirtError with a
        connection-lost code) calls `discard` before leaving."""
        pooled = self._take()
        try:
            yield pooled.conn
        finally:
            self._give_back(pooled)

    def _take(self) -> _Pooled:
        with self._lock:
            idle = min(self._pool, key=lambda p: p.calls, default=None)
            if idle is None or (idle.calls >= self._per and len(self._pool) < self._max):
                try:
                    idle = _Pooled(self._open())
                except libvirt.libvirtError:
                    if idle is None:
                        raise
                else:  # under the lock: a burst opens only the connections it needs
                    self._pool.append(idle)
            idle.calls += 1
            return idle

    def _give_back(self, pooled: _Pooled) -> None:
        with self._lock:
            pooled.calls -= 1
            close = pooled.dropped and pooled.calls == 0
        if close:
            _close_quietly(pooled.conn)

    def discard(self, conn: libvirt.virConnect) -> None:
        """Stop lending `conn` (found dead); closed once its last call is over."""
        with self._lock:
            for p in self._pool:
                if p.conn is conn:
                    p.dropped = True
                    self._pool.remove(p)
                    break

    def drop_all(self) -> list[libvirt.virConnect]:
        """Stop lending every connection; the idle ones are returned for the caller to close
        (off the event loop), the busy ones close when their call is over."""
        with self._lock:
            pool, self._pool = self._pool, []
            for p in pool:
                p.dropped = True
            return [p.conn for p in pool if p.calls == 0]
