"""Upload and download: verified, hashed, ranged, and nothing kept when refused or cut off."""
from __future__ import annotations

import asyncio
import os

import pytest

from appliance.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from tests.api.images.conftest import (
    create_image,
    digests,
    download,
    needs_qemu_img,
    upload,
)

pytestmark = needs_qemu_img


async def test_upload_download_round_trip_with_checksums(admin, qcow2, image_daemon):
    data = qcow2.read_bytes()
    img = await create_image(admin, "roundtrip")
    assert img["status"] == "queued" and img["size"] is None
    assert await upload(admin, img["id"], qcow2) == 204
    shown = await admin.get(f"/image/v2/images/{img['id']}")
    md5, sha512 = digests(data)
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["virtual_size"] == 64 << 20
    assert (shown["checksum"], shown["os_hash_algo"], shown["os_hash_value"]) == (md5, "sha512", sha512)
    assert await download(admin, img["id"]) == data
    # the raw HTTP answer carries Content-MD5 and the length
    async with admin._http_session().get(admin.base + f"/image/v2/images/{img['id']}/file",
                                         headers={"X-Auth-Token": admin.token}) as r:
        assert r.status == 200
        assert r.headers["Content-MD5"] == md5
        assert int(r.headers["Content-Length"]) == len(data)


