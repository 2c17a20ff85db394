"""Corrupt and missing replicas: reads fall back, the auditor finds and repairs them."""

from __future__ import annotations

import hashlib
import os

import pytest

from storage.objects import Auditor, FindingKind, InsufficientReplicas, aiter_bytes
from storage.objects import diskfile as df
from storage.objects.names import object_hash
from storage.objects.ring import Ring

from .conftest import data_files

A, C = "AUTH_p", "c"


def flip_byte(path, offset=10):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def primaries_files(eng, name):
    h = object_hash(A, C, name)
    files = data_files(eng, h)
    return h, [files[d.id][0] for d in eng.ring.primaries(h)]


@pytest.mark.parametrize("size", [5000, 3 << 20])
async def test_corrupt_one_delete_another_get_still_right_and_auditor_restores_both(engine, size):
    engine.verify_inline_bytes = 1 << 20  # 5000 B verified before serving; 3 MiB streamed
    data = os.urandom(size)
    await engine.put_object(A, C, "precious", aiter_bytes(data, 1 << 16))
    h, (f0, f1, f2) = primaries_files(engine, "precious")
    # Corrupt the replica a reader tries last, delete one: the good copy is in the middle.
    flip_byte(f2)
    os.unlink(f0)
    for _ in range(2):
        _, body = await engine.get_object(A, C, "precious")
        assert hashlib.md5(await body.read()).hexdigest() == hashlib.md5(data).hexdigest()

    auditor = Auditor(engine, bytes_per_second=None)
    status = await auditor.run_pass()
    kinds = sorted(f.kind for f in status.findings)
    assert FindingKind.MISSING in kinds
    assert status.errors == 0 and status.lost == 0
    files = data_files(engine, h)
    for d in engine.ring.primaries(h):
        [f] = files[d.id]
        raw = f.read_bytes()
        assert hashlib.md5(raw[:size]).hexdigest() == hashlib.md5(data).hexdigest()
    # a second pass finds nothing to do
    again = await Auditor(engine, bytes_per_second=None).run_pass()
    assert again.findings == [] and again.replicas_verified == 3


async def test_corrupt_replica_found_only_by_the_auditor(engine):
    data = os.urandom(10_000)
    await engine.put_object(A, C, "silent", aiter_bytes(data))
    h, files = primaries_files(engine, "silent")
    flip_byte(files[1], 5000)
    findings = []
    auditor = Auditor(engine, bytes_per_second=None, on_finding=findings.append)
    st = await auditor.run_pass()
    assert [f.kind for f in findings] == [FindingKind.CORRUPT, FindingKind.MISSING]
    assert findings[0].name == "silent" and findings[0].device == engine.ring.primaries(h)[1].id
    assert (st.corrupt, st.missing, st.repaired) == (1, 1, 1)
    quarantined = list((engine.ring.primaries(h)[1].path / "quarantined" / "objects" / h).iterdir())
    assert len(quarantined) == 1
    for f in primaries_files(engine, "silent")[1]:
        assert hashlib.md5(f.read_bytes()[:10_000]).hexdigest() == hashlib.md5(data).hexdigest()


async def test_read_quarantines_a_bad_small_replica_and_falls_back(engine):
    data = b"small object " * 100
    await engine.put_object(A, C, "s", aiter_bytes(data))
    h, files = primaries_files(engine, "s")
    for f in files[:2]:
        flip_byte(f)
    _, body = await engine.get_object(A, C, "s")
    assert await body.read() == data
    assert h in engine.repair_hints
    flip_byte(files[2])
    with pytest.raises(InsufficientReplicas):
        await engine.get_object(A, C, "s")


async def test_truncated_or_torn_trailer_is_treated_as_missing(engine):
    await engine.put_object(A, C, "t", aiter_bytes(b"abc" * 1000))
    h, files = primaries_files(engine, "t")
    with open(files[0], "r+b") as f:
        f.truncate(100)
    files[1].write_bytes(files[1].read_bytes()[:-3] + b"XYZ")  # footer magic broken
    assert (await engine.head_object(A, C, "t")).size == 3000
    _, body = await engine.get_object(A, C, "t")
    assert await body.read() == b"abc" * 1000
    st = await Auditor(engine, bytes_per_second=None).run_pass()
    assert st.missing == 2
    assert all(len(fs) == 1 for d, fs in data_files(engine, h).items()
               if d in {x.id for x in engine.ring.primaries(h)})


async def test_large_object_corruption_detected_before_the_bad_block_is_sent(engine):
    engine.verify_inline_bytes = 1024
    data = os.urandom((5 << 20) + 123)
    await engine.put_object(A, C, "L", aiter_bytes(data, 1 << 16))
    h, files = primaries_files(engine, "L")
    for f in files[1:]:
        os.unlink(f)
    flip_byte(files[0], (4 << 20) + 5)  # in the second read of the stream
    _, body = await engine.get_object(A, C, "L")
    got = bytearray()
    with pytest.raises(InsufficientReplicas):
        async for b in body:
            got += b
    assert got == data[:4 << 20]  # every byte sent was verified: the bad block was not
    with pytest.raises(Exception):  # the lying replica is out of service
        await engine.head_object(A, C, "L")


