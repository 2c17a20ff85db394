"""Typed records in and out of the store: dataclasses go in, dataclasses come out.

Records are flat dataclasses with a string `id`; fields hold JSON values or StrEnums (which
are loaded back into their enum). Unknown keys in stored documents are ignored so an older
daemon can read a newer record; missing keys take the dataclass default (migration-friendly).
"""
from __future__ import annotations

import dataclasses
import enum
import typing
from functools import lru_cache
from typing import Any, Callable, Generic, Iterable, TypeVar

from appliance.errors import NotFound
from appliance.state.store import Delete, Op, Put, Store

T = TypeVar("T")


@lru_cache(maxsize=None)
def _enum_fields(cls: type) -> dict[str, type[enum.Enum]]:
    hints = typing.get_type_hints(cls)
    out: dict[str, type[enum.Enum]] = {}
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        for candidate in (hint, *typing.get_args(hint)):
            if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
                out[f.name] = candidate
                break
    return out


@lru_cache(maxsize=None)
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def to_doc(record: Any) -> dict[str, Any]:
    doc = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        doc[f.name] = value.value if isinstance(value, enum.Enum) else value
    return doc


@lru_cache(maxsize=None)
def _plain_init(cls: type) -> bool:
    """A dataclass whose __init__ only assigns its fields (no __post_init__, no slots, not
    frozen): a document holding every field can fill its __dict__ directly."""
    params = getattr(cls, "__dataclass_params__", None)
    return (params is not None and not params.frozen and not hasattr(cls, "__post_init__")
            and not hasattr(cls, "__slots__"))


def from_doc(cls: type[T], doc: dict[str, Any]) -> T:
    names = _field_names(cls)
    # The common case (no keys from a newer daemon) is a C-level copy, not a comprehension:
    # listing 1,000 instances decodes 1,000 documents.
    keys = doc.keys()
    kwargs = doc.copy() if keys <= names else {k: v for k, v in doc.items() if k in names}
    for name, enum_cls in _enum_fields(cls).items():
        value = kwargs.get(name)
        if value is not None and type(value) is not enum_cls:
            kwargs[name] = enum_cls(value)
    if len(kwargs) == len(names) and _plain_init(cls):
        # every field present (to_doc writes them all): the generated __init__ would assign
        # the same values one by one, a third of decoding 1,000 instances
        record = cls.__new__(cls)
        record.__dict__.update(kwargs)
        return record
    return cls(**kwargs)


class Repository(Generic[T]):
    """One table of one record type."""

    def __init__(self, store: Store, table: str, cls: type[T], *, kind: str | None = None):
        self.store = store
        self.table = table
        self.cls = cls
        self.kind = kind or table.rstrip("s")

    def get(self, id: str) -> T | None:
        doc = self.store.get(self.table, id)
        return None if doc is None else from_doc(self.cls, doc)

    def require(self, id: str) -> T:
        record = self.get(id)
        if record is None:
            raise NotFound(f"{self.kind} {id} could not be found.")
        return record

    def list(self, pred: Callable[[T], bool] | None = None) -> list[T]:
        records = [from_doc(self.cls, d) for d in self.store.all(self.table)]
        return records if pred is None else [r for r in records if pred(r)]

    def docs(self, **equals: Any) -> list[dict[str, Any]]:
        """The stored documents whose fields equal `equals` (enums as their values), without
        decoding them: for sums and counts over many records. Read them, never change them."""
        items = equals.items()
        return [d for d in self.store.all(self.table) if all(d.get(k) == v for k, v in items)]

    def count(self) -> int:
        return self.store.count(self.table)

    def put_op(self, record: T) -> Op:
        return Put(self.table, record.id, to_doc(record))  # type: ignore[attr-defined]

    def delete_op(self, id: str) -> Op:
        return Delete(self.table, id)

    async def save(self, record: T) -> T:
        await self.store.commit([self.put_op(record)])
        return record

    async def delete(self, id: str) -> None:
        await self.store.commit([self.delete_op(id)])

    async def save_all(self, records: Iterable[T]) -> None:
        await self.store.commit([self.put_op(r) for r in records])
