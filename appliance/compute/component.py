"""The compute component: the Nova API over the conductor, scheduler and libvirt driver.

Owns the driver (`LibvirtDriver(config.compute.libvirt_uri)`, or one handed in by a test),
the `ComputeManager` (durable task queue + reconciliation), flavors, key pairs, server groups
and the serial console proxy. Its routes are `appliance.api.compute`'s.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from appliance.component import ApplianceContext, CatalogEntry
from appliance.compute import metrics as compute_metrics
from appliance.compute.driver import ComputeDriver
from appliance.compute.console import ConsoleProxy, ConsoleTokens
from appliance.compute.hostnames import hostname_of
from appliance.compute.manager import ComputeManager
from appliance.compute.records import Flavor, KeyPair, ServerGroup, TaskState, VmState
from appliance.compute.service import ComputeService
from appliance.errors import Forbidden
from appliance.quota import QuotaSource
from appliance.seams import ImageSeam, NetworkSeam, VolumeSeam
from appliance.state import Repository

log = logging.getLogger("monostack.compute")

#: `monostack init` flavors (Nova's classic set, plus m1.nano for tiny test guests)
DEFAULT_FLAVORS = [
    Flavor(id="1", name="m1.tiny", vcpus=1, ram=128, disk=1),
    Flavor(id="2", name="m1.small", vcpus=1, ram=2048, disk=20),
    Flavor(id="3", name="m1.medium", vcpus=2, ram=4096, disk=40),
    Flavor(id="4", name="m1.large", vcpus=4, ram=8192, disk=80),
    Flavor(id="5", name="m1.xlarge", vcpus=8, ram=16384, disk=160),
]


class ComputeComponent:
    name = "compute"
    catalog = [CatalogEntry(type="compute", name="nova", path="/compute/v2.1")]

    def __init__(self, ctx: ApplianceContext, *, images: ImageSeam | None = None,
                 volumes: VolumeSeam | None = None, network: NetworkSeam | None = None,
                 driver: ComputeDriver | None = None) -> None:
        self.ctx = ctx
        if driver is None:
            from appliance.compute.libvirt.driver import LibvirtDriver
            from appliance.compute.libvirt.kvm_probe import CACHE_NAME as KVM_PROBE_CACHE
            driver = LibvirtDriver(ctx.config.compute.libvirt_uri,
                                   probe_cache=ctx.config.state_dir / KVM_PROBE_CACHE)
        self.driver = driver
        self.console_proxy = ConsoleProxy(self._open_console)
        self.manager = ComputeManager(ctx, driver, images=images, volumes=volumes,
                                      network=network, console=self.console_proxy)
        self.flavors: Repository[Flavor] = Repository(ctx.store, "flavors", Flavor,
                                                      kind="Flavor")
        self.keypairs: Repository[KeyPair] = Repository(ctx.store, "keypairs", KeyPair,
                                                        kind="Keypair")
        self.server_groups: Repository[ServerGroup] = Repository(
            ctx.store, "server_groups", ServerGroup, kind="Server group")
        ctx.quotas.register(QuotaSource(
            ("server_groups",), self.manager.quota_limits,
            lambda project_id: {"server_groups": len(self.server_groups.list(
                lambda g: g.project_id == project_id))},
            lambda *_: Forbidden("Quota exceeded, too many server groups.")))
        self.service = ComputeService(self.manager, self.flavors, self.keypairs,
                                      self.server_groups, ctx.quotas, images=images,
                                      volumes=volumes, network=network)
        self.console_tokens = ConsoleTokens()
        compute_metrics.register(ctx.metrics, self)

    async def _open_console(self, instance_id: str) -> Any:
        return await self.driver.console_stream(instance_id, force=True)

    async def start(self) -> None:
        await self.manager.start()

    async def settled(self) -> None:
        """Start-up reconciliation is over (start() returns before it is), or the hypervisor
        was found away (degraded: reached and reconciled in the background once it answers;
        nothing to wait for meanwhile)."""
        m = self.manager
        waits = [asyncio.ensure_future(m.reconciled.wait()),
                 asyncio.ensure_future(m.unreachable.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def stop(self) -> None:
        await self.console_proxy.close()
        await self.manager.stop()

    async def bootstrap(self, admin_project: Any) -> None:
        for flavor in DEFAULT_FLAVORS:
            await self.service.ensure_flavor(flavor)

    # ---- what network may ask compute (appliance/seams.py ComputeForNetwork) ----------------

    def instance_hostname(self, instance_id: str) -> str | None:
        """The host name an instance's DHCP lease carries: its `hostname` (set at create from
        the name, as Nova does) or its name made DNS-safe; None for an unknown instance."""
        inst = self.manager.instances.get(instance_id)
        if inst is None:
            return None
        return inst.hostname or hostname_of(inst.name)

    def instance_metadata(self, instance_id: str) -> Any:
        """The metadata service's documents for a live instance (ConfigDriveContent), or None
        for an unknown one or one being deleted: its guest then gets nothing."""
        inst = self.manager.instances.get(instance_id)
        if inst is None or inst.vm_state == VmState.DELETED \
                or inst.task_state == TaskState.DELETING:
            return None
        return self.manager.build.metadata_content(inst)

    async def set_instance_password(self, instance_id: str, value: str) -> bool:
        """The guest's one POST to its password file; False once one is set (Nova: 409)."""
        if self.manager.instances.get(instance_id) is None:
            return False
        return await self.manager.passwords.set_once(instance_id, value)

    def health(self) -> str:
        m = self.manager
        if m.scheduler is None:
            if m.reconciled.is_set():  # bring-up gave up (not a libvirt error: a bug)
                return f"failed: {m.bring_up_error}"
            if m.bring_up_error:
                return (f"degraded: cannot reach {m.config.libvirt_uri} "
                        f"({m.bring_up_error}); retrying")
            return f"starting: connecting to {m.config.libvirt_uri}"
        if not m.reconciled.is_set():
            return f"starting: reconciling {m.instances.count()} instances with libvirt"
        if not m.driver.connected:
            return f"degraded: the connection to {m.config.libvirt_uri} is lost; reconnecting"
        return (f"ok ({m.host_info.hypervisor_type}, {m.instances.count()} instances, "
                f"{len(m._running)} tasks)")
