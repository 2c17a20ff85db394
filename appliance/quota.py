"""Quotas every service shares: a reservation taken atomically before the work.

Why reservations: a check that counts a project's stored records and then awaits before it
stores its own lets N parallel requests all count the same usage and all pass (20 volume
creates against a quota of 10 all succeeded). Here a request first *reserves* what it will
use: under one lock per project, each resource's limit is compared with the usage the service
counts from its records plus every reservation still outstanding plus the new amount, and the
reservation is recorded before the lock is let go. The reservation is *committed* once the
record that counts the resource is stored (usage includes it from then on) and *released* when
the work fails or is cancelled. No reservation is decided while a store write that makes a
record count is in flight (`store`), so none ever sees the record and the reservation both
(which would refuse a request that fits) or neither (which would admit one that does not).
Store writes of one project run side by side, though (their commits share an fsync): 20
parallel server creates took 20 fsyncs in a row when each write held the project's lock. A
decision waiting holds back new writes, so a stream of writes cannot starve it.

Reservations live in memory only: after a crash the stored records are the whole usage, so
nothing can stay reserved forever.

    quotas.register(QuotaSource(("volumes", "gigabytes"), limits=..., usage=...,
                                exceeded=...))
    async with quotas.reserve(project_id, {"volumes": 1, "gigabytes": 10}) as held:
        ...the work...
        await held.store(volumes.save(record))   # stored and committed as one step

    held = await quotas.reserve(project_id, {"gigabytes": 5})   # held across tasks
    ...; held.commit()  /  held.release()

Each service names its resources (Nova's `instances`, Cinder's `gigabytes`, Neutron's
`port`, Swift's container bytes keyed by "account/container" …) and says how an overrun
reads in its API (Nova answers 403, Cinder 413), so clients see what upstream would send.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

from appliance.errors import MonostackError, QuotaExceeded

log = logging.getLogger("monostack.quota")

#: a project's numbers per resource; a callable may be sync or async
Counts = Mapping[str, int]
CountsOf = Callable[[str], "Counts | Awaitable[Counts]"]


def _default_exceeded(resource: str, asked: int, used: int, limit: int) -> Exception:
    return QuotaExceeded(f"Quota exceeded for {resource}: requested {asked}, but already used "
                         f"{used} of {limit} {resource}.")


@dataclass(frozen=True)
class QuotaSource:
    """What one service counts. `limits`/`usage` map a project id to numbers per resource
    (a limit < 0 is unlimited); `exceeded(resource, asked, used, limit)` is the error the
    service's API answers with."""

    resources: tuple[str, ...]
    limits: CountsOf
    usage: CountsOf
    exceeded: Callable[[str, int, int, int], Exception] = _default_exceeded


class Reservation:
    """Resources held for one piece of work. Await it (or enter it with `async with`) to take
    it; then `commit()` once the record is stored, or `release()` if the work is abandoned.
    Both are idempotent; every path that takes one must end it (`async with` does)."""

    def __init__(self, quotas: "Quotas", project_id: str, deltas: Mapping[str, int]) -> None:
        self.quotas = quotas
        self.project_id = project_id
        self.deltas = {k: int(v) for k, v in deltas.items() if int(v) > 0}
        self.held = False
        self.done = False

    def __await__(self) -> Generator[Any, None, "Reservation"]:
        return self._take().__await__()

    async def _take(self) -> "Reservation":
        if self.held or self.done:
            raise RuntimeError("a reservation is taken once")
        await self.quotas._take(self)
        self.held = True
        return self

    async def __aenter__(self) -> "Reservation":
        if not self.held:
            await self._take()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.release()

    async def grow(self, deltas: Mapping[str, int]) -> None:
        """Hold more (a stream whose size shows only as it arrives); raises the over-quota
        error, holding what it held before, when the growth does not fit."""
        if not self.held:
            raise RuntimeError("only a held reservation grows")
        await self.quotas._take(self, {k: int(v) for k, v in deltas.items() if int(v) > 0})

    async def store(self, write: Awaitable[T]) -> T:
        """Await `write` — the store write after which usage counts these resources — under
        the project's lock, then commit (release, if the write fails)."""
        if not self.held or not self.project_id:
            try:
                return await write
            finally:
                self._end()
        async with self.quotas._gate(self.project_id).writing():
            try:
                result = await write
            finally:
                self._end()
        return result

    def commit(self) -> None:
        """The records that count these resources are stored: stop holding them."""
        self._end()

    def release(self) -> None:
        """The work failed or was cancelled: give the resources back."""
        self._end()

    def _end(self) -> None:
        if self.held and not self.done:
            self.quotas._drop(self)
        self.held, self.done = False, True

    def __repr__(self) -> str:
        state = "held" if self.held else "done" if self.done else "new"
        return f"<Reservation {self.project_id} {self.deltas} {state}>"


