"""A body larger than one batch goes through the fan-out's threads (fanout.py): replicas
failing mid-stream, a client that stops or is cancelled mid-stream, the bound on the bytes
read ahead, and chunks of every size arriving in order."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading

import pytest

from storage.objects import DiskFull, InsufficientReplicas, TooLarge
from storage.objects import diskfile as df
from storage.objects import engine as engine_mod
from storage.objects.names import object_hash

from .conftest import data_files
from .test_engine import A, C, assert_nothing_visible, get, temps

BATCH = engine_mod.BATCH


def put_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("put-")]


async def settled() -> list[threading.Thread]:
    """The fan-out threads still alive once given a moment to return (a thread signals the
    loop as its last act, so it may still be unwinding when the PUT is over)."""
    def join() -> list[threading.Thread]:
        for t in put_threads():
            t.join(10)
        return put_threads()
    return await asyncio.to_thread(join)


async def body(data: bytes, chunk: int):
    for i in range(0, len(data), chunk):
        yield data[i:i + chunk]


def fail_after_first_batch(monkeypatch, device_ids: set[str], err: int) -> list[int]:
    """Streamed writes on `device_ids` fail from the second batch on; returns the offsets
    written there before (so a test sees the failure came mid-stream)."""
    real = df.ReplicaWriter.write_batch_sync
    written: list[int] = []

    def write_batch_sync(self, pieces, offset):
        if self.device.id in device_ids:
            if offset > 0:
                raise self._translate(OSError(err, "injected"))
            written.append(offset)
        return real(self, pieces, offset)

    monkeypatch.setattr(df.ReplicaWriter, "write_batch_sync", write_batch_sync)
    return written


@pytest.mark.parametrize("chunk", [1 << 20, 65536, 1000, 3 * BATCH + 17])
async def test_streamed_body_is_stored_whole_in_order(engine, chunk):
    data = os.urandom(3 * BATCH + 12345)
    info = await engine.put_object(A, C, "s", body(data, chunk))
    assert (info.size, info.md5) == (len(data), hashlib.md5(data).hexdigest())
    assert await get(engine, "s") == data
    h = object_hash(A, C, "s")
    assert sum(len(fs) for fs in data_files(engine, h).values()) == 3
    assert temps(engine) == [] and await settled() == []
    for d in engine.ring.primaries(h):  # every replica holds the bytes, block sums and md5
        rep = df.open_replica(d, h, (A, C, "s"))
        df.verify_replica_sync(rep)
        df.check_blocks(rep.info.block_crc32, 0, open(rep.data_path, "rb").read(len(data)))


async def test_a_replica_failing_mid_stream_is_dropped_and_the_put_acknowledged(engine, monkeypatch):
    h = object_hash(A, C, "m")
    bad = engine.ring.primaries(h)[0].id
    written = fail_after_first_batch(monkeypatch, {bad}, errno.EIO)
    data = os.urandom(4 * BATCH + 5)
    await engine.put_object(A, C, "m", body(data, 1 << 20))
    assert written == [0]  # it took the first batch, then failed
    assert h in engine.repair_hints
    files = data_files(engine, h)
    assert files[bad] == [] and sum(1 for f in files.values() if f) == 2
    assert temps(engine) == [] and await settled() == []
    assert await get(engine, "m") == data


@pytest.mark.parametrize("err,exc", [(errno.ENOSPC, DiskFull), (errno.EIO, InsufficientReplicas)])
async def test_a_majority_failing_mid_stream_stops_reading_and_leaves_nothing(engine, monkeypatch, err, exc):
    h = object_hash(A, C, "f")
    fail_after_first_batch(monkeypatch, {d.id for d in engine.ring.primaries(h)[:2]}, err)
    pulled = 0

    async def endless():
        nonlocal pulled
        chunk = os.urandom(1 << 20)
        while True:
            pulled += len(chunk)
            yield chunk

    with pytest.raises(exc):
        await engine.put_object(A, C, "f", endless())
    # the PUT gave up while the body was still coming, within a window of the failure
    assert pulled <= 2 * BATCH + engine_mod.WINDOW + (1 << 20)
    assert await settled() == []
    await assert_nothing_visible(engine, "f")


async def test_cancelled_mid_stream_no_thread_writes_after_the_undo(engine, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real = df.ReplicaWriter.write_batch_sync
    writing = [0]  # writes in progress
    lock = threading.Lock()
    late: list[int] = []  # writes that began after the PUT was over

    def write_batch_sync(self, pieces, offset):
        if task.done():
            late.append(offset)
        with lock:
            writing[0] += 1
        try:
            if offset > 0:  # the second batch: held in its thread while the PUT is cancelled
                entered.set()
                release.wait(30)
            return real(self, pieces, offset)
        finally:
            with lock:
                writing[0] -= 1

    monkeypatch.setattr(df.ReplicaWriter, "write_batch_sync", write_batch_sync)
    started = asyncio.Event()

    async def slow():
        for _ in range(3):
            yield os.urandom(BATCH)
        started.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(engine.put_object(A, C, "cx", slow()))
    await asyncio.to_thread(entered.wait, 30)
    await started.wait()
    task.cancel()
    # the undo waits for the writer threads: the PUT is not over while one is held
    done, _ = await asyncio.wait([task], timeout=0.2)
    assert not done and put_threads()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writing == [0]  # no write was running when the PUT ended …
    assert await settled() == [] and late == []  # … nor began after
    await assert_nothing_visible(engine, "cx")


async def test_reading_ahead_is_bounded_while_the_replicas_lag(engine, monkeypatch):
    gate = threading.Event()
    real = df.ReplicaWriter.write_batch_sync

    def write_batch_sync(self, pieces, offset):
        gate.wait(30)
        return real(self, pieces, offset)

    monkeypatch.setattr(df.ReplicaWriter, "write_batch_sync", write_batch_sync)
    pulled = 0
    bound = engine_mod.WINDOW + BATCH + (1 << 20)
    reached = asyncio.Event()

    async def fast():
        nonlocal pulled
        chunk = os.urandom(1 << 20)
        for _ in range(64):
            pulled += len(chunk)
            if pulled >= engine_mod.WINDOW:
                reached.set()
            yield chunk

    task = asyncio.create_task(engine.put_object(A, C, "b", fast(), max_bytes=64 << 20))
    await asyncio.wait([task, asyncio.create_task(reached.wait())], timeout=30,
                       return_when=asyncio.FIRST_COMPLETED)
    assert reached.is_set() and not task.done()
    # nothing can be awaited for "reads no more": give it time to overrun, then look
    await asyncio.sleep(0.3)
    assert pulled <= bound and not task.done()
    gate.set()
    info = await task
    assert info.size == 64 << 20 and await settled() == []


async def test_too_large_mid_stream_stops_the_threads(engine):
    with pytest.raises(TooLarge):
        await engine.put_object(A, C, "t", body(os.urandom(3 * BATCH), 1 << 20), max_bytes=2 * BATCH + 1)
    assert await settled() == []
    await assert_nothing_visible(engine, "t")


async def test_no_thread_to_be_had_fails_the_put_cleanly(engine, monkeypatch):
    real = threading.Thread.start
    started = [0]

    def start(self):
        if self.name.startswith("put-"):
            started[0] += 1
            if started[0] == 3:  # two consumers run, the third cannot start
                raise RuntimeError("can't start new thread")
        return real(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError, match="new thread"):
        await engine.put_object(A, C, "nt", body(os.urandom(2 * BATCH), 1 << 20))
    assert started[0] == 3 and await settled() == []
    await assert_nothing_visible(engine, "nt")


async def test_streamed_puts_beyond_the_engines_slots_wait_without_threads(engine):
    """Fan-out threads are bounded per engine, not per connection: with one slot, a second
    large PUT reads no further than its first batch and starts no thread until the first PUT
    is done, then completes whole."""
    engine.streams = 1
    data = os.urandom(2 * BATCH + 1)
    gate = asyncio.Event()
    read_b = 0

    async def held(data: bytes):
        yield data[:BATCH + 1]
        await gate.wait()
        yield data[BATCH + 1:]

    async def counted(data: bytes):
        nonlocal read_b
        for i in range(0, len(data), 1 << 20):
            read_b += len(data[i:i + (1 << 20)])
            yield data[i:i + (1 << 20)]

    first = asyncio.ensure_future(engine.put_object(A, C, "first", held(data)))
    while not put_threads():
        await asyncio.sleep(0.01)
    threads = len(put_threads())
    second = asyncio.ensure_future(engine.put_object(A, C, "second", counted(data)))
    for _ in range(50):  # let the second PUT run as far as it can
        await asyncio.sleep(0.01)
    assert not second.done() and read_b <= BATCH + (1 << 20)
    assert len(put_threads()) == threads
    gate.set()
    await asyncio.gather(first, second)
    assert await get(engine, "first") == data and await get(engine, "second") == data
    assert await settled() == []
