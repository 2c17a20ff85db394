"""Hostile image data over the API: refused with a 400 that says why, and nothing stored."""
from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest

from appliance.errors import BadRequest
from tests.api.images.conftest import create_image, needs_qemu_img, qemu_img, upload

pytestmark = needs_qemu_img


def _backing_passwd(tmp: Path) -> tuple[Path, str]:
    path = tmp / "backing.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", path, "1M")
    return path, "qcow2"


def _data_file(tmp: Path) -> tuple[Path, str]:
    path = tmp / "datafile.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={tmp / 'external.raw'}", path, "1M")
    return path, "qcow2"


def _raw_as_qcow2(tmp: Path) -> tuple[Path, str]:
    path = tmp / "plain.raw"
    path.write_bytes(b"\x00" * 65536)
    return path, "qcow2"


def _qcow2_as_raw(tmp: Path) -> tuple[Path, str]:
    path = tmp / "real.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, "1M")
    return path, "raw"


def _vmdk_descriptor(tmp: Path) -> tuple[Path, str]:
    path = tmp / "desc.vmdk"
    path.write_text('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                    'createType="monolithicFlat"\n\n# Extent description\n'
                    'RW 2048 FLAT "/etc/passwd" 0\n\nddb.virtualHWVersion = "4"\n')
    return path, "vmdk"


def _qcow2_as_vmdk(tmp: Path) -> tuple[Path, str]:
    path = tmp / "mislabelled.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, "1M")
    return path, "vmdk"


def _gzip_as_raw(tmp: Path) -> tuple[Path, str]:
    path = tmp / "disk.raw.gz"
    path.write_bytes(gzip.compress(b"\x00" * (1 << 16)))
    return path, "raw"


def _absurd_size(tmp: Path) -> tuple[Path, str]:
    path = tmp / "huge.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, "100T")
    return path, "qcow2"


def qcow2_beyond_qemu(tmp: Path, field_offset: int, value: int, name: str) -> Path:
    """A real qcow2 with one header table size set past what qemu opens; the format
    inspector has no objection to it (it checks what a header names, not qemu's limits)."""
    path = tmp / f"{name}.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, "64M")
    with open(path, "r+b") as f:
        f.seek(field_offset)
        f.write(struct.pack(">I", value))
    return path


def _huge_l1(tmp: Path) -> tuple[Path, str]:
    return qcow2_beyond_qemu(tmp, 36, 1 << 24, "huge-l1"), "qcow2"  # l1_size: 16 Mi entries


def _huge_refcount_table(tmp: Path) -> tuple[Path, str]:
    return qcow2_beyond_qemu(tmp, 56, 1 << 20, "huge-refcount"), "qcow2"  # clusters


def _huge_snapshot_table(tmp: Path) -> tuple[Path, str]:
    return qcow2_beyond_qemu(tmp, 60, 1 << 17, "huge-snapshots"), "qcow2"  # nb_snapshots


def _empty(tmp: Path) -> tuple[Path, str]:
    path = tmp / "empty.raw"
    path.write_bytes(b"")
    return path, "raw"


HOSTILE = {
    "qcow2 backing file /etc/passwd": (_backing_passwd, "backing"),
    "qcow2 external data file": (_data_file, "data"),
    "raw declared as qcow2": (_raw_as_qcow2, "raw"),
    "qcow2 declared as raw": (_qcow2_as_raw, "qcow2"),
    "vmdk descriptor naming a host path": (_vmdk_descriptor, "vmdk"),
    "qcow2 declared as vmdk": (_qcow2_as_vmdk, "qcow2"),
    "gzip declared as raw": (_gzip_as_raw, "gzip"),
    "absurd virtual size": (_absurd_size, "size"),
    "empty": (_empty, "empty"),
    "qcow2 L1 table beyond qemu's limit": (_huge_l1, "l1 table too large"),
    "qcow2 refcount table beyond qemu's limit": (_huge_refcount_table, "too large"),
    "qcow2 snapshot table beyond qemu's limit": (_huge_snapshot_table, "too large"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_hostile_image_is_refused_and_nothing_is_stored(case, admin, image_daemon, tmp_path):
    make, words = HOSTILE[case]
    path, declared = make(tmp_path)
    img = await create_image(admin, f"hostile-{declared}", disk_format=declared)
    with pytest.raises(BadRequest) as err:
        await upload(admin, img["id"], path)
    assert "refused" in str(err.value).lower()
    assert words in str(err.value).lower() or declared in str(err.value).lower()
    shown = await admin.get(f"/image/v2/images/{img['id']}")
    assert shown["status"] == "queued"
    assert shown["size"] is None and shown["checksum"] is None
    assert shown["monostack_last_error"]
    service = image_daemon.appliance.ctx.components.image.service
    assert not service.blobs.exists(img["id"])
    assert [p for p in service.blobs.root.iterdir() if p.is_file()] == []


async def test_virtual_size_over_the_project_limit_is_refused(admin, image_daemon, tmp_path):
    pid = admin.session.project_id
    await admin.put(f"/image/v2/quotas/{pid}", {"quota": {"max_virtual_size": 32 << 20}})
    path = tmp_path / "big.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, "64M")
    img = await create_image(admin, "too-big")
    with pytest.raises(BadRequest, match="limit"):
        await upload(admin, img["id"], path)


async def test_hostile_staged_import_fails_and_keeps_nothing(admin, image_daemon, tmp_path):
    import asyncio
    path, _ = _backing_passwd(tmp_path)
    img = await create_image(admin, "hostile-import")
    await admin.upload("PUT", f"/image/v2/images/{img['id']}/stage", path.read_bytes())
    await admin.post(f"/image/v2/images/{img['id']}/import", {"method": {"name": "glance-direct"}})
    for _ in range(200):
        shown = await admin.get(f"/image/v2/images/{img['id']}")
        if shown["status"] not in ("importing", "uploading"):
            break
        await asyncio.sleep(0.02)
    assert shown["status"] == "queued"
    assert "backing" in shown["monostack_last_error"]
    service = image_daemon.appliance.ctx.components.image.service
    assert not service.blobs.exists(img["id"]) and not service.staging.exists(img["id"])


async def test_image_qemu_cannot_open_fails_its_import_with_the_reason(admin, image_daemon,
                                                                       tmp_path):
    import asyncio
    path, _ = _huge_l1(tmp_path)
    img = await create_image(admin, "huge-l1-import")
    await admin.upload("PUT", f"/image/v2/images/{img['id']}/stage", path.read_bytes())
    await admin.post(f"/image/v2/images/{img['id']}/import", {"method": {"name": "glance-direct"}})
    for _ in range(200):
        shown = await admin.get(f"/image/v2/images/{img['id']}")
        if shown["status"] not in ("importing", "uploading"):
            break
        await asyncio.sleep(0.02)
    assert shown["status"] != "active"
    assert "qemu cannot open" in shown["monostack_last_error"]
    assert "L1 table too large" in shown["monostack_last_error"]
    service = image_daemon.appliance.ctx.components.image.service
    assert not service.blobs.exists(img["id"])


def test_a_file_qemu_img_opens_as_another_format_is_still_refused(tmp_path):
    """The qemu check names the declared format: a qcow2 declared raw is never probed."""
    import asyncio

    from storage.errors import UnsafeImage
    from storage.inspect import verify_async
    path = tmp_path / "disk.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, "1M")
    good = tmp_path / "good.qcow2"
    shutil.copy(path, good)
    assert asyncio.run(verify_async(good, "qcow2")).format == "qcow2"
    with pytest.raises(UnsafeImage):
        asyncio.run(verify_async(path, "raw"))
