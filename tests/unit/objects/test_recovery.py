"""Crash recovery: intents reconcile cheaply, rebuild re-derives the index, kill -9 loop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage.objects import ObjectEngine, aiter_bytes
from storage.objects.index import ObjectRow

from .conftest import device_dirs

A, C = "AUTH_p", "c"
REPO = Path(__file__).resolve().parents[3]


def key(rows):
    return [(r.account, r.container, r.name, r.size, r.etag, r.content_type, r.timestamp, r.delete_at)
            for r in rows]


async def test_rebuild_reproduces_the_index(engine):
    for i in range(30):
        await engine.put_object(A, C, f"o{i}", aiter_bytes(os.urandom(i * 10)), "text/plain",
                                delete_at=None if i % 5 else 1e12)
    for i in range(0, 30, 3):
        await engine.delete_object(A, C, f"o{i}")
    await engine.post_metadata(A, C, "o1", {"m": "1"}, content_type="image/png")
    await engine.create_container(A, "empty", {"keep": "me"})
    before = key(await engine.index.dump_objects())
    stats = await engine.get_container(A, C)
    # wreck the index: drop rows, add a ghost, break counts
    await engine.index.replace_all([ObjectRow(A, C, "ghost", 1, "x", "t", "1", 1.0)], 1.0)
    assert await engine.rebuild() == 20
    assert key(await engine.index.dump_objects()) == before
    after = await engine.get_container(A, C)
    assert (after.object_count, after.bytes_used) == (stats.object_count, stats.bytes_used)
    assert (await engine.get_container(A, "empty")).meta == {"keep": "me"}


async def test_rebuild_recreates_a_lost_index(tmp_path):
    devs = device_dirs(tmp_path, 3)
    async with ObjectEngine(devs, None, tmp_path / "a.sqlite") as e:
        await e.create_container(A, C)
        for i in range(10):
            await e.put_object(A, C, f"n{i}", aiter_bytes(b"z" * i))
        before = key(await e.index.dump_objects())
    async with ObjectEngine(devs, None, tmp_path / "fresh.sqlite") as e:
        assert await e.rebuild() == 10
        assert key(await e.index.dump_objects()) == before
        assert [x.name for x in await e.list_objects(A, C)] == [f"n{i}" for i in range(10)]


async def test_intent_left_by_a_crash_is_reconciled_at_start(tmp_path):
    devs = device_dirs(tmp_path, 3)
    async with ObjectEngine(devs, None, tmp_path / "i.sqlite") as e:
        await e.create_container(A, C)
        await e.put_object(A, C, "deleted-on-disk", aiter_bytes(b"1"))
        # Simulate crashes between "replicas durable" and "index committed":
        real = e.index.commit_object

        async def crash(*a, **k):
            raise SystemExit("power cut")

        e.index.commit_object = crash
        e._undo_put = _no_undo  # a dead process cleans nothing up
        for name in ("installed-not-indexed",):
            try:
                await e.put_object(A, C, name, aiter_bytes(b"data"))
            except SystemExit:
                pass
        try:
            await e.delete_object(A, C, "deleted-on-disk")
        except SystemExit:
            pass
        e.index.commit_object = real
        assert len(await e.index.intents()) == 2
        assert [x.name for x in await e.list_objects(A, C)] == ["deleted-on-disk"]
    async with ObjectEngine(devs, None, tmp_path / "i.sqlite") as e:
        assert await e.index.intents() == []
        assert [x.name for x in await e.list_objects(A, C)] == ["installed-not-indexed"]
        assert (await e.get_container(A, C)).object_count == 1


async def _no_undo(*a, **k):
    return None


def test_kill_9_during_puts_every_acked_object_survives(tmp_path):
    root = tmp_path / "store"
    rnd = random.Random(1234)
    acked: dict[str, tuple[str, str]] = {}  # name → (etag, timestamp) of the newest ack
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for round_ in range(10):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.unit.objects.crash_child", str(root), str(round_ % 3)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY", child.stderr.read() if child.stderr else ""
        time.sleep(rnd.uniform(0.05, 1.0))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        n = 0
        for line in out.splitlines():
            if line.startswith("ACK "):
                _, name, etag, md5, ts = line.split()
                assert etag == md5
                if name not in acked or acked[name][1] < ts:
                    acked[name] = (etag, ts)
                n += 1
        asyncio.run(_check_after_crash(root, acked))
    assert len(acked) > 20


async def _check_after_crash(root: Path, acked: dict[str, tuple[str, str]]) -> None:
    async with ObjectEngine(device_dirs(root, 3), None, root / "index.sqlite") as e:  # start() reconciles
        listed = {x.name: x for x in await e.list_objects(A, C, limit=100_000)}
        for name, (etag, ts) in acked.items():
            info, body = await e.get_object(A, C, name)
            data = await body.read()
            # a newer, unacknowledged PUT of the same name may have landed; never an older one
            assert info.timestamp >= ts, name
            if info.timestamp == ts:
                assert info.etag == etag and hashlib.md5(data).hexdigest() == etag, name
            assert listed[name].hash == info.etag
        # the index agrees with the disk, object for object
        on_disk = sorted(key(await asyncio.to_thread(e._scan_disk_rows)))
        assert sorted(key(await e.index.dump_objects())) == on_disk
        for d in e.ring.devices:
            assert list((d.path / "tmp").iterdir()) == []
        c = await e.get_container(A, C)
        assert c.object_count == len(listed)
