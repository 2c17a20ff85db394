"""Domains that outlive their server are removed; nobody else's domain ever is.

libvirt's test:///default is one hypervisor shared by every connection of this process, so
two daemons here share it as test daemons share the host's libvirtd: each must remove only
the domains it defined itself (its appliance id in their metadata).
"""
from __future__ import annotations

import asyncio

import pytest

from appliance.compute import reconcile as reconcile_module
from appliance.compute import orphans
from appliance.errors import NotFound
from tests.api.compute.conftest import make_daemon, manager_of, wait_status
from tests.compute_support import TEST_IMAGE_ID
from tests.daemon import wait_for

C = "/compute/v2.1"


async def _domains(manager) -> dict[str, dict[str, str]]:
    return {d.uuid.lower(): d.metadata for d in await manager.driver.list_domains()}


async def _boot(client, name: str) -> str:
    body = {"server": {"name": name, "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}
    return (await client.post(f"{C}/servers", body))["server"]["id"]


async def _gone(client, sid: str) -> bool:
    try:
        await client.get(f"{C}/servers/{sid}")
    except NotFound:
        return True
    return False


async def test_a_define_landing_after_its_server_was_deleted_is_swept(tmp_path, monkeypatch):
    """A build stuck in libvirt is not waited for by a delete; the define that lands after
    the server is gone is removed by the periodic sweep."""
    monkeypatch.setattr(reconcile_module, "ORPHAN_SWEEP_INTERVAL", 0.2)
    async with await make_daemon(tmp_path) as daemon:
        manager = manager_of(daemon)
        client = await daemon.admin_client()
        gate = asyncio.Event()
        real = manager.driver.spawn
        landings: list[asyncio.Future] = []

        async def stuck_in_libvirt(spec):
            async def land():
                await gate.wait()
                await real(spec)
            landings.append(asyncio.ensure_future(land()))
            await asyncio.shield(landings[-1])  # giving up the wait does not stop the define

        manager.driver.spawn = stuck_in_libvirt
        try:
            sid = await _boot(client, "stuck")
            await wait_for(lambda: manager.instances.require(sid).task_state == "spawning", 10)
            await client.delete(f"{C}/servers/{sid}")
            await wait_for(lambda: _gone(client, sid), timeout=10)  # not waiting for libvirt
            gate.set()
            await landings[0]
            assert sid in await _domains(manager)  # the define landed after the delete

            async def swept():
                return sid not in await _domains(manager)
            await wait_for(swept, timeout=10)
            assert manager.scheduler.claim_count() == 0
            assert not (manager.instances_dir / sid).exists()
        finally:
            manager.driver.spawn = real
            gate.set()
            await client.close()


async def test_a_sweep_removes_our_leftover_domains_and_never_another_appliances(
        tmp_path, monkeypatch):
    """Daemon A leaves a domain whose server is gone (its record removed behind its back);
    daemon B, sharing the hypervisor, removes nothing of A's; A's own sweep removes it."""
    monkeypatch.setattr(reconcile_module, "ORPHAN_SWEEP_INTERVAL", 3600.0)  # swept by hand
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = await make_daemon(tmp_path / "a")
    async with a:
        client = await a.admin_client()
        try:
            kept = await _boot(client, "kept")
            leaked = await _boot(client, "leaked")
            await wait_status(client, kept, "ACTIVE")
            await wait_status(client, leaked, "ACTIVE")
        finally:
            await client.close()
        manager = manager_of(a)
        a_id = manager.appliance_id
        meta = (await _domains(manager))[leaked]
        assert meta[orphans.APPLIANCE_KEY] == a_id and meta[orphans.INSTANCE_KEY] == leaked
        # the server is gone but its domain stays: what a define landing late leaves
        await manager.store.commit([manager.instances.delete_op(leaked)])

        async with await make_daemon(tmp_path / "b") as b:
            other = manager_of(b)
            assert other.appliance_id != a_id
            assert await other.sweep_orphans() == 0
            left = await _domains(other)
            assert kept in left and leaked in left
            assert {kept, leaked} <= set(other.orphans)  # reported as not ours, untouched
            client = await b.admin_client()
            try:
                mine = await _boot(client, "b-own")
                await wait_status(client, mine, "ACTIVE")
                await client.delete(f"{C}/servers/{mine}")
                await wait_for(lambda: _gone(client, mine), timeout=10)
            finally:
                await client.close()
            assert await other.sweep_orphans() == 0
            assert {kept, leaked} <= set(await _domains(other))

        # A's own sweep removes its leftover, never the live server's domain
        assert await manager.sweep_orphans() == 1
        left = await _domains(manager)
        assert leaked not in left and kept in left
        assert any(d.name == "test" for d in await manager.driver.list_domains())
        await manager.store.commit([manager.instances.delete_op(kept)])

    # the next start of A removes what its state no longer has (the sweep at start)
    async with await make_daemon(tmp_path / "a") as again:
        restarted = manager_of(again)
        assert restarted.appliance_id == a_id
        assert kept not in await _domains(restarted) and kept not in restarted.orphans


def test_ownership_needs_both_the_appliance_id_and_the_instance_uuid():
    from appliance.compute.driver import DomainState, DomainSummary

    def dom(uuid: str, **meta: str) -> DomainSummary:
        return DomainSummary(uuid=uuid, name=f"ms-{uuid}", state=DomainState.RUNNING,
                             metadata=meta)

    ours = dom("A", **{"appliance-id": "me", "instance-id": "a"})
    known = dom("b", **{"appliance-id": "me", "instance-id": "b"})
    other_appliance = dom("c", **{"appliance-id": "you", "instance-id": "c"})
    older = dom("d", **{"instance-id": "d"})  # defined before appliance ids existed
    borrowed = dom("e", **{"appliance-id": "me", "instance-id": "someone-else"})
    hand_made = dom("f")
    found = orphans.classify([ours, known, other_appliance, older, borrowed, hand_made],
                             {"b"}, "me")
    assert found.ours == [ours]
    assert found.foreign == [other_appliance, older, borrowed, hand_made]
    assert orphans.classify([ours], set(), "").ours == []


@pytest.mark.parametrize("twice", [False, True])
async def test_the_appliance_id_is_made_once_and_kept(tmp_path, twice):
    from appliance.state import Store
    store = Store(tmp_path)
    await store.open()
    first = await orphans.appliance_id(store)
    if twice:
        await store.close()
        store = Store(tmp_path)
        await store.open()
    assert await orphans.appliance_id(store) == first
    await store.close()