class Quotas:
    """The daemon's one quota ledger (in the ApplianceContext)."""

    def __init__(self) -> None:
        self._sources: dict[str, QuotaSource] = {}
        #: one per project ever reserved for (bounded by the projects); never dropped, since
        #: a waiter may hold one that was just released
        self._gates: dict[str, _Gate] = {}
        self._outstanding: dict[str, list[Reservation]] = {}

    def register(self, source: QuotaSource) -> None:
        """A service declares its resources; a name belongs to one service only."""
        for name in source.resources:
            owner = self._sources.get(name)
            if owner is not None and owner is not source:
                raise ValueError(f"quota resource {name!r} is already registered")
        for name in source.resources:
            self._sources[name] = source

    def unregister(self, source: QuotaSource) -> None:
        for name in source.resources:
            if self._sources.get(name) is source:
                del self._sources[name]

    def reserve(self, project_id: str | None, deltas: Mapping[str, int]) -> Reservation:
        """Resources to take for `project_id` (await it, or `async with` it). Raises the
        owning service's over-quota error when a resource would go over its limit."""
        return Reservation(self, project_id or "", deltas)

    def reserved(self, project_id: str, resource: str) -> int:
        """How much of `resource` outstanding reservations hold (the quota sets' `reserved`)."""
        return sum(r.deltas.get(resource, 0) for r in self._outstanding.get(project_id, ()))

    async def headroom(self, project_id: str, resource: str) -> int | None:
        """What is left of `resource` for the project (None: unlimited)."""
        source = self._source(resource)
        limit = int((await _counts(source.limits, project_id)).get(resource, -1))
        if limit < 0:
            return None
        used = int((await _counts(source.usage, project_id)).get(resource, 0))
        return max(0, limit - used - self.reserved(project_id, resource))

    def _gate(self, project_id: str) -> "_Gate":
        return self._gates.setdefault(project_id, _Gate())

    def _source(self, resource: str) -> QuotaSource:
        try:
            return self._sources[resource]
        except KeyError:
            raise MonostackError(f"no service counts quota resource {resource!r}") from None

    async def _take(self, reservation: Reservation,
                    growth: Mapping[str, int] | None = None) -> None:
        project_id = reservation.project_id
        deltas = reservation.deltas if growth is None else growth
        if not project_id:
            return  # service-owned resources (no project) are not limited
        sources: dict[int, QuotaSource] = {}
        for name in deltas:
            source = self._source(name)
            sources[id(source)] = source
        async with self._gate(project_id).deciding():
            for source in sources.values():
                limits = await _counts(source.limits, project_id)
                usage = await _counts(source.usage, project_id)
                for name in source.resources:
                    asked = deltas.get(name, 0)
                    limit = int(limits.get(name, -1))
                    if not asked or limit < 0:
                        continue
                    used = int(usage.get(name, 0)) + self.reserved(project_id, name)
                    if used + asked > limit:
                        raise source.exceeded(name, asked, used, limit)
            if growth is None:
                self._outstanding.setdefault(project_id, []).append(reservation)
            else:
                for name, more in growth.items():
                    reservation.deltas[name] = reservation.deltas.get(name, 0) + more

    def _drop(self, reservation: Reservation) -> None:
        held = self._outstanding.get(reservation.project_id)
        if held is None:
            return
        for i, r in enumerate(held):
            if r is reservation:
                del held[i]
                break
        if not held:
            del self._outstanding[reservation.project_id]


class _Gate:
    """One project's decisions (one at a time, never beside a write) and store writes (side
    by side, never beside a decision; none starts while a decision waits). Entering waits;
    leaving never does, so a cancelled task cannot leave the gate shut."""

    def __init__(self) -> None:
        self._deciding = False
        self._writes = 0
        self._decisions_waiting = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    @contextlib.asynccontextmanager
    async def deciding(self) -> AsyncIterator[None]:
        self._decisions_waiting += 1
        try:
            await self._until(lambda: not self._deciding and not self._writes)
        finally:
            self._decisions_waiting -= 1
        self._deciding = True
        try:
            yield
        finally:
            self._deciding = False
            self._wake()

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        await self._until(lambda: not self._deciding and not self._decisions_waiting)
        self._writes += 1
        try:
            yield
        finally:
            self._writes -= 1
            self._wake()


async def _counts(fn: CountsOf, project_id: str) -> Counts:
    result = fn(project_id)
    if inspect.isawaitable(result):
        result = await result
    return result  # type: ignore[return-value]
