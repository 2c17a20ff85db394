"""Login throttling keyed on (user, source), and the per-key serialisation of login attempts.

Why (user, source) and not the user alone: five wrong passwords sent by anyone used to lock
`admin` out everywhere, so one hostile client kept the operators out. Counting per source
address means an attacker locks out only itself; the local unix socket is a source of its own,
so the operators' door stays open whatever TCP clients do. A locked key is never announced:
the caller answers exactly as for a wrong password (see IdentityService.authenticate).

The table lives in memory (a restart forgets it; nothing an attacker sends is written to disk)
and is bounded: past `max_entries` the entries idle longest are dropped first.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import AsyncIterator, Hashable

#: The source of every login over the local unix socket.
LOCAL_SOURCE = "local"


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, failures: int, seconds: float, *, max_entries: int = 100_000) -> None:
        self.failures = failures
        self.seconds = seconds
        self.max_entries = max_entries
        self._table: dict[tuple[str, str], _Failures] = {}

    def locked(self, user_id: str, source: str, now: float) -> bool:
        entry = self._table.get((user_id, source))
        return entry is not None and entry.locked_until > now

    def failed(self, user_id: str, source: str, now: float) -> None:
        if self.failures <= 0:
            return
        key = (user_id, source)
        entry = self._table.pop(key, None) or _Failures()
        if now - entry.last > self.seconds:  # old failures no longer count
            entry.count = 0
        entry.count += 1
        entry.last = now
        if entry.count >= self.failures:
            entry.locked_until = now + self.seconds
            entry.count = 0
        self._table[key] = entry  # re-inserted last: dict order is idle order
        while len(self._table) > self.max_entries:
            del self._table[next(iter(self._table))]

    def succeeded(self, user_id: str, source: str) -> None:
        self._table.pop((user_id, source), None)

    def forget_user(self, user_id: str) -> None:
        """A new password (an admin's reset) unlocks the user from every source."""
        for key in [k for k in self._table if k[0] == user_id]:
            del self._table[key]


class KeyedLocks:
    """One asyncio.Lock per key, existing only while someone holds or waits for it (a client
    inventing names cannot grow the table)."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
