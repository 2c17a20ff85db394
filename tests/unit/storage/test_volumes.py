from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from storage.errors import AlreadyExists, InvalidId, NotFound, QemuImgError
from storage.volumes import VolumeFiles

from .conftest import needs_qemu_img, qemu_img, qemu_img_info

pytestmark = needs_qemu_img

MiB = 1 << 20


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
async def vols(tmp_path: Path) -> VolumeFiles:
    v = VolumeFiles(tmp_path / "volumes")
    await v.start()
    return v


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A 2 MiB qcow2 'image' whose first MiB is a marker pattern."""
    raw = tmp_path / "src.raw"
    raw.write_bytes(b"IMG!" * (MiB // 4) + b"\0" * MiB)
    path = tmp_path / "image.qcow2"
    qemu_img("convert", "-q", "-f", "raw", "-O", "qcow2", raw, path)
    return path


def read_raw(path: Path, tmp_path: Path, fmt: str = "qcow2") -> bytes:
    out = tmp_path / f"dump-{uuid.uuid4().hex}.raw"
    qemu_img("convert", "-q", "-f", fmt, "-O", "raw", path, out)
    return out.read_bytes()


def write_into(path: Path, data: bytes) -> None:
    """Overwrite the start of a qcow2 volume with a byte pattern (qemu-io, from qemu-utils)."""
    import subprocess

    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -P 0x{data[0]:02x} 0 {len(data)}", str(path)],
        check=True, capture_output=True,
    )


async def test_dirs_are_traversable_and_files_readable(vols: VolumeFiles) -> None:
    assert (vols.root.stat().st_mode & 0o777) == 0o755
    assert (vols.base_dir.stat().st_mode & 0o777) == 0o755
    vid = new_id()
    await vols.create_empty(vid, 4 * MiB)
    assert (vols.path(vid).stat().st_mode & 0o777) == 0o644


async def test_create_empty_is_qcow2_of_the_size(vols: VolumeFiles) -> None:
    vid = new_id()
    info = await vols.create_empty(vid, 16 * MiB)
    q = qemu_img_info(vols.path(vid))
    assert (q["format"], q["virtual-size"]) == ("qcow2", 16 * MiB)
    assert info.virtual_size == 16 * MiB and info.backing_file is None
    target = vols.disk_target(vid)
    assert (target.path, target.format) == (vols.path(vid), "qcow2")
    with pytest.raises(AlreadyExists):
        await vols.create_empty(vid, MiB)


async def test_create_from_image_is_overlay_over_cached_raw_base(vols: VolumeFiles, image: Path, tmp_path: Path) -> None:
    image_id = new_id()
    v1, v2 = new_id(), new_id()
    await vols.create_from_image(v1, image_id, image, "qcow2", 8 * MiB)
    base = vols.base_path(image_id)
    base_mtime = base.stat().st_mtime_ns
    await vols.create_from_image(v2, image_id, image, "qcow2", 4 * MiB)
    assert base.stat().st_mtime_ns == base_mtime  # converted once, then reused
    assert qemu_img_info(base, "raw")["format"] == "raw"
    q = qemu_img_info(vols.path(v1))
    assert (q["backing-filename"], q["backing-filename-format"], q["virtual-size"]) == (str(base), "raw", 8 * MiB)
    data = read_raw(vols.path(v1), tmp_path)
    assert data[:MiB] == b"IMG!" * (MiB // 4) and len(data) == 8 * MiB
    assert sorted(p.name for p in vols.root.iterdir()) == sorted(["_base", f"{v1}.qcow2", f"{v2}.qcow2"])
    with pytest.raises(ValueError):
        await vols.create_from_image(new_id(), image_id, image, "qcow2", MiB)


async def test_unused_bases_are_pruned(vols: VolumeFiles, image: Path) -> None:
    image_id, vid = new_id(), new_id()
    await vols.create_from_image(vid, image_id, image, "qcow2", 4 * MiB)
    assert await vols.bases_in_use() == {image_id}
    assert await vols.prune_bases() == []
    await vols.delete(vid)
    assert await vols.prune_bases() == [image_id]
    assert not vols.base_path(image_id).exists()


async def test_extend(vols: VolumeFiles) -> None:
    vid = new_id()
    await vols.create_empty(vid, 4 * MiB)
    info = await vols.extend(vid, 12 * MiB)
    assert info.virtual_size == 12 * MiB == qemu_img_info(vols.path(vid))["virtual-size"]
    with pytest.raises(ValueError):
        await vols.extend(vid, 12 * MiB)
    with pytest.raises(ValueError):
        await vols.extend(vid, 4 * MiB)


async def test_snapshot_revert_and_volume_from_snapshot(vols: VolumeFiles, image: Path, tmp_path: Path) -> None:
    vid, snap = new_id(), new_id()
    await vols.create_from_image(vid, new_id(), image, "qcow2", 4 * MiB)
    await vols.snapshot_create(vid, snap)
    assert await vols.snapshots(vid) == (snap,)
    assert [s["name"] for s in qemu_img_info(vols.path(vid))["snapshots"]] == [snap]
    with pytest.raises(AlreadyExists):
        await vols.snapshot_create(vid, snap)

    write_into(vols.path(vid), b"\xaa" * 65536)
    assert read_raw(vols.path(vid), tmp_path)[:4] == b"\xaa" * 4

    # A volume from the snapshot has the old content and no backing file (independent).
    from_snap = new_id()
    info = await vols.create_from_snapshot(from_snap, vid, snap, size=6 * MiB)
    assert info.backing_file is None and info.virtual_size == 6 * MiB
    assert read_raw(vols.path(from_snap), tmp_path)[:4] == b"IMG!"

    reverted = await vols.snapshot_revert(vid, snap)
    assert reverted.virtual_size == 4 * MiB
    assert read_raw(vols.path(vid), tmp_path)[:4] == b"IMG!"

    assert await vols.snapshot_delete(vid, snap) is True
    assert await vols.snapshots(vid) == ()
    assert await vols.snapshot_delete(vid, snap) is False
    with pytest.raises(NotFound):
        await vols.snapshot_revert(vid, snap)
    with pytest.raises(NotFound):
        await vols.create_from_snapshot(new_id(), vid, snap)


async def test_clone_is_an_independent_full_copy(vols: VolumeFiles, image: Path, tmp_path: Path) -> None:
    src, clone = new_id(), new_id()
    await vols.create_from_image(src, new_id(), image, "qcow2", 4 * MiB)
    info = await vols.clone(clone, src, size=8 * MiB)
    assert info.backing_file is None and info.virtual_size == 8 * MiB
    write_into(vols.path(src), b"\x55" * 65536)
    assert read_raw(vols.path(clone), tmp_path)[:4] == b"IMG!"


async def test_export_flattens(vols: VolumeFiles, image: Path, tmp_path: Path) -> None:
    vid = new_id()
    await vols.create_from_image(vid, new_id(), image, "qcow2", 4 * MiB)
    out = tmp_path / "export.qcow2"
    await vols.export(vid, out, "qcow2")
    q = qemu_img_info(out)
    assert "backing-filename" not in q and q["virtual-size"] == 4 * MiB
    assert read_raw(out, tmp_path)[:4] == b"IMG!"


async def test_delete_and_missing(vols: VolumeFiles) -> None:
    vid = new_id()
    await vols.create_empty(vid, MiB)
    assert await vols.delete(vid) is True
    assert not vols.exists(vid)
    assert await vols.delete(vid) is False
    with pytest.raises(NotFound):
        await vols.delete(vid, missing_ok=False)
    with pytest.raises(NotFound):
        await vols.info(vid)
    with pytest.raises(NotFound):
        vols.disk_target(vid)
    with pytest.raises(InvalidId):
        vols.path("../../etc/passwd")


async def test_failed_build_leaves_no_file(vols: VolumeFiles, tmp_path: Path) -> None:
    not_qcow2 = tmp_path / "junk"
    not_qcow2.write_bytes(b"\0" * MiB)
    with pytest.raises(QemuImgError):
        await vols.create_from_image(new_id(), new_id(), not_qcow2, "qcow2", 4 * MiB)
    assert sorted(p.name for p in vols.root.iterdir()) == ["_base"]
    assert list(vols.base_dir.iterdir()) == []


async def test_snapshot_refused_while_volume_is_open_elsewhere(vols: VolumeFiles) -> None:
    """qemu's image locking makes offline snapshot fail cleanly when a guest holds the file."""
    import subprocess

    vid = new_id()
    await vols.create_empty(vid, MiB)
    holder = subprocess.Popen(
        ["qemu-io", "-f", "qcow2", str(vols.path(vid))],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import asyncio

        await asyncio.sleep(0.5)
        with pytest.raises(QemuImgError, match="lock"):
            await vols.snapshot_create(vid, new_id())
    finally:
        holder.communicate(b"quit\n", timeout=10)
