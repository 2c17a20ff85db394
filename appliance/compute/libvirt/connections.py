"""The connections libvirt calls run on, beside the driver's event connection.

One connection serialises more than it seems: libvirtd serves at most `max_client_requests`
calls of one client connection at a time (5 by default) and leaves the rest unread, and even
below that a quick call waits behind a domain start on the same connection (measured on a
2-core TCG host, 4 starts in flight: a power-state read right after one start returned took
0-4 ms on a connection of its own, 120-900 ms on the starts' shared one, ending when the last
start did). With every call on the one connection, 20 concurrent boots had 5 starts inside
libvirtd where 20 raw clients (a connection each) had all 20, and each boot's ACTIVE waited
for its power-state read behind the others' starts.

So a call borrows a connection no other call is using, opening one more (in parallel, up to
MAX_CONNECTIONS) when all are busy; they stay open for the next burst. Past the cap calls
share the least busy one. The event connection keeps only events and console streams (whose
domain and stream must share one connection).

A connection libvirtd drops is discarded by the call that found it dead, and all of them when
the event connection is lost (libvirtd restarted): the next call opens a fresh one.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import libvirt

#: calls one connection carries at once before another is opened
PER_CONNECTION = 1
#: connections at most (a burst of 20 boots has some 20-25 calls in flight; libvirtd's own
#: limit is 5,000 clients); past it calls share
MAX_CONNECTIONS = 32


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
        self._lock = threading.Condition()
        self._pool: list[_Pooled] = []
        self._opening = 0  # connections being opened (outside the lock) for waiting calls

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
            while True:
                least = min(self._pool, key=lambda p: p.calls, default=None)
                full = len(self._pool) + self._opening >= self._max
                if least is not None and (least.calls < self._per or full):
                    least.calls += 1
                    return least
                if not full:
                    break
                self._lock.wait()  # every connection there may be is still being opened
            self._opening += 1
        try:  # outside the lock: a burst's calls open theirs side by side
            conn = self._open()
        except libvirt.libvirtError:
            with self._lock:
                self._opening -= 1
                self._lock.notify_all()
                least = min(self._pool, key=lambda p: p.calls, default=None)
                if least is None:
                    raise
                least.calls += 1
                return least
        pooled = _Pooled(conn)
        pooled.calls = 1
        with self._lock:
            self._opening -= 1
            self._pool.append(pooled)
            self._lock.notify_all()
        return pooled

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
