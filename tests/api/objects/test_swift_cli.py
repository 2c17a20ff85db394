"""The real python-swiftclient (`swift`) and `openstack container/object` against the daemon.

The daemon runs in-process on the test's loop; the CLIs are asyncio subprocesses talking to
it over loopback TCP, exactly as they would to a real Swift.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from storage.objects.index import ObjectRow
from tests.api.objects.conftest import (
    OPENSTACK,
    Swift,
    make_user,
    openstack_env,
    run_cli,
    swift_args,
)

MB = 1 << 20


def random_file(path: Path, size: int) -> str:
    """Write `size` random bytes in 1 MiB chunks; return their md5."""
    h = hashlib.md5()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(MB, left))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while b := f.read(MB):
            h.update(b)
    return h.hexdigest()


async def test_swift_cli_upload_download_100mb(swift_daemon, sw, tmp_path):
    src = tmp_path / "big.bin"
    digest = random_file(src, 100 * MB)
    args = swift_args(swift_daemon)
    await run_cli(*args, "upload", "bulk", "big.bin", cwd=tmp_path)
    st, h, _ = await sw.request("HEAD", "/bulk/big.bin")
    assert st == 200 and h["ETag"] == digest and h["Content-Length"] == str(100 * MB)
    assert "X-Object-Meta-Mtime" in h
    out = tmp_path / "out.bin"
    await run_cli(*args, "download", "bulk", "big.bin", "-o", str(out), cwd=tmp_path)
    assert file_md5(out) == digest
    stat = await run_cli(*args, "stat", "bulk", "big.bin")
    assert digest in stat and str(100 * MB) in stat
    stat = await run_cli(*args, "stat")
    assert "Objects: 1" in stat and f"Bytes: {100 * MB}" in stat


async def test_swift_cli_static_large_object(swift_daemon, sw, tmp_path):
    src = tmp_path / "slo.bin"
    digest = random_file(src, 35 * MB)
    args = swift_args(swift_daemon)
    await run_cli(*args, "upload", "--use-slo", "--segment-size", "10M", "big", "slo.bin", cwd=tmp_path)
    st, h, _ = await sw.request("HEAD", "/big/slo.bin")
    assert st == 200 and h["X-Static-Large-Object"] == "True"
    assert h["Content-Length"] == str(35 * MB) and h["ETag"].startswith('"')
    segments = await run_cli(*args, "list", "big_segments")
    assert len(segments.split()) == 4  # 10+10+10+5 MiB
    out = tmp_path / "slo.out"
    await run_cli(*args, "download", "big", "slo.bin", "-o", str(out))
    assert file_md5(out) == digest
    # deleting through swift removes the segments too
    await run_cli(*args, "delete", "big", "slo.bin")
    assert (await run_cli(*args, "list", "big_segments")).split() == []


async def test_swift_cli_listing_pagination_prefix_delimiter_20000(swift_daemon, sw, tmp_path):
    """20,000 names loaded through the engine's index (real PUTs run at ~110/s on this
    2-core box, so 20,000 would take ~3 minutes), plus 300 real PUTs through HTTP mixed in."""
    engine = swift_daemon.appliance.ctx.components.object.engine
    st, _, _ = await sw.request("PUT", "/many")
    assert st == 201
    now = time.time()
    names = [f"d{i % 5}/s{i % 3}/o{i:05d}" for i in range(20_000)]
    await engine.index.replace_all(
        [ObjectRow(sw.account, "many", n, 0, "d41d8cd98f00b204e9800998ecf8427e", "text/plain",
                   f"{now:016.5f}", now) for n in names], now)
    sem = asyncio.Semaphore(32)

    async def real_put(i: int) -> None:
        async with sem:
            name = f"d{i % 5}/real{i:03d}"
            names.append(name)
            assert (await sw.request("PUT", f"/many/{name}", data=b"x"))[0] == 201

    await asyncio.gather(*(real_put(i) for i in range(300)))
    args = swift_args(swift_daemon)
    listed = (await run_cli(*args, "list", "many")).split("\n")[:-1]
    assert listed == sorted(names) and len(listed) == 20_300
    listed = (await run_cli(*args, "list", "many", "--prefix", "d3/")).split("\n")[:-1]
    assert listed == sorted(n for n in names if n.startswith("d3/"))
    listed = (await run_cli(*args, "list", "many", "--prefix", "d3/", "--delimiter", "/")).split("\n")[:-1]
    assert listed == sorted(
        {"d3/s0/", "d3/s1/", "d3/s2/"} | {n for n in names if n.startswith("d3/real")})
    listed = (await run_cli(*args, "list", "many", "--delimiter", "/")).split("\n")[:-1]
    assert listed == ["d0/", "d1/", "d2/", "d3/", "d4/"]
    stat = await run_cli(*args, "stat", "many")
    assert "Objects: 20300" in stat


async def test_openstack_container_and_object_commands(swift_daemon, sw, tmp_path):
    env = openstack_env(swift_daemon)
    created = json.loads(await run_cli(OPENSTACK, "container", "create", "osc", "-f", "json", env=env))
    assert created[0]["container"] == "osc"
    listed = json.loads(await run_cli(OPENSTACK, "container", "list", "-f", "json", env=env))
    assert "osc" in [c["Name"] for c in listed]
    (tmp_path / "hello.txt").write_bytes(b"hello from openstack\n")
    obj = json.loads(await run_cli(OPENSTACK, "object", "create", "osc", "hello.txt", "-f", "json",
                                   env=env, cwd=tmp_path))
    assert obj[0]["etag"] == hashlib.md5(b"hello from openstack\n").hexdigest()
    listed = json.loads(await run_cli(OPENSTACK, "object", "list", "osc", "-f", "json", env=env))
    assert [o["Name"] for o in listed] == ["hello.txt"]
    out = tmp_path / "saved.txt"
    await run_cli(OPENSTACK, "object", "save", "osc", "hello.txt", "--file", str(out), env=env, cwd=tmp_path)
    assert out.read_bytes() == b"hello from openstack\n"
    show = json.loads(await run_cli(OPENSTACK, "object", "show", "osc", "hello.txt", "-f", "json", env=env))
    assert show["content-length"] == "21"


async def test_swift_cli_acl_read_for_another_project_not_write(swift_daemon, sw, tmp_path):
    admin = await swift_daemon.admin_client()
    pid = await make_user(admin, "guests", "gus", "gus-pw")
    await admin.close()
    owner = swift_args(swift_daemon)
    (tmp_path / "doc.txt").write_bytes(b"shared doc")
    await run_cli(*owner, "upload", "pub", "doc.txt", cwd=tmp_path)
    await run_cli(*owner, "post", "pub", "--read-acl", f"{pid}:*")
    gus = swift_args(swift_daemon, "gus", "gus-pw", "guests")
    storage_url = f"{sw.url}"
    out = tmp_path / "got.txt"
    await run_cli(*gus, "--os-storage-url", storage_url, "download", "pub", "doc.txt", "-o", str(out))
    assert out.read_bytes() == b"shared doc"
    (tmp_path / "evil.txt").write_bytes(b"overwrite")
    with pytest.raises(AssertionError, match="403|Forbidden|Access"):
        await run_cli(*gus, "--os-storage-url", storage_url, "upload", "pub", "evil.txt", cwd=tmp_path)
    assert (await sw.request("HEAD", "/pub/evil.txt"))[0] == 404
    # own account still works for gus
    guest = Swift(sw.http, sw.base, sw.token, f"AUTH_{pid}")
    assert (await guest.request("HEAD"))[0] == 204
