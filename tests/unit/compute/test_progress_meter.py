"""compute/progress.py: percentages that only move forward, byte spans, a copy that tells its
bytes and keeps holes, and the data a snapshot copy of an overlay reads."""
from __future__ import annotations

import asyncio
import os

from appliance.compute.progress_meter import (
    COPY_CHUNK, ProgressMeter, copy_file, disk_data_bytes, watch_growth, written_copy)
from appliance.compute.records import Instance, TaskState, VmState


def test_progress_moves_forward_within_an_action_and_idles_at_nova_values():
    board = ProgressMeter()
    board.begin("i1")
    board.step("i1", TaskState.BLOCK_DEVICE_MAPPING)
    board.set("i1", 10)  # never backwards
    moved = board.span("i1", 30, 50)
    moved(1, 4)
    inst = Instance(id="i1", name="x", project_id="p", user_id="u", flavor={},
                    vm_state=VmState.BUILDING, task_state=TaskState.SPAWNING)
    assert board.of(inst) == 35
    moved(8, 4)  # a copy that grew past its estimate stops at the span's end
    assert board.of(inst) == 50
    board.end("i1")
    assert board.of(inst) == 0  # running, nothing known
    inst.task_state, inst.vm_state = None, VmState.ACTIVE
    assert board.of(inst) == 100
    inst.vm_state = VmState.STOPPED
    assert board.of(inst) == 0


def test_copy_tells_its_bytes_and_keeps_holes(tmp_path):
    src = tmp_path / "disk"
    with open(src, "wb") as fh:
        fh.write(b"head" * 1000)
        fh.seek(5 * COPY_CHUNK)
        fh.write(b"tail")
    seen = []
    copy_file(src, tmp_path / "copy", lambda done, total: seen.append((done, total)))
    dest = tmp_path / "copy"
    assert dest.read_bytes() == src.read_bytes()
    total = src.stat().st_size
    assert seen[-1] == (total, total) and len(seen) == 6
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert dest.stat().st_blocks * 512 < 2 * COPY_CHUNK  # the zero chunks stayed holes


async def test_a_snapshot_copy_is_measured_against_overlay_and_base(tmp_path):
    from storage import qemu_img
    base = tmp_path / "base.qcow2"
    await qemu_img.create(base, "qcow2", 64 << 20)
    overlay = tmp_path / "disk"
    await qemu_img.create_overlay(overlay, base, "qcow2", 64 << 20)
    blocks = sum(min(os.stat(p).st_blocks * 512, os.stat(p).st_size) for p in (base, overlay))
    assert disk_data_bytes(overlay) == blocks
    assert disk_data_bytes(tmp_path / "missing") == 0

    dest = tmp_path / "snap.qcow2"
    assert written_copy(dest) is None
    from storage.atomic import TEMP_MARKER
    tmp = tmp_path / f".snap.qcow2{TEMP_MARKER}abc"
    tmp.write_bytes(b"x" * 8192)
    assert written_copy(dest) == tmp
    seen = []
    watcher = asyncio.create_task(watch_growth(lambda: written_copy(dest), 16384,
                                               lambda d, t: seen.append((d, t)), every=0.01))
    while not seen:
        await asyncio.sleep(0.01)
    watcher.cancel()
    assert seen[0][1] == 16384 and 0 < seen[0][0] <= 8192
