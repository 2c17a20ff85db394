"""The daemon answers before compute is ready, and says so honestly.

A restart listens before compute has reached libvirt (a KVM probe guest when no verdict is
cached, a libvirtd that starts after us) and before the start-up reconciliation is over (1,000
guests to restart). Meanwhile reads answer from the recorded state, /healthz names what is not
ready yet, and whatever needs the hypervisor answers 503 in Nova's error shape — never a
crash, never a hang, nothing half-created. Each test holds the slow step open with an event
(the real step runs once the event is set), so nothing depends on timing.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import aiohttp
import pytest

from appliance.client import MonostackClient
from appliance.compute import manager as manager_mod
from appliance.compute.libvirt.driver import LibvirtDriver
from appliance.compute.reconcile import Reconciler
from appliance.errors import ServiceUnavailable
from appliance.service import Appliance
from tests.api.compute.conftest import TEST_IMAGE_ID, make_daemon, wait_status
from tests.compute_support import COMPONENTS
from tests.daemon import ADMIN_PASSWORD, wait_for

C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}
BOOT = {"server": {"name": "late", "imageRef": TEST_IMAGE_ID, "flavorRef": "1",
                   "networks": "none"}}


async def _one_active_server(tmp_path) -> tuple[object, str]:
    """A config whose state holds one ACTIVE server (its daemon stopped)."""
    daemon = await make_daemon(tmp_path)
    async with daemon:
        nova = await daemon.admin_client()
        try:
            created = (await nova.post(f"{C}/servers", BOOT, headers=H))["server"]
            await wait_status(nova, created["id"], "ACTIVE")
        finally:
            await nova.close()
    return daemon.config, created["id"]


@asynccontextmanager
async def _restarted(config):
    """The daemon's own start (settle=False: it listens before components settle)."""
    appliance = Appliance(config, components=COMPONENTS)
    await appliance.startup(settle=False)
    try:
        yield appliance
    finally:
        await appliance.shutdown()


async def _health(client) -> dict:
    return await client.get("/healthz")


async def _raw(config, token: str, method: str, path: str, body: dict | None = None):
    """(status, JSON body) without the client's error mapping: the wire shape itself."""
    conn = aiohttp.UnixConnector(path=str(config.api.socket))
    async with aiohttp.ClientSession(connector=conn) as http:
        async with http.request(method, "http://localhost" + path, json=body,
                                headers={"X-Auth-Token": token, **H}) as resp:
            return resp.status, await resp.json()


async def test_the_api_answers_while_reconciliation_is_still_running(tmp_path, monkeypatch):
    config, server_id = await _one_active_server(tmp_path)
    gate, held = asyncio.Event(), asyncio.Event()
    real = Reconciler.reconcile

    async def slow_reconcile(self):
        held.set()
        await gate.wait()
        await real(self)

    monkeypatch.setattr(Reconciler, "reconcile", slow_reconcile)
    async with _restarted(config) as appliance:
        await asyncio.wait_for(held.wait(), 30)
        client = MonostackClient(socket_path=config.api.socket)
        try:
            await client.login("admin", ADMIN_PASSWORD, "admin")
            health = await _health(client)
            assert health["components"]["compute"] == \
                "starting: reconciling 1 instances with libvirt"
            assert health["components"]["image"].startswith("ok")
            servers = (await client.get(f"{C}/servers/detail", headers=H))["servers"]
            assert [s["id"] for s in servers] == [server_id]  # reads: the recorded state
            flavors = (await client.get(f"{C}/flavors", headers=H))["flavors"]
            assert flavors
            # an action waits for reconciliation (it must not act on a record being
            # corrected), and runs once it is over
            stopping = asyncio.create_task(
                client.post(f"{C}/servers/{server_id}/action", {"os-stop": None}, headers=H))
            await wait_for(lambda: appliance.ctx.components.compute.manager._admit_lock
                           .locked() and not stopping.done())
            gate.set()
            await asyncio.wait_for(stopping, 30)
            await wait_for(lambda: _compute_ok(client))
            await wait_status(client, server_id, "SHUTOFF")
        finally:
            gate.set()
            await client.close()


