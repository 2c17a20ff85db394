"""The metadata server over loopback: identification seam, documents, limits, rate limit.

The listener here is a plain loopback socket standing for one bridge's; the resolve callable
plays the network's index (the integration tests use the real one in the namespace).
"""
from __future__ import annotations

import asyncio
import json
import socket

import pytest

from appliance.compute.configdrive import ConfigDriveContent
from appliance.metadata import documents
from appliance.metadata.server import Limits, MetadataClient, MetadataServer, TokenBuckets

IID = "11111111-2222-4333-8444-555555555555"
CONTENT = ConfigDriveContent(uuid=IID, name="vm", hostname="vm", project_id="p",
                             public_keys={"k": "ssh-ed25519 AAAA k"}, user_data=b"#!/bin/sh\n",
                             flavor_name="m1.tiny", security_groups=("default",))


async def start(limits: Limits | None = None, known: bool = True, clock=None):
    stored = {"password": ""}

    def resolve(bridge, source):
        return MetadataClient(IID, source) if known and bridge == "br0" else None

    def content(iid):
        return ConfigDriveContent(**{**CONTENT.__dict__, "password": stored["password"]})

    async def set_password(iid, value):
        if stored["password"]:
            return False
        stored["password"] = value
        return True

    kwargs = {"clock": clock} if clock else {}
    server = MetadataServer(resolve, content, set_password=set_password, limits=limits,
                            network_data=lambda iid: asyncio.sleep(0, {"links": []}), **kwargs)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    port = sock.getsockname()[1]
    await server.listen("br0", sock)
    return server, port


async def exchange(port: int, raw: bytes, *, read: bool = True) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return (int(head.split(b" ")[1]) if head else 0), body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".encode()


async def test_openstack_and_ec2_documents():
    server, port = await start()
    try:
        status, body = await exchange(port, get("/openstack/latest/meta_data.json"))
        assert status == 200 and json.loads(body)["uuid"] == IID
        assert (await exchange(port, get("/openstack/2015-10-15/user_data")))[1] == b"#!/bin/sh\n"
        assert json.loads((await exchange(port, get("/openstack/latest/network_data.json")))[1]) == {"links": []}
        listing = (await exchange(port, get("/openstack/2013-04-04/")))[1].decode().split("\n")
        assert "network_data.json" not in listing and "meta_data.json" in listing
        assert (await exchange(port, get("/latest/meta-data/public-keys/0/openssh-key")))[1] == b"ssh-ed25519 AAAA k"
        assert (await exchange(port, get("/latest/meta-data/placement/")))[1] == b"availability-zone"
        assert (await exchange(port, get("/latest/meta-data/instance-type")))[1] == b"m1.tiny"
        assert (await exchange(port, get("/latest/meta-data/nothing")))[0] == 404
        status, body = await exchange(port, b"HEAD /openstack HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200 and body == b""
    finally:
        await server.stop()


async def test_unknown_source_gets_404():
    server, port = await start(known=False)
    try:
        assert (await exchange(port, get("/openstack/latest/meta_data.json")))[0] == 404
        assert server.stats["not_found"] == 1
    finally:
        await server.stop()


@pytest.mark.parametrize("raw,status", [
    (b"GET http://10.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\n\r\n", 405),
    (b"PUT /openstack HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    (b"POST /openstack/latest/meta_data.json HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", 405),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n", 431),
    (b"GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"garbage\r\n\r\n", 400),
])
async def test_hostile_requests_are_refused(raw, status):
    server, port = await start()
    try:
        assert (await exchange(port, raw))[0] == status
    finally:
        await server.stop()


async def test_header_block_trickled_past_the_limit_is_refused():
    server, port = await start(Limits(max_header_bytes=512))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = b""
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            for _ in range(40):
                writer.write(b"X-Pad: " + b"z" * 20 + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.005)
            data = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:  # the refusal closed a socket we were still writing to
            pass
        writer.close()
        assert server.stats["bad_requests"] == 1 and server.stats["requests"] == 0
        assert data == b"" or data.startswith(b"HTTP/1.1 431")
    finally:
        await server.stop()


async def test_silent_connection_is_closed_after_header_timeout():
    server, port = await start(Limits(header_timeout=0.2))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert server.stats["timeouts"] == 1
    finally:
        await server.stop()


async def test_connections_per_source_are_capped():
    server, port = await start(Limits(max_connections_per_source=2, header_timeout=5))
    try:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.05)
        status, _ = await exchange(port, get("/"))
        assert status == 0 and server.stats["refused_connections"] == 1
        for _, w in held:
            w.close()
        async def freed():
            while server._total:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(freed(), 5)
        assert (await exchange(port, get("/")))[0] == 200
    finally:
        await server.stop()


async def test_password_is_posted_once_and_bounded():
    server, port = await start()
    try:
        post = b"POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        assert (await exchange(port, post % 300 + b"p" * 300))[0] == 413
        assert (await exchange(port, post % 4 + b"abcd"))[0] == 200
        assert (await exchange(port, post % 4 + b"efgh"))[0] == 409
        assert (await exchange(port, get("/openstack/latest/password")))[1] == b"abcd"
    finally:
        await server.stop()


async def test_rate_limit_per_instance_refills_with_time():
    now = [0.0]
    server, port = await start(Limits(rate=1.0, burst=3), clock=lambda: now[0])
    try:
        codes = [(await exchange(port, get("/")))[0] for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        now[0] += 1.0
        assert (await exchange(port, get("/")))[0] == 200
    finally:
        await server.stop()


def test_token_buckets_stay_bounded():
    buckets = TokenBuckets(rate=1.0, burst=2, max_keys=100, clock=lambda: 0.0)
    for i in range(10_000):
        assert buckets.allow(f"k{i}")
    assert len(buckets) <= 101


def test_documents_ec2_public_keys_listing_and_versions():
    facts = documents.RequestFacts(fixed_ip="10.0.0.5")
    tree = documents.ec2_tree(CONTENT, facts)
    assert tree["public-keys"] == {"0=k": {"openssh-key": "ssh-ed25519 AAAA k"}}
    assert tree["local-ipv4"] == "10.0.0.5" and tree["security-groups"] == "default"
    assert documents.is_password_path("/openstack/latest/password")
    assert not documents.is_password_path("/openstack/1999-01-01/password")
