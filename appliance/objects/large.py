"""Large objects: static (SLO, a stored JSON manifest of segments) and dynamic (DLO, a prefix
listed at read time), served as one stream of bytes with ranges.

Swift's rules kept here:
- an SLO manifest is validated when it is PUT: every segment exists in the same account, and
  its `etag`/`size_bytes` (when given) match what is stored; the manifest object's ETag is the
  md5 of the segments' etags concatenated, presented *quoted*;
- a DLO's ETag is the quoted md5 of its current segments' etags;
- a segment may itself be an SLO (`sub_slo` in the stored manifest, with the sub-SLO's ETag
  and whole length); reads descend at most MAX_DEPTH manifests deep — deeper is a 409 —
  and fetch a sub-manifest only when the requested bytes reach into it;
- reading a segment whose ETag no longer matches the manifest aborts the stream (the client
  sees a short body, never wrong bytes).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import AsyncIterator

from appliance.errors import BadRequest, PayloadTooLarge
from appliance.objects import swift
from storage.objects import (
    ObjectEngine,
    ObjectEntry,
    ObjectInfo,
    ObjectNotFound,
    RangeNotSatisfiable,
    resolve_ranges,
)

MAX_SEGMENTS = 1000
MAX_MANIFEST_BYTES = 2 << 20
#: Swift's max_slo_recursion_depth: a chain of this many manifests reads, one more is a 409.
MAX_DEPTH = 10


@dataclass(frozen=True)
class Segment:
    container: str
    name: str
    size: int  # the bytes this segment contributes
    etag: str | None  # None: DLO segments are not pinned to an etag
    sub_slo: bool = False  # the segment is itself a static large object
    first: int = 0  # where in the object those bytes start (a ranged segment)
    object_size: int | None = None  # the whole object's length, when it differs from size
    data: bytes | None = None  # an inline data segment: the bytes themselves

    @property
    def whole_size(self) -> int:
        return self.size if self.object_size is None else self.object_size


class SegmentError(Exception):
    """A segment vanished or changed under a manifest: the stream must be aborted."""


class TooDeep(SegmentError):
    """Manifests nest deeper than MAX_DEPTH."""


def is_slo(info: ObjectInfo) -> bool:
    return info.sysmeta.get(swift.SYS_SLO) == "1"


def dlo_manifest(info: ObjectInfo) -> str | None:
    return info.sysmeta.get(swift.SYS_DLO) or None


def etag_of(info: ObjectInfo) -> str:
    """The ETag a GET presents (unquoted): an SLO's is the md5 of its segments' etags, kept
    beside the manifest (older SLOs stored it as their etag)."""
    if is_slo(info):
        return info.sysmeta.get(swift.SYS_SLO_ETAG) or info.etag
    return info.etag


def slo_size(info: ObjectInfo) -> int:
    """An SLO's whole length (the bytes its manifest presents)."""
    return int(info.sysmeta.get(swift.SYS_SLO_SIZE, 0))


