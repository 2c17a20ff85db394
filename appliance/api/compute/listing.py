"""Server listings built from what changed since the last one, not from scratch.

`GET /servers/detail` with 1,000 servers decoded 1,000 stored documents and built and encoded
1,000 bodies at every call (165 ms), though between two calls a server rarely changes. Here
each server keeps the record decoded from its stored document and its encoded body per way of
showing it (microversion, admin or not): an entry is dropped the moment the store applies a
change to that server (Store.watch, inside the commit), and a body is kept only while what
it shows from outside the server's document is unchanged: the floating addresses (held by the
network) and the running action's progress (compute/progress_meter.py, in memory), so a
floating IP associated or released, or a build step, shows in the very next listing.
Everything a body shows comes from the server's document, those two and the request's view
(views.ServerViews); a new input to views.detail must join `shown` in `details`.

The records handed out are shared between requests: listings read them, never change them.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from appliance.api.compute.views import ServerViews
from appliance.api.util import ctx_of, json_bytes
from appliance.compute.records import Instance
from appliance.state import Repository, Store


@dataclass
class _Entry:
    doc: dict[str, Any]
    record: Instance
    #: view key → ((floating-address generation, progress) it showed, encoded body)
    bodies: dict[tuple[Any, ...], tuple[tuple[int, Any], bytes]] = field(default_factory=dict)


class ServerBodies:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._watching: set[int] = set()
        #: the floating addresses the last listing showed, and a counter bumped when they
        #: differ from the previous listing's: a body built under another count is stale
        self._floating: dict[str, Any] | None = None
        self._generation = 0

    def records(self, repo: Repository[Instance]) -> list[Instance]:
        """Every server, decoded once per stored version (read them, never change them)."""
        store = repo.store
        if id(store) not in self._watching:
            store.watch(repo.table, self._changed)
            self._watching.add(id(store))
        entries, out = self._entries, []
        for doc in store.all(repo.table):
            entry = entries.get(doc["id"])
            if entry is None or entry.doc is not doc:
                record = repo.get(doc["id"])
                if record is None:  # pragma: no cover - same synchronous read
                    continue
                entry = entries[doc["id"]] = _Entry(doc, record)
            out.append(entry.record)
        return out

    def details(self, views: ServerViews, items: list[Instance]) -> list[bytes]:
        """The servers' detail bodies, encoded; each built only when it or what it shows
        changed."""
        if views.floating != self._floating:  # one comparison per listing, not per server
            self._floating = views.floating
            self._generation += 1
        key, generation = (views.minor, views.is_admin, views.root), self._generation
        meter = views.progress
        out = []
        for inst in items:
            entry = self._entries.get(inst.id)
            if entry is None or entry.record is not inst:
                out.append(_encode(views.detail(inst)))  # not one of ours: never kept
                continue
            # what the body shows from outside the server's document: the floating addresses
            # (by generation) and the running action's progress (in memory, per server)
            shown = (generation, meter.of(inst) if meter is not None else None)
            cached = entry.bodies.get(key)
            if cached is None or cached[0] != shown:
                cached = entry.bodies[key] = (shown, _encode(views.detail(inst)))
            out.append(cached[1])
        return out

    def _changed(self, id: str, old: Any, new: Any) -> None:
        self._entries.pop(id, None)


_encode = json_bytes

#: one ServerBodies per store (per running appliance), gone with it
_BY_STORE: "weakref.WeakKeyDictionary[Store, ServerBodies]" = weakref.WeakKeyDictionary()


def server_bodies(request: web.Request) -> ServerBodies:
    store = ctx_of(request).store
    bodies = _BY_STORE.get(store)
    if bodies is None:
        bodies = _BY_STORE[store] = ServerBodies()
    return bodies
