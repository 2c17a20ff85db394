"""PUT/GET/HEAD/DELETE/POST/COPY, containers, quorum, failure cleanup, expiry, quota."""

from __future__ import annotations

import asyncio
import errno
import hashlib
from pathlib import Path

import pytest

from storage.objects import (
    KEEP,
    ContainerNotEmpty,
    ContainerNotFound,
    DiskFull,
    EtagMismatch,
    InsufficientReplicas,
    ObjectNotFound,
    QuotaExceeded,
    RangeNotSatisfiable,
    TooLarge,
    aiter_bytes,
    resolve_ranges,
)
from storage.objects import diskfile as df
from storage.objects.names import object_hash

from .conftest import all_files, data_files

A, C = "AUTH_p", "c"


async def put(eng, name, data=b"x", **kw):
    return await eng.put_object(A, C, name, aiter_bytes(data), kw.pop("content_type", "text/plain"),
                                kw.pop("metadata", {}), **kw)


async def get(eng, name, **kw) -> bytes:
    _, body = await eng.get_object(A, C, name, **kw)
    return await body.read()


def temps(eng) -> list[Path]:
    return [p for d in eng.ring.devices for p in (d.path / "tmp").iterdir()]


async def test_put_get_head_roundtrip(engine):
    data = bytes(range(256)) * 1000
    info = await put(engine, "a/b c", data, metadata={"Color": "blue"}, content_type="app/x")
    assert info.etag == hashlib.md5(data).hexdigest() and info.size == len(data)
    assert await get(engine, "a/b c") == data
    head = await engine.head_object(A, C, "a/b c")
    assert (head.etag, head.content_type, head.metadata) == (info.etag, "app/x", {"Color": "blue"})
    c = await engine.get_container(A, C)
    assert (c.object_count, c.bytes_used) == (1, len(data))
    acct = await engine.account_info(A)
    assert (acct.container_count, acct.object_count, acct.bytes_used) == (1, 1, len(data))


async def test_replicas_are_written_to_distinct_devices(engine4):
    info = await put(engine4, "obj", b"payload")
    files = data_files(engine4, object_hash(A, C, "obj"))
    holders = [d for d, fs in files.items() if fs]
    assert len(holders) == 3 == len(set(holders))
    assert set(holders) == {d.id for d in engine4.ring.primaries(object_hash(A, C, "obj"))}
    assert info.size == 7


async def test_overwrite_replaces_and_counts_once(engine):
    await put(engine, "o", b"first")
    await put(engine, "o", b"second!")
    assert await get(engine, "o") == b"second!"
    c = await engine.get_container(A, C)
    assert (c.object_count, c.bytes_used) == (1, 7)
    # only the newest version stays on disk
    for fs in data_files(engine, object_hash(A, C, "o")).values():
        assert len(fs) == 1


async def test_empty_object(engine):
    info = await put(engine, "empty", b"")
    assert info.etag == hashlib.md5(b"").hexdigest()
    assert await get(engine, "empty") == b""


async def test_ranges(engine):
    data = bytes(range(100))
    await put(engine, "r", data)
    assert await get(engine, "r", ranges=[(10, 19)]) == data[10:20]
    assert await get(engine, "r", ranges=[(None, 5)]) == data[-5:]
    assert await get(engine, "r", ranges=[(95, None)]) == data[95:]
    _, body = await engine.get_object(A, C, "r", ranges=[(0, 1), (50, 1000)])
    parts = [(s, e, b"".join([x async for x in it])) for s, e, it in body.parts()]
    assert parts == [(0, 2, data[:2]), (50, 100, data[50:])]
    with pytest.raises(RangeNotSatisfiable):
        await engine.get_object(A, C, "r", ranges=[(100, 200)])
    assert resolve_ranges([(5, 2), (0, 0)], 10) == [(0, 1)]


async def test_large_object_streams_and_ranges(engine):
    engine.verify_inline_bytes = 1024  # force the streaming path
    data = (b"0123456789abcdef" * 4096) * 40  # 2.5 MiB
    await engine.put_object(A, C, "big", aiter_bytes(data, 100_000))
    assert await get(engine, "big") == data
    assert await get(engine, "big", ranges=[(1_500_000, 2_000_000)]) == data[1_500_000:2_000_001]


async def test_delete_and_not_found(engine):
    await put(engine, "d", b"bye")
    await engine.delete_object(A, C, "d")
    with pytest.raises(ObjectNotFound):
        await engine.head_object(A, C, "d")
    with pytest.raises(ObjectNotFound):
        await engine.delete_object(A, C, "d")
    assert await engine.list_objects(A, C) == []
    assert (await engine.get_container(A, C)).object_count == 0
    await put(engine, "d", b"again")  # a new PUT after a DELETE is visible
    assert await get(engine, "d") == b"again"


