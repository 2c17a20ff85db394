"""Typed records in and out of the store: dataclasses go in, dataclasses come out.

Records are dataclasses with a string `id`; fields hold JSON values, StrEnums (loaded back
into their enum), tuples (stored as lists) or nested records: a field typed as a dataclass,
an optional one or a list or tuple of them is stored as JSON objects and decoded here, at the
store boundary, so no dict of a record crosses modules. Unknown keys in stored documents are ignored so an older daemon can read a newer record;
missing keys take the dataclass default (migration-friendly).
"""
from __future__ import annotations

import dataclasses
import enum
import types
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


Codec = Callable[[Any], Any]


def _codec(hint: Any, decode: bool) -> Codec | None:
    """How a field typed `hint` goes from its JSON value to the record's and back: nested
    records (plain, optional, in a list or a tuple) and tuples (JSON has only lists); None
    when the JSON value is the record's value."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _codec(inner[0], decode) if len(inner) == 1 else None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not decode:
            return to_doc
        frozen = hint.__dataclass_params__.frozen  # type: ignore[attr-defined]
        return _shared(_decoder(hint)) if frozen else _decoder(hint)
    if origin in (list, tuple) and args:
        one = _codec(args[0], decode)
        if origin is list:
            return None if one is None else (lambda v: [one(x) for x in v])
        if decode:
            return tuple if one is None else (lambda v: tuple(one(x) for x in v))
        return list if one is None else (lambda v: [one(x) for x in v])
    return None


#: decoded frozen records kept per record class (then it starts afresh): a 1,000-instance
#: listing holds a few thousand; those of documents since replaced go when it starts afresh
SHARED_MAX = 10_000


def _shared(decode: Codec) -> Codec:
    """`decode`, answering the same record again for the same stored document. The store never
    changes a document in place (a write puts a new one), and a frozen record cannot change,
    so every instance decoded from one document may share its nested records: listing 1,000
    instances then decodes only what changed since the last listing. The document is kept
    with its record, so its id cannot be reused while the entry stands."""
    seen: dict[int, tuple[Any, Any]] = {}

    def shared(doc: Any) -> Any:
        hit = seen.get(id(doc))
        if hit is not None and hit[0] is doc:
            return hit[1]
        record = decode(doc)
        if len(seen) >= SHARED_MAX:
            seen.clear()
        seen[id(doc)] = (doc, record)
        return record

    return shared


def _codecs(cls: type, decode: bool) -> tuple[tuple[str, Codec], ...]:
    hints = typing.get_type_hints(cls)
    out = ((f.name, _codec(hints.get(f.name), decode)) for f in dataclasses.fields(cls))
    return tuple((name, codec) for name, codec in out if codec is not None)


@lru_cache(maxsize=None)
def _decoders(cls: type) -> tuple[tuple[str, Codec], ...]:
    return _codecs(cls, decode=True)


@lru_cache(maxsize=None)
def _encoders(cls: type) -> tuple[tuple[str, Codec], ...]:
    return _codecs(cls, decode=False)


def to_doc(record: Any) -> dict[str, Any]:
    doc = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        doc[f.name] = value.value if isinstance(value, enum.Enum) else value
    for name, encode in _encoders(type(record)):
        if doc[name] is not None:
            doc[name] = encode(doc[name])
    return doc


@lru_cache(maxsize=None)
def _plain_init(cls: type) -> bool:
    """A dataclass whose __init__ only assigns its fields (no __post_init__, no slots; a
    frozen one too, which forbids only later assignment): a document holding every field
    can fill its __dict__ directly."""
    params = getattr(cls, "__dataclass_params__", None)
    return (params is not None and not hasattr(cls, "__post_init__")
            and not hasattr(cls, "__slots__"))


def from_doc(cls: type[T], doc: dict[str, Any]) -> T:
    return _decoder(cls)(doc)


@lru_cache(maxsize=None)
def _decoder(cls: type[T]) -> Callable[[dict[str, Any]], T]:
    """A decoder for `cls` with everything known of the class looked up once: listing 1,000
    instances decodes 1,000 documents and several nested records in each."""
    names = _field_names(cls)
    count = len(names)
    # enums and nested records alike: a function of the non-None JSON value
    fixes = tuple(_enum_fields(cls).items()) + _decoders(cls)
    plain = _plain_init(cls)
    new = cls.__new__

    def decode(doc: dict[str, Any]) -> T:
        # The common case (no keys from a newer daemon) is a C-level copy, not a
        # comprehension.
        kwargs = doc.copy() if doc.keys() <= names else {
            k: v for k, v in doc.items() if k in names}
        for name, fix in fixes:
            value = kwargs.get(name)
            if value is not None and type(value) is not fix:
                kwargs[name] = fix(value)
        if plain and len(kwargs) == count:
            # every field present (to_doc writes them all): the generated __init__ would
            # assign the same values one by one, a third of decoding 1,000 instances
            record = new(cls)
            record.__dict__.update(kwargs)
            return record
        return cls(**kwargs)

    return decode


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