async def _compute_ok(client) -> bool:
    return (await _health(client))["components"]["compute"].startswith("ok")


async def test_before_libvirt_answers_what_needs_it_is_a_503_and_nothing_is_kept(
        tmp_path, monkeypatch):
    config, server_id = await _one_active_server(tmp_path)
    gate = asyncio.Event()
    real = LibvirtDriver.connect

    async def slow_connect(self):  # a KVM probe guest booting, a libvirtd still starting
        await gate.wait()
        await real(self)

    monkeypatch.setattr(LibvirtDriver, "connect", slow_connect)
    async with _restarted(config) as appliance:
        client = MonostackClient(socket_path=config.api.socket)
        try:
            await client.login("admin", ADMIN_PASSWORD, "admin")
            token = client.session.token
            health = await _health(client)
            assert health["components"]["compute"] == "starting: connecting to test:///default"
            assert [s["id"] for s in (await client.get(f"{C}/servers", headers=H))["servers"]] \
                == [server_id]
            # what needs the hypervisor: 503, Nova's error body, the reason in it
            for method, path, body in (
                    ("POST", f"{C}/servers", BOOT),
                    ("POST", f"{C}/servers/{server_id}/action", {"os-stop": None}),
                    ("DELETE", f"{C}/servers/{server_id}", None),
                    ("GET", f"{C}/os-hypervisors/detail", None)):
                status, answer = await _raw(config, token, method, path, body)
                assert status == 503, (path, answer)
                assert answer["computeFault"]["code"] == 503
                assert "Compute is starting (connecting to test:///default)" in \
                    answer["computeFault"]["message"]
            # bad input is still a 400 naming the field, not a 503
            status, answer = await _raw(config, token, "POST", f"{C}/servers",
                                        {"server": {**BOOT["server"], "flavorRef": ""}})
            assert status == 400 and "flavorRef" in answer["badRequest"]["message"]
            # the refused create kept nothing: no record, no quota held
            assert len((await client.get(f"{C}/servers", headers=H))["servers"]) == 1
            limits = (await client.get(f"{C}/limits", headers=H))["limits"]["absolute"]
            assert limits["totalInstancesUsed"] == 1
            gate.set()
            await wait_for(lambda: _compute_ok(client))
            created = (await client.post(f"{C}/servers", BOOT, headers=H))["server"]
            await wait_status(client, created["id"], "ACTIVE")
            await client.post(f"{C}/servers/{server_id}/action", {"os-stop": None}, headers=H)
            await wait_status(client, server_id, "SHUTOFF")
        finally:
            gate.set()
            await client.close()


async def test_a_libvirtd_away_at_start_is_degraded_then_reached_without_a_restart(
        tmp_path, monkeypatch):
    config, server_id = await _one_active_server(tmp_path)
    monkeypatch.setattr(manager_mod, "BRING_UP_DELAYS", (0.01,))
    failures = asyncio.Event()
    libvirtd_back = asyncio.Event()
    real = LibvirtDriver.connect

    async def away(self):
        if not libvirtd_back.is_set():
            failures.set()
            raise ServiceUnavailable("cannot connect to test:///default: no libvirtd")
        await real(self)

    monkeypatch.setattr(LibvirtDriver, "connect", away)
    async with _restarted(config) as appliance:
        client = MonostackClient(socket_path=config.api.socket)
        try:
            await client.login("admin", ADMIN_PASSWORD, "admin")
            # settled as far as it goes while libvirtd is away: `monostack init` (which waits
            # for its components to settle) must not hang on a host without libvirt
            await asyncio.wait_for(appliance.settled(), 30)
            assert failures.is_set()
            health = await _health(client)
            assert health["status"] == "degraded"
            assert health["components"]["compute"].startswith(
                "degraded: cannot reach test:///default (cannot connect to test:///default: "
                "no libvirtd); retrying")
            with pytest.raises(ServiceUnavailable, match="Compute is starting"):
                await client.post(f"{C}/servers", BOOT, headers=H)
            libvirtd_back.set()
            await wait_for(lambda: _compute_ok(client))
            assert (await _health(client))["status"] == "ok"
            await wait_status(client, server_id, "ACTIVE")
        finally:
            libvirtd_back.set()
            await client.close()
