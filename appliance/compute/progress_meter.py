"""Nova's `progress` (0–100 in server bodies) of an instance's running action, as far as the
daemon knows it (the action rooms report it through compute/progress.py's `Progress`).

A build under load sits for minutes in one task state; the operator wants to see it move.
Where the daemon knows how far it is, it says so: the build's steps (scheduled, ports, disks,
config drive, domain started, plugged), and the bytes of a disk copy (the resize backup, the
snapshot's copy). Progress lives in memory only: it describes a running asyncio task, which a
daemon restart re-drives from its first step anyway, so nothing durable is written per step.

An idle instance reads 100 when ACTIVE and 0 otherwise (what the API said before); a running
action reads its last known percentage, never moving backwards within one action.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from appliance.compute.records import Instance, TaskState
from storage.atomic import TEMP_MARKER

#: Where a build stands when it enters each step (a percentage of the whole build).
BUILD_STEPS: dict[TaskState, int] = {
    TaskState.SCHEDULING: 0,
    TaskState.NETWORKING: 10,
    TaskState.BLOCK_DEVICE_MAPPING: 25,
    TaskState.SPAWNING: 70,
}
#: Marks inside the build's steps.
BUILD_ROOT_DISK_DONE = 55   # overlay (or boot volume) ready
BUILD_CONFIG_DRIVE_DONE = 65
BUILD_DOMAIN_STARTED = 90   # then the taps are plugged

#: Resize: the root disk's backup copy moves it between these; snapshot: the disk's copy.
RESIZE_COPY = (10, 70)
SNAPSHOT_COPY = (5, 85)

#: Bytes between two progress updates of a copy (and the chunk it reads at a time).
COPY_CHUNK = 8 << 20

ByteCallback = Callable[[int, int], None]


class ProgressMeter:
    """Per instance: the percentage of its running action."""

    def __init__(self) -> None:
        self._of: dict[str, int] = {}

    def set(self, instance_id: str, percent: float) -> None:
        value = max(0, min(100, int(percent)))
        if value > self._of.get(instance_id, -1):
            self._of[instance_id] = value

    def step(self, instance_id: str, task_state: TaskState) -> None:
        if task_state in BUILD_STEPS:
            self.set(instance_id, BUILD_STEPS[task_state])

    def span(self, instance_id: str, low: int, high: int) -> ByteCallback:
        """A (done, total) bytes callback moving the action from `low` to `high` percent."""
        def moved(done: int, total: int) -> None:
            if total > 0:
                self.set(instance_id, low + (high - low) * min(done, total) / total)
        return moved

    def begin(self, instance_id: str) -> None:
        self._of[instance_id] = 0

    def end(self, instance_id: str) -> None:
        self._of.pop(instance_id, None)

    def of(self, inst: Instance) -> int:
        if inst.task_state is None:
            return 100 if inst.status == "ACTIVE" else 0
        return self._of.get(inst.id, 0)


def copy_file(src: Path, dest: Path, on_bytes: ByteCallback) -> None:
    """shutil.copy2 in chunks, telling (done, total) after each; holes in `src` stay holes in
    `dest` (a mostly empty qcow2 root disk copies as fast as it reads). Blocking: run it in a
    thread (`copy_file_async`)."""
    total = os.path.getsize(src)
    done = 0
    zero = bytes(COPY_CHUNK)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while chunk := fin.read(COPY_CHUNK):
            if chunk == zero[:len(chunk)]:
                fout.seek(len(chunk), os.SEEK_CUR)
            else:
                fout.write(chunk)
            done += len(chunk)
            on_bytes(done, total)
        fout.truncate(total)
    with contextlib.suppress(OSError):
        import shutil
        shutil.copystat(src, dest)


async def copy_file_async(src: Path, dest: Path, on_bytes: ByteCallback) -> None:
    loop = asyncio.get_running_loop()

    def from_thread(done: int, total: int) -> None:
        loop.call_soon_threadsafe(on_bytes, done, total)
    await asyncio.to_thread(copy_file, src, dest, from_thread)


async def watch_growth(path_of: Callable[[], Path | None], expected: int,
                       on_bytes: ByteCallback, every: float = 0.5) -> None:
    """Until cancelled: the bytes written so far to a file another program writes (qemu-img,
    a libvirt backup job), against the bytes it is expected to reach. Allocated bytes are
    counted, so a sparse target does not jump to its full size at once."""
    while True:
        path = path_of()
        if path is not None:
            with contextlib.suppress(OSError):
                st = await asyncio.to_thread(os.stat, path)
                on_bytes(min(st.st_blocks * 512, st.st_size), expected)
        await asyncio.sleep(every)


def written_copy(dest: Path) -> Path | None:
    """`dest`, or the temporary name it is being written under (storage.atomic's naming)."""
    if dest.exists():
        return dest
    prefix = f".{dest.name}{TEMP_MARKER}"
    with contextlib.suppress(OSError):
        for entry in os.scandir(dest.parent):
            if entry.name.startswith(prefix):
                return Path(entry.path)
    return None


def disk_data_bytes(disk: Path) -> int:
    """Bytes a full copy of `disk` reads: its own allocated bytes plus, for a qcow2 overlay,
    its backing file's (the copy flattens the chain). 0 when there is no such file."""
    total = 0
    seen: set[Path] = set()
    path: Path | None = disk
    while path is not None and path not in seen and len(seen) < 8:
        seen.add(path)
        try:
            st = os.stat(path)
        except OSError:
            break
        total += min(st.st_blocks * 512, st.st_size)
        path = _qcow2_backing(path)
    return total


def _qcow2_backing(path: Path) -> Path | None:
    """The backing file a qcow2 header names (offset 8: its offset, 16: its length)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(20)
            if len(head) < 20 or head[:4] != b"QFI\xfb":
                return None
            offset = int.from_bytes(head[8:16], "big")
            size = int.from_bytes(head[16:20], "big")
            if not offset or not 0 < size <= 1023:
                return None
            fh.seek(offset)
            name = fh.read(size).decode("utf-8", "replace")
    except OSError:
        return None
    return (path.parent / name) if not name.startswith("/") else Path(name)
