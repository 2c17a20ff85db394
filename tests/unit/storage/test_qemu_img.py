from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage import qemu_img
from storage.errors import QemuImgError

from .conftest import needs_qemu_img, qemu_img as run_qemu_img

pytestmark = needs_qemu_img

MiB = 1 << 20


async def test_info_parses_json(tmp_path: Path) -> None:
    path = tmp_path / "a.qcow2"
    await qemu_img.create(path, "qcow2", 8 * MiB)
    info = await qemu_img.info(path, "qcow2")
    assert (info.format, info.virtual_size, info.backing_file, info.snapshots) == ("qcow2", 8 * MiB, None, ())
    assert info.cluster_size == 65536


async def test_format_is_named_so_qcow2_declared_raw_is_read_as_raw(tmp_path: Path) -> None:
    """A hostile qcow2 handled as raw never has its backing file opened."""
    path = tmp_path / "evil"
    run_qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", path, "1M")
    info = await qemu_img.info(path, "raw")
    assert info.format == "raw" and info.backing_file is None


async def test_wrong_format_fails_instead_of_probing(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(b"\0" * MiB)
    with pytest.raises(QemuImgError, match="not in qcow2 format"):
        await qemu_img.info(path, "qcow2")


async def test_formats_outside_the_allowlist_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        await qemu_img.info(tmp_path / "x", "qed")
    with pytest.raises(ValueError):
        await qemu_img.create(tmp_path / "x", "vmdk", MiB)


async def test_resource_limits_kill_a_runaway(tmp_path: Path) -> None:
    path = tmp_path / "a.qcow2"
    await qemu_img.create(path, "qcow2", MiB)
    with pytest.raises(QemuImgError):
        await qemu_img.run(["info", "-f", "qcow2", str(path)], qemu_img.Limits(address_space=8 * MiB))


async def test_wall_clock_timeout_kills_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu_img, "QEMU_IMG", "sleep")
    with pytest.raises(QemuImgError, match="timed out"):
        await qemu_img.run(["30"], qemu_img.Limits(wall_seconds=0.2))


async def test_cancellation_kills_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu_img, "QEMU_IMG", "sleep")
    task = asyncio.create_task(qemu_img.run(["30"]))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_overlay_convert_resize_snapshots(tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    base.write_bytes(b"B" * MiB)
    top = tmp_path / "top.qcow2"
    await qemu_img.create_overlay(top, base, "raw", 4 * MiB)
    info = await qemu_img.info(top, "qcow2")
    assert (info.backing_file, info.backing_format, info.virtual_size) == (str(base), "raw", 4 * MiB)
    await qemu_img.resize(top, "qcow2", 8 * MiB)
    await qemu_img.snapshot_create(top, "s1")
    assert [s.name for s in await qemu_img.snapshot_list(top)] == ["s1"]
    flat = tmp_path / "flat.raw"
    await qemu_img.convert(top, "qcow2", flat, "raw", snapshot="s1")
    assert flat.stat().st_size == 8 * MiB and flat.read_bytes()[:MiB] == b"B" * MiB
    await qemu_img.snapshot_apply(top, "s1")
    await qemu_img.snapshot_delete(top, "s1")
    assert await qemu_img.snapshot_list(top) == ()
    await qemu_img.check(top)
    with pytest.raises(ValueError):
        await qemu_img.snapshot_create(top, "a,b")
