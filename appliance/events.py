"""The event stream: what happened, durably recorded and pushed live to watchers.

Components publish; the store keeps the newest `KEEP` events (older ones are pruned in the same
transaction as a new one is written, so the table stays bounded); websocket subscribers (the
TUI) get each event as it happens instead of polling.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from appliance.state import Repository, Store
from appliance.state.store import Op

KEEP = 2000


@dataclass
class Event:
    id: str
    seq: int
    time: float
    kind: str  # e.g. "instance.state", "instance.fault", "lease.granted"
    resource_type: str
    resource_id: str
    project_id: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)


class EventBus:
    def __init__(self, store: Store) -> None:
        self.repo = Repository(store, "events", Event)
        existing = self.repo.list()
        self._seq = itertools.count(max((e.seq for e in existing), default=0) + 1)
        self._order: collections.deque[tuple[int, str]] = collections.deque(
            sorted((e.seq, e.id) for e in existing))
        self._subscribers: set[asyncio.Queue[Event]] = set()

    async def publish(self, kind: str, resource_type: str, resource_id: str,
                      project_id: str | None, message: str = "", **data: Any) -> Event:
        event, ops = self.prepare(kind, resource_type, resource_id, project_id, message, **data)
        await self.repo.store.commit(ops)
        self.announce(event)
        return event

    def prepare(self, kind: str, resource_type: str, resource_id: str,
                project_id: str | None, message: str = "", **data: Any) -> tuple[Event, list[Op]]:
        """An event and the ops that record it (pruning the oldest), for a caller that commits
        many events, or an event with its own change, in one transaction (one fsync) instead of
        one each. After the commit, `announce(event)` pushes it to the watchers."""
        event = Event(id=uuid.uuid4().hex, seq=next(self._seq), time=time.time(), kind=kind,
                      resource_type=resource_type, resource_id=resource_id,
                      project_id=project_id, message=message, data=data)
        self._order.append((event.seq, event.id))
        ops = [self.repo.put_op(event)]
        while len(self._order) > KEEP:
            _, old = self._order.popleft()
            ops.append(self.repo.delete_op(old))
        return event, ops

    def announce(self, event: Event) -> None:
        """Push a recorded event to the live watchers."""
        for q in list(self._subscribers):
            if q.qsize() < 10_000:
                q.put_nowait(event)

    def recent(self, limit: int = 100, project_id: str | None = None) -> list[Event]:
        events = sorted(self.repo.list(), key=lambda e: e.seq, reverse=True)
        if project_id is not None:
            events = [e for e in events if e.project_id == project_id]
        return events[:limit]

    def subscribe(self) -> asyncio.Queue[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(q)