async def test_ranged_downloads(admin, qcow2):
    data = qcow2.read_bytes()
    img = await create_image(admin, "ranges")
    await upload(admin, img["id"], qcow2)
    url = admin.base + f"/image/v2/images/{img['id']}/file"
    http = admin._http_session()
    for header, expect, crange in [
        ("bytes=0-99", data[:100], f"bytes 0-99/{len(data)}"),
        ("bytes=100-", data[100:], f"bytes 100-{len(data) - 1}/{len(data)}"),
        ("bytes=-10", data[-10:], f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"),
        (f"bytes=5-{len(data) + 100}", data[5:], f"bytes 5-{len(data) - 1}/{len(data)}"),
    ]:
        async with http.get(url, headers={"X-Auth-Token": admin.token, "Range": header}) as r:
            assert r.status == 206, header
            assert r.headers["Content-Range"] == crange
            assert await r.read() == expect
    async with http.get(url, headers={"X-Auth-Token": admin.token,
                                      "Range": f"bytes={len(data)}-"}) as r:
        assert r.status == 416
        assert r.headers["Content-Range"] == f"bytes */{len(data)}"


async def test_queued_image_has_no_data_and_cannot_be_uploaded_twice(admin, qcow2):
    img = await create_image(admin, "twice")
    async with admin._http_session().get(admin.base + f"/image/v2/images/{img['id']}/file",
                                         headers={"X-Auth-Token": admin.token}) as r:
        assert r.status == 204
    await upload(admin, img["id"], qcow2)
    with pytest.raises(Conflict):
        await upload(admin, img["id"], qcow2)


async def test_upload_needs_formats(admin, qcow2):
    img = await admin.post("/image/v2/images", {"name": "noformat"})
    with pytest.raises(BadRequest, match="disk_format"):
        await upload(admin, img["id"], qcow2)


async def test_progress_is_recorded_while_saving(admin, image_daemon, tmp_path):
    from tests.api.images.conftest import make_qcow2
    big = make_qcow2(tmp_path / "big.qcow2", "64M", os.urandom(12 << 20))
    img = await create_image(admin, "progress")
    seen = []

    async def watch():
        while True:
            rec = image_daemon.appliance.ctx.components.image.service.images.get(img["id"])
            seen.append((rec.status, rec.progress_bytes))
            await asyncio.sleep(0.005)

    async def slow_chunks():
        data = big.read_bytes()
        for i in range(0, len(data), 1 << 20):
            yield data[i:i + (1 << 20)]
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        status, _ = await admin.upload("PUT", f"/image/v2/images/{img['id']}/file", slow_chunks())
    finally:
        watcher.cancel()
    assert status == 204
    assert any(s == "saving" and p > 0 for s, p in seen), seen[-5:]


async def test_interrupted_upload_leaves_no_active_image_and_no_data(admin, image_daemon, qcow2):
    img = await create_image(admin, "interrupted")
    service = image_daemon.appliance.ctx.components.image.service
    data = qcow2.read_bytes()
    host, port = image_daemon.config.api.listen_host_port
    reader, writer = await asyncio.open_connection(host, port)
    head = (f"PUT /image/v2/images/{img['id']}/file HTTP/1.1\r\nHost: x\r\n"
            f"X-Auth-Token: {admin.token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(data) + (4 << 20)}\r\n\r\n")
    writer.write(head.encode() + data)
    await writer.drain()
    for _ in range(200):
        if service.images.get(img["id"]).status == "saving":
            break
        await asyncio.sleep(0.01)
    writer.close()  # the client vanishes mid-stream
    for _ in range(300):
        rec = service.images.get(img["id"])
        if rec.status != "saving":
            break
        await asyncio.sleep(0.01)
    rec = service.images.get(img["id"])
    assert rec.status == "queued"
    assert rec.size is None and rec.checksum is None
    assert not service.blobs.exists(img["id"])
    assert [p.name for p in service.blobs.root.iterdir() if p.is_file()] == []
    # and the image can be uploaded afterwards
    assert await upload(admin, img["id"], qcow2) == 204


async def test_image_quota_count_and_bytes(admin, projects, qcow2):
    alice = await projects.member("quota-a")
    pid = alice.session.project_id
    with pytest.raises(Forbidden):
        await alice.put(f"/image/v2/quotas/{pid}", {"quota": {"images": 1}})
    await admin.put(f"/image/v2/quotas/{pid}", {"quota": {"images": 2, "bytes": 1000}})
    first = await create_image(alice, "q1")
    await create_image(alice, "q2")
    with pytest.raises(PayloadTooLarge):
        await create_image(alice, "q3")
    # bytes: the declared size is refused up front, a lying stream is cut off
    with pytest.raises(PayloadTooLarge):
        await upload(alice, first["id"], qcow2)
    assert (await alice.get(f"/image/v2/images/{first['id']}"))["status"] == "queued"

    async def stream():
        yield qcow2.read_bytes()
    with pytest.raises(PayloadTooLarge):
        await alice.upload("PUT", f"/image/v2/images/{first['id']}/file", stream())
    quota = (await alice.get(f"/image/v2/quotas/{pid}"))["quota"]
    assert quota["images_used"] == 2 and quota["bytes_used"] == 0


async def test_protected_image_cannot_be_deleted(admin, qcow2, image_daemon):
    img = await create_image(admin, "guarded", protected=True)
    await upload(admin, img["id"], qcow2)
    with pytest.raises(Forbidden):
        await admin.delete(f"/image/v2/images/{img['id']}")
    await admin.patch(f"/image/v2/images/{img['id']}",
                      [{"op": "replace", "path": "/protected", "value": False}],
                      headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    await admin.delete(f"/image/v2/images/{img['id']}")
    with pytest.raises(NotFound):
        await admin.get(f"/image/v2/images/{img['id']}")
    service = image_daemon.appliance.ctx.components.image.service
    assert not service.blobs.exists(img["id"])


async def test_glance_direct_import(admin, qcow2, image_daemon):
    img = await create_image(admin, "imported")
    status, _ = await admin.upload("PUT", f"/image/v2/images/{img['id']}/stage", qcow2.read_bytes())
    assert status == 204
    assert (await admin.get(f"/image/v2/images/{img['id']}"))["status"] == "uploading"
    await admin.post(f"/image/v2/images/{img['id']}/import", {"method": {"name": "glance-direct"}})
    for _ in range(200):
        shown = await admin.get(f"/image/v2/images/{img['id']}")
        if shown["status"] == "active":
            break
        await asyncio.sleep(0.02)
    assert shown["status"] == "active"
    assert shown["checksum"] == digests(qcow2.read_bytes())[0]
    assert await download(admin, img["id"]) == qcow2.read_bytes()
    service = image_daemon.appliance.ctx.components.image.service
    assert not service.staging.exists(img["id"])
    with pytest.raises(BadRequest):
        await admin.post(f"/image/v2/images/{img['id']}/import", {"method": {"name": "web-download"}})


async def test_restart_puts_saving_images_back_to_queued(tmp_path, qcow2):
    from tests.api.images.conftest import IMAGE_COMPONENTS
    from tests.daemon import InProcessDaemon, write_config
    _, config = write_config(tmp_path / "d", components=["images"])
    async with InProcessDaemon(config, components=IMAGE_COMPONENTS) as daemon:
        admin = await daemon.admin_client()
        img = await create_image(admin, "crashy")
        service = daemon.appliance.ctx.components.image.service
        rec = service.images.require(img["id"])
        rec.status = "saving"
        await service.images.save(rec)
        stray = service.blobs.root / f".{img['id']}.tmp-abc123"
        stray.write_bytes(b"partial")
        await admin.close()
    async with InProcessDaemon(config, components=IMAGE_COMPONENTS) as daemon:
        admin = await daemon.admin_client()
        shown = await admin.get(f"/image/v2/images/{img['id']}")
        assert shown["status"] == "queued"
        assert not stray.exists()
        assert await upload(admin, img["id"], qcow2) == 204
        await admin.close()
