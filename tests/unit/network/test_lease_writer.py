"""The DHCP lease writer judged alone: lease events in (as the server reports them, after its
reply went out), lease records and events out, durable, in few transactions; the network
manager is built from a real store with no data plane."""
from __future__ import annotations

import asyncio

import pytest

from appliance.dhcp.leases import Lease, LeaseEvent, LeaseEventKind
from appliance.events import KEEP, EventBus
from appliance.network import dataplane_sync
from appliance.network.manager import NetworkManager
from appliance.network.records import LeaseState
from appliance.quota import Quotas
from appliance.state import Store
from tests.daemon import write_config


@pytest.fixture
async def setup(tmp_path):
    _, config = write_config(tmp_path, components=["network"])
    store = Store(config.state_dir)
    await store.open()
    fsyncs: list[float] = []
    manager = NetworkManager(store, config.network, Quotas(), EventBus(store), dataplane=False)
    await manager.start()
    net = await manager.create_network("p1", name="n")
    await manager.create_subnet("p1", net.id, cidr="10.9.0.0/16", name="s")
    port = await manager.create_port("p1", net.id)
    store.on_fsync = fsyncs.append
    try:
        yield manager, net, port, fsyncs, config
    finally:
        await manager.stop()
        await store.close()


def _event(kind: LeaseEventKind, bridge: str, i: int, at: float = 1000.0) -> LeaseEvent:
    mac = "02:00:00:00:%02x:%02x" % (i >> 8, i & 255)
    return LeaseEvent(kind, Lease(mac=mac, ip=f"10.9.{i >> 8}.{i & 255}", bridge=bridge,
                                  granted_at=at, expires_at=at + 600), at)


async def test_a_burst_of_leases_is_recorded_with_its_events_in_a_few_commits(setup):
    manager, net, port, fsyncs, config = setup
    n = 2_500
    for i in range(n):
        manager.dataplane._lease_sink(_event(LeaseEventKind.GRANTED, net.bridge, i))
    await asyncio.wait_for(manager.dataplane._lease_queue.join(), 60)
    # One journal append per batch (at most LEASE_BATCH_MAX events each), not one per lease
    # and one per event as before.
    assert 1 <= len(fsyncs) <= -(-n // dataplane_sync.LEASE_BATCH_MAX) + 1
    leases = manager.leases.list()
    assert len(leases) == n and {r.state for r in leases} == {LeaseState.ACTIVE}
    kinds = [e.kind for e in manager.events.repo.list()]
    assert kinds.count("lease.granted") == KEEP  # the newest KEEP kept, the rest pruned
    # Durable: a store opened afresh from the directory (what a restart sees) has them all.
    again = Store(config.state_dir)
    await again.open()
    try:
        assert len(again.all("dhcp_leases")) == n
    finally:
        await again.close()


async def test_the_port_s_lease_carries_its_port_and_a_release_follows_the_grant(setup):
    manager, net, port, fsyncs, config = setup
    watcher = manager.events.subscribe()
    lease = Lease(mac=port.mac_address, ip=port.ips()[0], bridge=net.bridge, granted_at=5.0, expires_at=605.0)
    manager.dataplane._lease_sink(LeaseEvent(LeaseEventKind.GRANTED, lease, 5.0))
    manager.dataplane._lease_sink(LeaseEvent(LeaseEventKind.RELEASED, lease, 6.0))
    await asyncio.wait_for(manager.dataplane._lease_queue.join(), 10)
    (rec,) = manager.leases.list()
    assert rec.port_id == port.id and rec.project_id == "p1" and rec.state == LeaseState.RELEASED
    seen = [watcher.get_nowait().kind for _ in range(2)]
    assert seen == ["lease.granted", "lease.released"]  # announced after the commit, in order


async def test_a_writer_far_behind_drops_and_counts_instead_of_growing(setup):
    manager, net, port, fsyncs, config = setup
    sync = manager.dataplane
    for i in range(dataplane_sync.LEASE_QUEUE_MAX + 2):  # no await between: the writer cannot run
        sync._lease_sink(_event(LeaseEventKind.RENEWED, net.bridge, i % 256))
    assert sync._lease_queue.qsize() == dataplane_sync.LEASE_QUEUE_MAX
    assert sync.lease_events_dropped == 2
    await asyncio.wait_for(sync._lease_queue.join(), 60)
    assert len(manager.leases.list()) == 256
