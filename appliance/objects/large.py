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
import hashlib
import json
from dataclasses import dataclass
from typing import AsyncIterator

from appliance.errors import BadRequest, PayloadTooLarge
from appliance.objects import swift
from storage.objects import ObjectEngine, ObjectEntry, ObjectInfo, ObjectNotFound

MAX_SEGMENTS = 1000
MAX_MANIFEST_BYTES = 2 << 20
#: Swift's max_slo_recursion_depth: a chain of this many manifests reads, one more is a 409.
MAX_DEPTH = 10


@dataclass(frozen=True)
class Segment:
    container: str
    name: str
    size: int
    etag: str | None  # None: DLO segments are not pinned to an etag
    sub_slo: bool = False  # the segment is itself a static large object


class SegmentError(Exception):
    """A segment vanished or changed under a manifest: the stream must be aborted."""


class TooDeep(SegmentError):
    """Manifests nest deeper than MAX_DEPTH."""


def is_slo(info: ObjectInfo) -> bool:
    return info.sysmeta.get(swift.SYS_SLO) == "1"


def dlo_manifest(info: ObjectInfo) -> str | None:
    return info.sysmeta.get(swift.SYS_DLO) or None


def slo_size(info: ObjectInfo) -> int:
    """An SLO's whole length (the bytes its manifest presents)."""
    return int(info.sysmeta.get(swift.SYS_SLO_SIZE, 0))


def slo_etag(etags: list[str]) -> str:
    return hashlib.md5("".join(etags).encode("ascii")).hexdigest()


async def build_slo_manifest(engine: ObjectEngine, account: str, body: bytes) -> tuple[bytes, str, int]:
    """Validate a `?multipart-manifest=put` body → (stored manifest, slo etag, total bytes)."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise PayloadTooLarge("manifest is too large")
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(items, list) or not items:
        raise BadRequest("manifest must be a non-empty JSON list of segments")
    if len(items) > MAX_SEGMENTS:
        raise BadRequest(f"manifest has more than {MAX_SEGMENTS} segments")
    parsed: list[tuple[str, str, str | None, int | None]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise BadRequest(f"segment {i}: each segment needs a 'path' string")
        if "range" in item:
            raise BadRequest(f"segment {i}: segment ranges are not supported")
        container, name = swift.split_container_object(item["path"], f"segment {i} path")
        etag, size = item.get("etag"), item.get("size_bytes")
        if etag is not None and not isinstance(etag, str):
            raise BadRequest(f"segment {i}: etag must be a string or null")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise BadRequest(f"segment {i}: size_bytes must be a non-negative integer or null")
        parsed.append((container, name, etag, size))

    sem = asyncio.Semaphore(16)

    async def head(c: str, n: str) -> ObjectInfo | str:
        async with sem:
            try:
                return await engine.head_object(account, c, n)
            except ObjectNotFound:
                return "404 Not Found"

    infos = await asyncio.gather(*(head(c, n) for c, n, _, _ in parsed))
    problems: list[str] = []
    out: list[dict] = []
    for i, ((c, n, etag, size), info) in enumerate(zip(parsed, infos)):
        where = f"/{c}/{n}"
        if isinstance(info, str):
            problems.append(f"{where}: {info}")
            continue
        if dlo_manifest(info):
            problems.append(f"{where}: a dynamic large object cannot be a segment")
            continue
        sub = is_slo(info)  # a sub-SLO: its ETag and whole length stand for it, as in Swift
        seg_size = slo_size(info) if sub else info.size
        if etag is not None and etag.strip('"').lower() != info.etag:
            problems.append(f"{where}: Etag Mismatch")
        if size is not None and size != seg_size:
            problems.append(f"{where}: Size Mismatch")
        if seg_size == 0 and i < len(parsed) - 1:
            problems.append(f"{where}: Too Small; each segment must be at least 1 byte")
        entry = {"name": where, "hash": info.etag, "bytes": seg_size,
                 "content_type": swift.split_swift_bytes(info.content_type)[0],
                 "last_modified": swift.listing_time(info.last_modified)}
        if sub:
            entry["sub_slo"] = True
        out.append(entry)
    if problems:
        raise BadRequest("Errors:\n" + "\n".join(problems))
    total = sum(s["bytes"] for s in out)
    return json.dumps(out).encode(), slo_etag([s["hash"] for s in out]), total


def slo_segments(manifest: bytes) -> list[Segment]:
    segs = []
    for item in json.loads(manifest):
        container, _, name = item["name"].lstrip("/").partition("/")
        segs.append(Segment(container, name, int(item["bytes"]), item["hash"],
                            bool(item.get("sub_slo"))))
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
    if not is_slo(info) or info.etag != seg.etag or slo_size(info) != seg.size:
        raise SegmentError(f"segment /{seg.container}/{seg.name} changed")
    return slo_segments(await body.read())


async def stream_segments(engine: ObjectEngine, account: str, segs: list[Segment],
                          start: int, end: int, *, pinned: bool, depth: int = 1) -> AsyncIterator[bytes]:
    """Bytes [start, end) of the concatenation of `segs`; `depth` counts the manifests
    above them (the object read is 1)."""
    offset = 0
    for seg in segs:
        s, e = max(start, offset), min(end, offset + seg.size)
        if s < e and seg.sub_slo:
            if depth >= MAX_DEPTH:
                raise TooDeep(f"manifests nest deeper than {MAX_DEPTH}")
            inner = await sub_manifest(engine, account, seg)
            async for chunk in stream_segments(engine, account, inner, s - offset, e - offset,
                                               pinned=pinned, depth=depth + 1):
                yield chunk
        elif s < e:
            whole = s == offset and e == offset + seg.size
            try:
                info, body = await engine.get_object(
                    account, seg.container, seg.name,
                    None if whole else [(s - offset, e - offset - 1)])
            except ObjectNotFound:
                raise SegmentError(f"segment /{seg.container}/{seg.name} is gone") from None
            if (pinned and seg.etag and info.etag != seg.etag) or info.size != seg.size:
                raise SegmentError(f"segment /{seg.container}/{seg.name} changed")
            async for chunk in body:
                yield chunk
        offset += seg.size
        if offset >= end:
            return
