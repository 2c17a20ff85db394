"""Ids of one table grouped by a value read from each document, kept current by the store.

A lookup that scanned and decoded the whole table ("the actions of this server", "the usage of
this project") made every create cost more as the cloud grew. The index is built from the
table at first use and then follows every committed change at O(1) (Store.watch), so a lookup
costs what it returns, whatever the table holds.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from appliance.state.store import Store


class FieldIndex:
    """value → ids of the documents for which `key(doc)` is that value."""

    def __init__(self, store: Store, table: str, key: Callable[[dict[str, Any]], Hashable]
                 ) -> None:
        self._store = store
        self._table = table
        self._key = key
        self._index: dict[Hashable, set[str]] | None = None
        store.watch(table, self._changed)

    def _built(self) -> dict[Hashable, set[str]]:
        if self._index is None:
            index: dict[Hashable, set[str]] = {}
            for doc in self._store.all(self._table):
                index.setdefault(self._key(doc), set()).add(doc["id"])
            self._index = index
        return self._index

    def ids(self, value: Hashable) -> set[str]:
        """A copy: the caller may commit changes to the table while iterating it."""
        return set(self._built().get(value, ()))

    def count(self, value: Hashable) -> int:
        return len(self._built().get(value, ()))

    def __contains__(self, value: object) -> bool:
        """Some document has this value."""
        return value in self._built()

    def __len__(self) -> int:
        """How many distinct values the documents have."""
        return len(self._built())

    def docs(self, value: Hashable) -> list[dict[str, Any]]:
        """The stored documents with that value (read them, never change them)."""
        out = []
        for id in self.ids(value):
            doc = self._store.get(self._table, id)
            if doc is not None:
                out.append(doc)
        return out

    def _changed(self, id: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self._index is None:
            return  # not built yet: the first use reads the table as it is then
        if old is not None:
            ids = self._index.get(self._key(old))
            if ids is not None:
                ids.discard(id)
                if not ids:
                    del self._index[self._key(old)]
        if new is not None:
            self._index.setdefault(self._key(new), set()).add(id)
