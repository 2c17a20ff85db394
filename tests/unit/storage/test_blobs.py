from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import blobs
from storage.blobs import BlobInfo, BlobStore, check_id
from storage.errors import AlreadyExists, DiskFull, InvalidId, InvalidRange, NotFound, TooLarge, UnsafeImage


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


async def _chunks(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
        await asyncio.sleep(0)


@pytest.fixture
async def store(tmp_path: Path) -> BlobStore:
    s = BlobStore(tmp_path / "images")
    await s.start()
    return s


DATA = os.urandom(3 * (1 << 20) + 12345)


async def test_write_stream_stores_bytes_with_right_checksums(store: BlobStore) -> None:
    blob_id = str(uuid.uuid4())
    progress: list[int] = []
    info = await store.write_stream(blob_id, _chunks(DATA), on_progress=progress.append)
    assert info == BlobInfo(
        size=len(DATA),
        md5=hashlib.md5(DATA).hexdigest(),
        sha512=hashlib.sha512(DATA).hexdigest(),
        path=store.root / blob_id,
    )
    assert (store.root / blob_id).read_bytes() == DATA
    assert progress[-1] == len(DATA) and progress == sorted(progress) and len(progress) >= 3
    assert _files(store.root) == [blob_id]


async def test_async_progress_callback_is_awaited(store: BlobStore) -> None:
    seen: list[int] = []

    async def progress(n: int) -> None:
        seen.append(n)

    await store.write_stream(str(uuid.uuid4()), _chunks(b"x" * 10), on_progress=progress)
    assert seen == [10]


async def test_verify_sees_temp_file_before_it_is_visible(store: BlobStore) -> None:
    blob_id = str(uuid.uuid4())

    async def verify(path: Path, info: BlobInfo) -> None:
        assert path.read_bytes() == DATA and path.parent == store.root
        assert not (store.root / blob_id).exists()
        assert info.size == len(DATA)

    await store.write_stream(blob_id, _chunks(DATA), verify=verify)
    assert (store.root / blob_id).exists()


async def test_failed_verification_leaves_nothing(store: BlobStore) -> None:
    async def refuse(path: Path, info: BlobInfo) -> None:
        raise UnsafeImage("qcow2 image has a backing file")

    with pytest.raises(UnsafeImage):
        await store.write_stream(str(uuid.uuid4()), _chunks(DATA), verify=refuse)
    assert _files(store.root) == []


async def test_exception_mid_stream_leaves_nothing(store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield DATA[: 2 << 20]
        yield DATA[: 1 << 20]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.write_stream(str(uuid.uuid4()), broken())
    assert _files(store.root) == []


async def test_cancellation_mid_stream_leaves_nothing(store: BlobStore) -> None:
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield DATA[: 2 << 20]
        started.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(store.write_stream(str(uuid.uuid4()), slow()))
    await started.wait()
    await asyncio.sleep(0.05)
    assert _files(store.root)  # the temp file exists while streaming …
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _files(store.root) == []  # … and is gone after cancellation


async def test_cancellation_during_verify_leaves_nothing(store: BlobStore) -> None:
    entered = asyncio.Event()

    async def slow_verify(path: Path, info: BlobInfo) -> None:
        entered.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(store.write_stream(str(uuid.uuid4()), _chunks(DATA), verify=slow_verify))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _files(store.root) == []


async def test_max_bytes_stops_the_stream(store: BlobStore) -> None:
    with pytest.raises(TooLarge):
        await store.write_stream(str(uuid.uuid4()), _chunks(DATA), max_bytes=1 << 20)
    assert _files(store.root) == []


async def test_enospc_becomes_disk_full_and_temp_removed(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    written = 0

    def filling_write(fd: int, data) -> int:
        nonlocal written
        if written > (1 << 20):
            raise OSError(errno.ENOSPC, "No space left on device")
        written += len(data)
        return real_write(fd, data)

    monkeypatch.setattr(blobs.os, "write", filling_write)
    with pytest.raises(DiskFull):
        await store.write_stream(str(uuid.uuid4()), _chunks(DATA))
    assert _files(store.root) == []


async def test_existing_blob_is_not_overwritten(store: BlobStore) -> None:
    blob_id = str(uuid.uuid4())
    await store.write_stream(blob_id, _chunks(b"first"))
    with pytest.raises(AlreadyExists):
        await store.write_stream(blob_id, _chunks(b"second"))
    assert (store.root / blob_id).read_bytes() == b"first"
    assert _files(store.root) == [blob_id]


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "/etc/passwd", "", "x", str(uuid.uuid4()).upper(), str(uuid.uuid4()) + "/..",
            "." , str(uuid.uuid4()).replace("-", "")],
)
async def test_ids_that_are_not_uuids_are_refused(store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidId):
        check_id(bad)
    with pytest.raises(InvalidId):
        await store.write_stream(bad, _chunks(b"x"))
    with pytest.raises(InvalidId):
        await store.open_range(bad)
    with pytest.raises(InvalidId):
        await store.delete(bad)


async def _read(reader) -> bytes:
    return b"".join([c async for c in reader])


async def test_range_reads(store: BlobStore) -> None:
    blob_id = str(uuid.uuid4())
    await store.write_stream(blob_id, _chunks(DATA))
    assert await _read(await store.open_range(blob_id)) == DATA
    assert await _read(await store.open_range(blob_id, 100, 200)) == DATA[100:200]
    assert await _read(await store.open_range(blob_id, len(DATA) - 5)) == DATA[-5:]
    reader = await store.open_range(blob_id, 10, (3 << 20) + 10, chunk_size=1 << 20)
    assert (reader.length, reader.size) == (3 << 20, len(DATA))
    chunks = [c async for c in reader]
    assert [len(c) for c in chunks] == [1 << 20] * 3 and b"".join(chunks) == DATA[10:(3 << 20) + 10]
    for start, end in [(-1, 10), (10, 5), (0, len(DATA) + 1), (len(DATA), None)]:
        with pytest.raises(InvalidRange):
            await store.open_range(blob_id, start, end)


async def test_reader_keeps_data_after_delete(store: BlobStore) -> None:
    blob_id = str(uuid.uuid4())
    await store.write_stream(blob_id, _chunks(DATA))
    async with await store.open_range(blob_id) as reader:
        assert await store.delete(blob_id) is True
        assert b"".join([c async for c in reader]) == DATA
    assert not store.exists(blob_id)
    assert await store.delete(blob_id) is False
    with pytest.raises(NotFound):
        await store.delete(blob_id, missing_ok=False)
    with pytest.raises(NotFound):
        await store.open_range(blob_id)


async def test_start_sweeps_temps_left_by_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    blob_id = str(uuid.uuid4())
    (root / blob_id).write_bytes(b"complete")
    (root / f".{blob_id}.tmp-deadbeef").write_bytes(b"partial")
    store = BlobStore(root)
    removed = await store.start()
    assert [p.name for p in removed] == [f".{blob_id}.tmp-deadbeef"]
    assert _files(root) == [blob_id]


async def test_iter_file_streams_any_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    assert b"".join([c async for c in blobs.iter_file(path, 1 << 20)]) == DATA


async def test_hostile_upload_verified_by_inspector_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    import subprocess

    from storage.inspect import verify_async

    evil = tmp_path / "evil.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(evil), "1M"],
        check=True,
    )

    async def inspect_upload(path: Path, info: BlobInfo) -> None:
        await verify_async(path, "qcow2", max_virtual_size=1 << 30)

    with pytest.raises(UnsafeImage, match="backing file"):
        await store.write_stream(str(uuid.uuid4()), _chunks(evil.read_bytes()), verify=inspect_upload)
    assert _files(store.root) == []