def slo_etag(etags: list[str]) -> str:
    return hashlib.md5("".join(etags).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class _Wanted:
    """One validated item of a manifest PUT: an object (maybe a range of it) or inline data."""

    index: int
    container: str = ""
    name: str = ""
    etag: str | None = None
    size: int | None = None
    range: tuple[int | None, int | None] | None = None
    data: bytes | None = None


def _parse_item(i: int, item: object) -> _Wanted:
    """Swift's manifest item rules: `path` (with optional etag, size_bytes, one range) or
    `data` (base64, at least a byte); anything else named is an error."""
    if not isinstance(item, dict):
        raise BadRequest(f"Index {i}: not a JSON object")
    if "data" in item and "path" not in item:
        if set(item) != {"data"}:
            raise BadRequest(f"Index {i}: extraneous keys {sorted(set(item) - {'data'})}")
        try:
            raw = base64.b64decode(str(item["data"]), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"Index {i}: data must be valid base64") from None
        if not raw:
            raise BadRequest(f"Index {i}: too small; each segment must be at least 1 byte.")
        return _Wanted(i, data=raw)
    if "path" not in item:
        raise BadRequest(f"Index {i}: expected keys to include one of 'data' or 'path'")
    extra = set(item) - {"path", "etag", "size_bytes", "range"}
    if extra:
        raise BadRequest(f"Index {i}: extraneous keys {sorted(extra)}")
    if not isinstance(item["path"], str):
        raise BadRequest(f'Index {i}: "path" must be a string')
    container, name = swift.split_container_object(item["path"], f"Index {i} path", quoted=False)
    etag, size = item.get("etag"), item.get("size_bytes")
    if etag is not None and not isinstance(etag, str):
        raise BadRequest(f'Index {i}: "etag" must be a string or null (if provided)')
    if size is not None:
        try:
            size = int(size)
            if size < 0 or isinstance(item["size_bytes"], bool):
                raise ValueError
        except (TypeError, ValueError):
            raise BadRequest(f"Index {i}: invalid size_bytes") from None
    rng = None
    if item.get("range"):
        specs = swift.parse_range(f"bytes={item['range']}") if isinstance(item["range"], str) else None
        if not specs:
            raise BadRequest(f"Index {i}: invalid range")
        if len(specs) > 1:
            raise BadRequest(f"Index {i}: multiple ranges (only one allowed)")
        rng = specs[0]
    return _Wanted(i, container, name, etag, size, rng)


async def build_slo_manifest(engine: ObjectEngine, account: str, body: bytes,
                             target: tuple[str, str]) -> tuple[bytes, str, int]:
    """Validate a `?multipart-manifest=put` body for the object `target` (container, name)
    → (stored manifest, slo etag, total bytes)."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise PayloadTooLarge("manifest is too large")
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("Manifest must be valid JSON.") from None
    if not isinstance(items, list) or not items:
        raise BadRequest("Manifest must be a non-empty list.")
    if len(items) > MAX_SEGMENTS:
        raise BadRequest(f"Too many segments in manifest; max {MAX_SEGMENTS}")
    wanted = [_parse_item(i, item) for i, item in enumerate(items)]
    if all(w.data is not None for w in wanted):
        raise BadRequest("Inline data segments require at least one object-backed segment.")

    sem = asyncio.Semaphore(16)

    async def head(w: _Wanted) -> ObjectInfo | str | None:
        if w.data is not None:
            return None
        async with sem:
            try:
                return await engine.head_object(account, w.container, w.name)
            except ObjectNotFound:
                return "404 Not Found"

    infos = await asyncio.gather(*(head(w) for w in wanted))
    problems: list[str] = []
    out: list[dict] = []
    etag_parts: list[str] = []
    total = 0
    last = len(wanted) - 1
    for w, info in zip(wanted, infos):
        if w.data is not None:
            out.append({"data": base64.b64encode(w.data).decode("ascii")})
            etag_parts.append(hashlib.md5(w.data).hexdigest())
            total += len(w.data)
            continue
        where = f"/{w.container}/{w.name}"
        if isinstance(info, str) or info is None:
            problems.append(f"{where}: {info}")
            continue
        if dlo_manifest(info):
            problems.append(f"{where}: a dynamic large object cannot be a segment")
            continue
        sub = is_slo(info)  # a sub-SLO: its ETag and whole length stand for it, as in Swift
        obj_size = slo_size(info) if sub else info.size
        if (w.container, w.name) == target:
            problems.append(f"{where}: manifest must not include itself as a segment")
            continue
        if w.etag is not None and w.etag.strip('"').lower() != etag_of(info):
            problems.append(f"{where}: Etag Mismatch")
        if w.size is not None and w.size != obj_size:
            problems.append(f"{where}: Size Mismatch")
        seg_len, rng_text = obj_size, None
        if w.range is not None:
            try:
                [(first, end)] = resolve_ranges([w.range], obj_size)
            except RangeNotSatisfiable:
                problems.append(f"{where}: Unsatisfiable Range")
                continue
            if (first, end) != (0, obj_size):  # a range of the whole object is no range
                seg_len, rng_text = end - first, f"{first}-{end - 1}"
        if seg_len < 1 and w.index < last:
            problems.append(f"{where}: Too small; each segment must be at least 1 byte.")
        entry = {"name": where, "hash": etag_of(info), "bytes": obj_size,
                 "content_type": swift.split_swift_bytes(info.content_type)[0],
                 "last_modified": swift.listing_time(info.last_modified)}
        if rng_text:
            entry["range"] = rng_text
        if sub:
            entry["sub_slo"] = True
        out.append(entry)
        etag_parts.append(f"{etag_of(info)}:{rng_text};" if rng_text else etag_of(info))
        total += seg_len
    if problems:
        raise BadRequest("Errors:\n" + "\n".join(problems))
    return json.dumps(out).encode(), slo_etag(etag_parts), total


def slo_segments(manifest: bytes) -> list[Segment]:
    """The stored manifest as segments, each the bytes it contributes (a range of an object,
    or inline data)."""
    segs = []
    for item in json.loads(manifest):
        if "data" in item:
            raw = base64.b64decode(item["data"])
            segs.append(Segment("", "", len(raw), None, data=raw))
            continue
        container, _, name = item["name"].lstrip("/").partition("/")
        whole = int(item["bytes"])
        first, size = 0, whole
        if item.get("range"):
            a, _, b = item["range"].partition("-")
            first, size = int(a), int(b) - int(a) + 1
        segs.append(Segment(container, name, size, item["hash"], bool(item.get("sub_slo")),
                            first=first, object_size=whole))
    return segs


async def dlo_segments(engine: ObjectEngine, account: str, manifest: str) -> list[Segment]:
    container, _, prefix = manifest.partition("/")
    segs: list[Segment] = []
    marker = ""
    while True:
        page = await engine.list_objects(account, container, prefix=prefix, marker=marker)
        for e in page:
            if isinstance(e, ObjectEntry):
                segs.append(Segment(container, e.name, e.bytes, e.hash))
        if len(page) < swift.MAX_LISTING:
            return segs
        marker = page[-1].name


def dlo_etag(segs: list[Segment]) -> str:
    return slo_etag([s.etag or "" for s in segs])


async def sub_manifest(engine: ObjectEngine, account: str, seg: Segment) -> list[Segment]:
    """The segments of a sub-SLO, which must still be the SLO the parent manifest pinned."""
    try:
        info, body = await engine.get_object(account, seg.container, seg.name)
    except ObjectNotFound:
        raise SegmentError(f"segment /{seg.container}/{seg.name} is gone") from None
    if not is_slo(info) or etag_of(info) != seg.etag or slo_size(info) != seg.whole_size:
        raise SegmentError(f"segment /{seg.container}/{seg.name} changed")
    return slo_segments(await body.read())


async def stream_segments(engine: ObjectEngine, account: str, segs: list[Segment],
                          start: int, end: int, *, pinned: bool, depth: int = 1) -> AsyncIterator[bytes]:
    """Bytes [start, end) of the concatenation of `segs`; `depth` counts the manifests
    above them (the object read is 1)."""
    offset = 0
    for seg in segs:
        s, e = max(start, offset), min(end, offset + seg.size)
        # [a, b): the bytes wanted, relative to the start of the segment's object
        a, b = s - offset + seg.first, e - offset + seg.first
        if s < e and seg.data is not None:
            yield seg.data[s - offset:e - offset]
        elif s < e and seg.sub_slo:
            if depth >= MAX_DEPTH:
                raise TooDeep(f"manifests nest deeper than {MAX_DEPTH}")
            inner = await sub_manifest(engine, account, seg)
            async for chunk in stream_segments(engine, account, inner, a, b,
                                               pinned=pinned, depth=depth + 1):
                yield chunk
        elif s < e:
            whole = a == 0 and b == seg.whole_size
            try:
                info, body = await engine.get_object(
                    account, seg.container, seg.name, None if whole else [(a, b - 1)])
            except ObjectNotFound:
                raise SegmentError(f"segment /{seg.container}/{seg.name} is gone") from None
            if (pinned and seg.etag and info.etag != seg.etag) or info.size != seg.whole_size:
                raise SegmentError(f"segment /{seg.container}/{seg.name} changed")
            async for chunk in body:
                yield chunk
        offset += seg.size
        if offset >= end:
            return
