"""The bootable test guest goes into the image store and comes back byte for byte."""
from __future__ import annotations

import hashlib

import pytest

from tests.api.images.conftest import create_image, needs_qemu_img

pytestmark = needs_qemu_img


async def test_guest_image_upload_download_checksums(admin):
    guest_image = pytest.importorskip(
        "tests.guest_image", reason="tests/guest_image.py (branch guestimage) is not on this branch yet")
    try:
        guest = guest_image.ensure_guest_image()
    except guest_image.GuestImageBuildError as exc:
        pytest.skip(f"guest image cannot be built here: {exc}")
    for path, fmt in ((guest.qcow2, "qcow2"), (guest.raw, "raw")):
        data_md5, data_sha = hashlib.md5(), hashlib.sha512()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                data_md5.update(chunk)
                data_sha.update(chunk)
        img = await create_image(admin, f"tinyguest-{fmt}", disk_format=fmt)

        async def chunks():
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk
        await admin.upload("PUT", f"/image/v2/images/{img['id']}/file", chunks())
        shown = await admin.get(f"/image/v2/images/{img['id']}")
        assert shown["status"] == "active"
        assert shown["checksum"] == data_md5.hexdigest()
        assert shown["os_hash_value"] == data_sha.hexdigest()
        back_md5, back_sha = hashlib.md5(), hashlib.sha512()
        async for chunk in admin.download(f"/image/v2/images/{img['id']}/file"):
            back_md5.update(chunk)
            back_sha.update(chunk)
        assert (back_md5.hexdigest(), back_sha.hexdigest()) == (data_md5.hexdigest(),
                                                                data_sha.hexdigest())