async def test_post_replaces_metadata_and_copy_merges(engine):
    await put(engine, "p", b"data", metadata={"a": "1", "b": "2"})
    info = await engine.post_metadata(A, C, "p", {"c": "3"}, content_type="text/x")
    assert info.metadata == {"c": "3"}
    head = await engine.head_object(A, C, "p")
    assert head.metadata == {"c": "3"} and head.content_type == "text/x"
    [entry] = await engine.list_objects(A, C)
    assert entry.content_type == "text/x"
    await engine.create_container(A, "other")
    cp = await engine.copy_object(A, C, "p", A, "other", "q", metadata={"d": "4"})
    assert cp.metadata == {"c": "3", "d": "4"} and cp.content_type == "text/x"
    assert await engine.get_object(A, "other", "q") and (await engine.head_object(A, "other", "q")).etag == head.etag


async def test_containers_create_delete_conflict(engine):
    assert await engine.create_container(A, "new", {"m": "1"}) is True
    assert await engine.create_container(A, "new", {"n": "2"}) is False
    assert (await engine.get_container(A, "new")).meta == {"m": "1", "n": "2"}
    await engine.post_container_metadata(A, "new", {"m": ""})
    assert (await engine.get_container(A, "new")).meta == {"n": "2"}
    await engine.put_object(A, "new", "o", aiter_bytes(b"1"))
    with pytest.raises(ContainerNotEmpty):
        await engine.delete_container(A, "new")
    await engine.delete_object(A, "new", "o")
    await engine.delete_container(A, "new")
    with pytest.raises(ContainerNotFound):
        await engine.get_container(A, "new")
    with pytest.raises(ContainerNotFound):
        await engine.put_object(A, "nope", "o", aiter_bytes(b"1"))
    names = [c.name for c in await engine.list_containers(A)]
    assert names == ["c"]


async def assert_nothing_visible(eng, name):
    with pytest.raises(ObjectNotFound):
        await eng.head_object(A, C, name)
    assert [e.name for e in await eng.list_objects(A, C)] == []
    assert temps(eng) == []
    assert all(not fs for fs in data_files(eng, object_hash(A, C, name)).values())
    assert await eng.index.intents() == []


async def test_etag_mismatch_leaves_nothing_visible(engine):
    with pytest.raises(EtagMismatch):
        await put(engine, "e", b"body", expected_etag="0" * 32)
    await assert_nothing_visible(engine, "e")
    info = await put(engine, "e", b"body", expected_etag=f'"{hashlib.md5(b"body").hexdigest()}"')
    assert info.size == 4


async def test_exception_mid_stream_leaves_nothing_visible(engine):
    async def broken():
        yield b"a" * (3 << 20)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await engine.put_object(A, C, "broken", broken())
    await assert_nothing_visible(engine, "broken")


async def test_cancellation_mid_stream_leaves_nothing_visible(engine):
    started = asyncio.Event()

    async def slow():
        yield b"a" * (2 << 20)
        started.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(engine.put_object(A, C, "cancelled", slow()))
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_nothing_visible(engine, "cancelled")


async def test_overwrite_that_fails_keeps_the_old_version(engine):
    await put(engine, "keep", b"old")
    with pytest.raises(EtagMismatch):
        await put(engine, "keep", b"new", expected_etag="bad")
    assert await get(engine, "keep") == b"old"


async def test_max_bytes(engine):
    with pytest.raises(TooLarge):
        await put(engine, "big", b"x" * 100, max_bytes=99)
    await assert_nothing_visible(engine, "big")


def _fail_writes_on(monkeypatch, device_ids: set[str], err: int) -> None:
    real = df.ReplicaWriter.write

    async def write(self, data):
        if self.device.id in device_ids:
            raise self._translate(OSError(err, "injected"))
        return await real(self, data)

    monkeypatch.setattr(df.ReplicaWriter, "write", write)


async def test_one_failed_replica_still_acknowledges_and_is_noted(engine, monkeypatch):
    h = object_hash(A, C, "q")
    bad = engine.ring.primaries(h)[0].id
    _fail_writes_on(monkeypatch, {bad}, errno.EIO)
    await put(engine, "q", b"quorum")
    assert h in engine.repair_hints
    files = data_files(engine, h)
    assert files[bad] == [] and sum(1 for f in files.values() if f) == 2
    assert temps(engine) == []
    assert await get(engine, "q") == b"quorum"