async def test_block_checksums_fail_over_mid_stream_and_verify_ranges(engine):
    engine.verify_inline_bytes = 1024
    data = os.urandom((3 << 20) + 7)
    await engine.put_object(A, C, "R", aiter_bytes(data, 100_000))
    h, files = primaries_files(engine, "R")
    flip_byte(files[0], (2 << 20) + 1)
    flip_byte(files[1], 10)
    # a range inside the corrupt block of the first replica: served from the good one
    _, body = await engine.get_object(A, C, "R", ranges=[((2 << 20), (2 << 20) + 99)])
    assert await body.read() == data[2 << 20:(2 << 20) + 100]
    _, body = await engine.get_object(A, C, "R")
    assert await body.read() == data
    assert [f.exists() for f in files] == [False, False, True]  # both liars quarantined


async def test_large_object_without_block_sums_is_verified_by_md5(engine, monkeypatch):
    """Objects stored before block checksums existed: the md5, after the last byte."""
    engine.verify_inline_bytes = 1024
    data = os.urandom(2 << 20)
    monkeypatch.setattr(df.BlockSums, "hexdigest", lambda self: None)
    await engine.put_object(A, C, "L", aiter_bytes(data, 1 << 20))
    monkeypatch.undo()
    h, files = primaries_files(engine, "L")
    for f in files[1:]:
        os.unlink(f)
    flip_byte(files[0], 1 << 20)
    _, body = await engine.get_object(A, C, "L")
    with pytest.raises(df.CorruptReplica):
        await body.read()
    # the lying replica is out of service; nothing good is left
    with pytest.raises(Exception):
        await engine.head_object(A, C, "L")


async def test_missed_delete_is_not_resurrected(engine):
    await engine.put_object(A, C, "gone", aiter_bytes(b"x"))
    h = object_hash(A, C, "gone")
    saved = {d: [(f, f.read_bytes()) for f in fs] for d, fs in data_files(engine, h).items()}
    await engine.delete_object(A, C, "gone")
    # one device "missed" the delete: put its old .data back and remove its tombstone
    dev = engine.ring.primaries(h)[0]
    for f in (dev.path / "objects" / h[:3] / h).glob("*.ts"):
        f.unlink()
    for f, content in saved[dev.id]:
        f.write_bytes(content)
    with pytest.raises(Exception):
        await engine.head_object(A, C, "gone")
    st = await Auditor(engine, bytes_per_second=None).run_pass()
    assert st.stale == 1
    assert all(not fs for fs in data_files(engine, h).values())
    assert await engine.rebuild() == 0


async def test_ring_change_moves_copy_from_handoff(tmp_path):
    from storage.objects import ObjectEngine
    from .conftest import device_dirs

    devs = device_dirs(tmp_path, 4)
    e3 = ObjectEngine(devs[:3], 3, tmp_path / "i.sqlite")
    await e3.start()
    await e3.create_container(A, C)
    names = [f"o{i}" for i in range(40)]
    for n in names:
        await e3.put_object(A, C, n, aiter_bytes(n.encode()))
    await e3.close()
    e4 = ObjectEngine(devs, 3, tmp_path / "i.sqlite")
    await e4.start()
    try:
        for n in names:  # readable right away: primaries or handoffs
            _, body = await e4.get_object(A, C, n)
            assert await body.read() == n.encode()
        st = await Auditor(e4, bytes_per_second=None).run_pass()
        assert st.misplaced > 0 and st.missing == st.misplaced
        for n in names:
            h = object_hash(A, C, n)
            files = data_files(e4, h)
            assert {d for d, fs in files.items() if fs} == {d.id for d in e4.ring.primaries(h)}
    finally:
        await e4.close()


async def test_auditor_rate_limit(engine):
    await engine.put_object(A, C, "r", aiter_bytes(os.urandom(300_000)))
    import time
    t0 = time.monotonic()
    await Auditor(engine, bytes_per_second=2_000_000).run_pass()
    assert time.monotonic() - t0 >= 0.4  # 900 kB at 2 MB/s


@pytest.mark.parametrize("block_sums", [True, False])
async def test_large_object_bad_first_replica_is_quarantined_and_a_good_copy_read(
        engine, monkeypatch, block_sums):
    engine.verify_inline_bytes = 1024
    data = os.urandom(2 << 20)
    if not block_sums:  # stored before block checksums: only the md5, after the last byte
        monkeypatch.setattr(df.BlockSums, "hexdigest", lambda self: None)
    await engine.put_object(A, C, "L2", aiter_bytes(data, 1 << 20))
    monkeypatch.undo()
    h, files = primaries_files(engine, "L2")
    flip_byte(files[0], 100)
    _, body = await engine.get_object(A, C, "L2")
    if block_sums:  # the bad block is caught before it is sent: this read goes on elsewhere
        assert await body.read() == data
    else:
        with pytest.raises(df.CorruptReplica):  # bytes already sent: the API aborts
            await body.read()
    _, body = await engine.get_object(A, C, "L2")  # the liar was quarantined
    assert await body.read() == data
    st = await Auditor(engine, bytes_per_second=None).run_pass()
    assert st.missing == 1 and len([f for f in data_files(engine, h).values() if f]) == 3
