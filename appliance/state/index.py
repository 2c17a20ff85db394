"""Ids of one table grouped by a value read from each document, kept current by the store.

A lookup that scanned and decoded the whole table ("the actions of this server", "the usage of
this project") made every create cost more as the cloud grew. The index is built from the
table at first use and then follows every committed change at O(1) (Store.watch), so a lookup
costs what it returns, whatever the table holds.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from appliance.state.store import Store

S = TypeVar("S")


class Tally(Generic[S]):
    """State folded from every document of one table: built at first use, then kept current
    by the store at O(1) per committed change (Store.watch). Subclasses say what the state
    starts as (`_new`) and how one document adds to or leaves it (`_fold`, sign ±1)."""

    def __init__(self, store: Store, table: str) -> None:
        self._store = store
        self._table = table
        self._state: S | None = None
        store.watch(table, self._changed)

    def _new(self) -> S:
        raise NotImplementedError

    def _fold(self, state: S, doc: dict[str, Any], sign: int) -> None:
        raise NotImplementedError

    def _built(self) -> S:
        if self._state is None:
            state = self._new()
            for doc in self._store.all(self._table):
                self._fold(state, doc, 1)
            self._state = state
        return self._state

    def _changed(self, id: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self._state is None:
            return  # not built yet: the first use reads the table as it is then
        if old is not None:
            self._fold(self._state, old, -1)
        if new is not None:
            self._fold(self._state, new, 1)


class FieldIndex(Tally[dict[Hashable, set[str]]]):
    """value → ids of the documents for which `key(doc)` is that value."""

    def __init__(self, store: Store, table: str, key: Callable[[dict[str, Any]], Hashable]
                 ) -> None:
        self._key = key
        super().__init__(store, table)

    def _new(self) -> dict[Hashable, set[str]]:
        return {}

    def _fold(self, state: dict[Hashable, set[str]], doc: dict[str, Any], sign: int) -> None:
        value = self._key(doc)
        if sign > 0:
            state.setdefault(value, set()).add(doc["id"])
            return
        ids = state.get(value)
        if ids is not None:
            ids.discard(doc["id"])
            if not ids:
                del state[value]

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
