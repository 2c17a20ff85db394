"""Helpers for tests that boot the real test guest (packaging/guest-image) through the API
with the real image, network and compute components on qemu:///system.

Everything a test makes lives under one 0755 directory in /var/lib/monostack-test/<uuid>/
(libvirt-qemu must traverse it) and one data-plane namespace named by write_config; the
fixtures' `finally` blocks remove both, and `destroy_domains` removes every domain by uuid
(only the test's own).
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import libvirt
import pytest

from appliance.client import MonostackClient
from tests.daemon import wait_for
from tests.guest_image import (
    LEASE_PREFIX,
    PROMPT,
    READY_MARKER,
    GuestImageBuildError,
    ensure_guest_image,
    make_traversable_dir,
)

C = "/compute/v2.1"
N = "/network/v2.0"
H = {"OpenStack-API-Version": "compute 2.60"}
URI = "qemu:///system"
TEST_ROOT = Path("/var/lib/monostack-test")
LEASE_RE = re.compile(r"lease: (\S+) router (\S+) dns (\S+)")


#: Marks for a module of tests that boot real guests: integration tier, root only.
REAL_GUEST_MARKS = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, qemu:///system)"),
]


async def delete_servers_quietly(client: MonostackClient, sids: list[str]) -> None:
    """Cleanup: ask the daemon to delete each server, whatever state the test left."""
    for sid in sids:
        try:
            await client.delete(f"{C}/servers/{sid}")
        except Exception:
            pass


def libvirt_reachable() -> bool:
    try:
        libvirt.open(URI).close()
        return True
    except libvirt.libvirtError:
        return False


def guest_image_or_skip() -> Path:
    try:
        return ensure_guest_image().qcow2
    except GuestImageBuildError as exc:
        pytest.skip(f"the guest image cannot be built here: {exc}")


def new_test_dir() -> Path:
    return make_traversable_dir(TEST_ROOT / ("guestnet-" + uuid.uuid4().hex[:12]))


def real_config_extra(base: Path) -> dict[str, dict[str, Any]]:
    """Config sections for real guests: qemu:///system, disks and images under `base`."""
    return {
        "compute": {"libvirt_uri": URI, "instances_dir": str(base / "inst"),
                    "reserved_host_memory_mb": 0, "graceful_shutdown_timeout": 30},
        "storage": {"images_dir": str(base / "images"), "volumes_dir": str(base / "volumes")},
    }


def destroy_domains(uuids: list[str]) -> None:
    """Stop and undefine the named domains (only these: other engineers run guests too)."""
    conn = libvirt.open(URI)
    try:
        for u in uuids:
            try:
                dom = conn.lookupByUUIDString(u)
            except libvirt.libvirtError:
                continue
            try:
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError:
                pass
            try:
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                  | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()


def stop_domains(uuids: list[str]) -> None:
    """What a host power cut does to guests: the qemu processes are gone, definitions stay."""
    conn = libvirt.open(URI)
    try:
        for u in uuids:
            try:
                dom = conn.lookupByUUIDString(u)
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()


def domain_active(u: str) -> bool:
    conn = libvirt.open(URI)
    try:
        return bool(conn.lookupByUUIDString(u).isActive())
    finally:
        conn.close()


async def upload_guest_image(client: MonostackClient, path: Path, name: str = "guest") -> str:
    """The guest image through the Glance API (create, PUT file); returns its id."""
    img = await client.post("/image/v2/images", {
        "name": name, "disk_format": "qcow2", "container_format": "bare",
        "visibility": "public"})

    async def chunks() -> AsyncIterator[bytes]:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk
    await client.upload("PUT", f"/image/v2/images/{img['id']}/file", chunks())
    return img["id"]


async def make_flavor(client: MonostackClient, name: str = "guest") -> str:
    return (await client.post(f"{C}/flavors", {"flavor": {
        "name": name, "ram": 256, "vcpus": 1, "disk": 1, "id": None}}))["flavor"]["id"]


async def boot(client: MonostackClient, name: str, image_id: str, flavor_id: str,
               made: list[str]) -> str:
    sid = (await client.post(f"{C}/servers", {"server": {
        "name": name, "imageRef": image_id, "flavorRef": flavor_id}}))["server"]["id"]
    made.append(sid)
    return sid


async def server(client: MonostackClient, sid: str) -> dict[str, Any]:
    return (await client.get(f"{C}/servers/{sid}", headers=H))["server"]


async def wait_status(client: MonostackClient, sid: str, *wanted: str,
                      timeout: float = 180) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        s = await server(client, sid)
        return s if s["status"] in wanted and not s.get("OS-EXT-STS:task_state") else None
    s = await wait_for(check, timeout=timeout, interval=0.3)
    return s


def fixed_ip(s: dict[str, Any]) -> str:
    return next(a["addr"] for addrs in s["addresses"].values() for a in addrs)


async def console_text(client: MonostackClient, sid: str) -> str:
    return (await client.post(f"{C}/servers/{sid}/action",
                              {"os-getConsoleOutput": {}}))["output"]


def leases_in(text: str) -> list[tuple[str, str, str]]:
    """Every `lease: <ip> router <gw> dns <dns>` line the guest printed, in order."""
    return LEASE_RE.findall(text)


async def wait_leases(client: MonostackClient, sid: str, count: int,
                      timeout: float = 240) -> list[tuple[str, str, str]]:
    """Until the console log shows at least `count` lease lines (the log is appended across
    restarts, so the n-th boot's lease is the n-th line) and the guest is at its prompt."""
    async def check() -> list[tuple[str, str, str]] | None:
        text = await console_text(client, sid)
        found = leases_in(text)
        after = text.rsplit(LEASE_PREFIX, 1)[-1]
        return found if len(found) >= count and READY_MARKER in after else None
    return await wait_for(check, timeout=timeout, interval=1)


class Console:
    """The guest's serial console through the remote-console websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen = ""

    @classmethod
    async def open(cls, client: MonostackClient, sid: str) -> "Console":
        url = (await client.post(f"{C}/servers/{sid}/remote-consoles", {"remote_console": {
            "protocol": "serial", "type": "serial"}}))["remote_console"]["url"]
        path = url.split("://", 1)[1].split("/", 1)[1]
        return cls(await client.websocket("/" + path))

    async def run(self, command: str, expect: str | re.Pattern[str],
                  timeout: float = 60, retype_after: float = 20) -> str:
        """Type `command`, wait until `expect` shows up in what the console sends back.

        The command is typed again every `retype_after` seconds without an answer (a shell
        that was still starting may have missed it), so use idempotent commands."""
        self.seen = ""
        pattern = expect if isinstance(expect, re.Pattern) else re.compile(re.escape(expect))
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            typed = -retype_after
            while not pattern.search(self.seen):
                if loop.time() - typed >= retype_after:
                    await self.ws.send_bytes(command.encode() + b"\n")
                    typed = loop.time()
                try:
                    msg = await asyncio.wait_for(self.ws.receive(), 1)
                except TimeoutError:
                    continue
                if msg.data is None:
                    raise AssertionError(f"console closed; saw {self.seen[-500:]!r}")
                data = msg.data if isinstance(msg.data, str) else msg.data.decode(
                    "utf-8", errors="replace")
                self.seen += data
        return self.seen

    async def close(self) -> None:
        await self.ws.close()


async def wait_prompt(client: MonostackClient, sid: str, timeout: float = 240) -> None:
    async def check() -> bool:
        text = await console_text(client, sid)
        return READY_MARKER in text and PROMPT in text
    await wait_for(check, timeout=timeout, interval=1)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