async def test_disk_full_on_a_majority_raises_and_removes_temps(engine, monkeypatch):
    h = object_hash(A, C, "full")
    _fail_writes_on(monkeypatch, {d.id for d in engine.ring.primaries(h)[:2]}, errno.ENOSPC)
    with pytest.raises(DiskFull):
        await put(engine, "full", b"z" * 5000)
    await assert_nothing_visible(engine, "full")


async def test_other_failures_on_a_majority_raise_insufficient_replicas(engine, monkeypatch):
    h = object_hash(A, C, "eio")
    _fail_writes_on(monkeypatch, {d.id for d in engine.ring.primaries(h)[1:]}, errno.EIO)
    with pytest.raises(InsufficientReplicas):
        await put(engine, "eio", b"z")
    await assert_nothing_visible(engine, "eio")


async def test_expiry(engine):
    now = engine.clock()
    await put(engine, "soon", b"1", delete_at=now + 100)
    await put(engine, "later", b"2", delete_at=now + 1000)
    await put(engine, "never", b"3")
    await put(engine, "posted", b"4")
    await engine.post_metadata(A, C, "posted", {}, delete_at=now + 50)
    await engine.post_metadata(A, C, "never", {"x": "y"}, delete_at=KEEP)
    assert await engine.expire_due(now) == 0
    assert await engine.expire_due(now + 200) == 2
    assert [e.name for e in await engine.list_objects(A, C)] == ["later", "never"]
    with pytest.raises(ObjectNotFound):
        await engine.head_object(A, C, "soon")
    # an object past its delete_at is gone for readers even before the expirer runs
    engine.clock = lambda: now + 2000
    with pytest.raises(ObjectNotFound):
        await engine.head_object(A, C, "later")


async def test_expirer_deletes_objects_already_expired_for_readers(engine):
    # With the real clock past delete_at, reads say 404 but the expirer must still find the
    # files and the row to delete (it used to rewrite the same live row forever).
    now = engine.clock()
    await put(engine, "gone", b"1", delete_at=now + 10)
    engine.clock = lambda: now + 20
    assert await engine.expire_due() == 1
    assert await engine.list_objects(A, C) == []
    assert await engine.expire_due() == 0


async def test_quota_hook_refuses_before_anything_is_visible(engine):
    seen = []

    def quota(req):
        seen.append(req)
        if req.container_info.bytes_used - req.replaces_bytes + req.incoming_bytes > 10:
            raise QuotaExceeded("container quota is 10 bytes")

    engine.quota = quota
    await put(engine, "fits", b"12345")
    with pytest.raises(QuotaExceeded):
        await put(engine, "toomuch", b"123456")
    await put(engine, "fits", b"1234567890")  # replacing its own bytes is allowed
    with pytest.raises(QuotaExceeded):
        await engine.put_object(A, C, "declared", aiter_bytes(b"1"), content_length=1000)
    assert [e.name for e in await engine.list_objects(A, C)] == ["fits"]
    assert temps(engine) == []
    assert seen[0].incoming_bytes == 5


async def test_a_quota_hold_lasts_until_the_object_is_indexed_or_the_put_fails(engine):
    """The hook's hold is committed once the object is in the index, released when the PUT
    fails, and a hold taken on Content-Length is replaced when the body's size differs."""
    holds: list[dict] = []

    class Hold:
        def __init__(self, incoming: int) -> None:
            self.state = {"incoming": incoming, "end": None}
            holds.append(self.state)

        async def store(self, write):
            assert self.state["end"] is None
            result = await write
            info = await engine.get_container("AUTH_p", "c")
            self.state["end"] = "commit"
            self.state["indexed"] = info.object_count  # the object counts once stored
            return result

        def release(self) -> None:
            self.state["end"] = self.state["end"] or "release"

    async def quota(req):
        return Hold(req.incoming_bytes)

    engine.quota = quota
    await engine.put_object("AUTH_p", "c", "ok", aiter_bytes(b"12345"), content_length=5)
    assert holds == [{"incoming": 5, "end": "commit", "indexed": 1}]
    with pytest.raises(EtagMismatch):
        await engine.put_object("AUTH_p", "c", "bad", aiter_bytes(b"123"),
                                expected_etag="0" * 32, content_length=3)
    assert holds[-1] == {"incoming": 3, "end": "release"}
    del holds[:]
    await engine.put_object("AUTH_p", "c", "liar", aiter_bytes(b"1234567"), content_length=2)
    assert holds == [{"incoming": 2, "end": "release"},
                     {"incoming": 7, "end": "commit", "indexed": 2}]
