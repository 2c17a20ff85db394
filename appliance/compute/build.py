"""The build pipeline: an admitted instance becomes a running guest, and the disks, config
drive, domain and ports every later start needs.

build: claim resources (scheduler) → root volume or image → ports (network) → disks (a qcow2
overlay over the image's cached base, grown to the flavor; a config drive) → domain (libvirt)
→ taps plugged into the data plane. The image's overlay is made while the claim and the
ports are (it needs neither, and took as long as both on the path to a running guest). Each
step is recorded (task_state) so a crash re-drives the build from the store; every step is
idempotent. `spawn`, `plug`, `prepare_disks`,
`make_root`, `domain_spec` and `cleanup_resources` serve the other actions too (rebuild,
rescue, resize, delete, the restart resume).

It is built with only what it uses: the records as a task writes them (compute/progress.py's
`Progress`, the manager), the driver, the components compute uses (appliance/seams.py, None
when one does not run), the scheduler's claim and the instances directory, so it can be
unit-tested alone; it never admits work of its own.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from appliance.compute import disks, orphans, progress_meter
from appliance.compute.configdrive import ConfigDriveContent, write_config_drive
from appliance.compute.driver import (
    ComputeDriver,
    DiskBus,
    DiskDevice,
    DiskFormat,
    DiskSpec,
    DomainSpec,
    GuestNumaCell,
    NicSpec,
)
from appliance.compute.hostnames import hostname_of
from appliance.compute.progress import Progress
from appliance.compute.records import (
    Instance,
    Task,
    TaskState,
    VmState,
    VolumeAttachment,
    now,
)
from appliance.compute.scheduler import Claim, RequestSpec
from appliance.errors import BadRequest, NotFound
from appliance.seams import BootImage, ImageSeam, NetworkSeam, PortBinding, VolumeSeam

GiB = 1 << 30

#: the scheduler's claim: decided, then `persist` records it with the instance
ClaimFn = Callable[[RequestSpec, Callable[[Claim], Awaitable[None]]], Awaitable[Claim]]


class Builder:
    def __init__(self, progress: Progress, driver: ComputeDriver, instances_dir: Path, *,
                 images: ImageSeam | None, volumes: VolumeSeam | None,
                 network: NetworkSeam | None, claim: ClaimFn, hostname: Callable[[], str],
                 appliance_id: Callable[[], str], password_of: Callable[[str], str],
                 force_config_drive: bool) -> None:
        """hostname, appliance_id: known once the manager started (the host reached, the
        id read from the store); password_of: the password a guest set, for its metadata."""
        self.progress, self.driver, self.instances_dir = progress, driver, instances_dir
        self.images, self.volumes, self.network = images, volumes, network
        self.claim, self.hostname, self.appliance_id = claim, hostname, appliance_id
        self.password_of = password_of
        self.force_config_drive = force_config_drive
        #: instances whose task is inside the driver's spawn (a delete does not wait for it)
        self.spawning: set[str] = set()

    async def boot_image(self, image_id: str, project_id: str) -> BootImage:
        image = self.images
        if image is None:
            raise BadRequest("No image service is running: cannot boot from an image.")
        return await image.boot_source(image_id, project_id)

    async def build(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        # a re-driven build (after a crash) starts over on the hypervisor side; a first
        # attempt has no domain to find (its uuid is new; spawn refuses one that exists), so
        # it asks libvirt nothing before its disks are made
        if task.attempts:
            with contextlib.suppress(NotFound):
                await self.driver.destroy(inst.id)
        boot: BootImage | None = None
        if inst.image_id:
            boot = await self.boot_image(inst.image_id, inst.project_id)
        # The root disk over the image is made while the claim is decided and the ports are
        # allocated (neither needs it, it needs neither): it is awaited before the disks'
        # step. A step that fails first waits for it to end (a qemu-img cut short is
        # killed) before the failure goes on, so the cleanup that follows removes all of it.
        root: asyncio.Task[None] | None = None
        if boot is not None and inst.root_volume_id is None \
                and not task.params.get("boot_volume"):
            root = asyncio.create_task(self._make_fresh_root(inst, boot))
        try:
            await self._claim_and_network(inst, task, boot)
            await self.progress.step(inst, TaskState.BLOCK_DEVICE_MAPPING)
            if task.params.get("boot_volume"):
                await self._prepare_boot_volume(inst, task.params["boot_volume"])
            if root is not None:
                await root
        except BaseException:
            if root is not None:
                root.cancel()
                with contextlib.suppress(BaseException):
                    await root
            raise
        await self.prepare_disks(inst, boot, fresh=root is None)
        await self.progress.step(inst, TaskState.SPAWNING)
        await self.spawn(inst)
        inst.launched_at = now()
        inst.fault = None
        await self.progress.finish(inst, task, VmState.ACTIVE)

    async def _make_fresh_root(self, inst: Instance, boot: BootImage) -> None:
        d = await asyncio.to_thread(disks.make_instance_dir, self.instances_dir, inst.id)
        await self.make_root(d / "disk", boot, inst.flavor.disk)

    async def _claim_and_network(self, inst: Instance, task: Task,
                                 boot: BootImage | None) -> None:
        if inst.claim is None:
            spec = RequestSpec.for_flavor(
                inst.id, inst.flavor, boot.properties if boot else {},
                boot.min_ram if boot else 0, boot.min_disk if boot else 0,
                # a volume-backed root takes no local disk
                root_gb=0 if inst.root_volume_id or task.params.get("boot_volume") else None)

            async def persist(claim: Claim) -> None:
                inst.claim = claim
                inst.pinned_cpus = list(claim.pcpus)
                inst.host = self.hostname()
                inst.task_state = TaskState.NETWORKING
                self.progress.advance(inst.id, progress_meter.BUILD_STEPS[TaskState.NETWORKING])
                await self.progress.save(inst)

            await self.claim(spec, persist)
        else:
            await self.progress.step(inst, TaskState.NETWORKING)
        await self._allocate_network(inst)

    async def _prepare_boot_volume(self, inst: Instance, request: dict[str, Any]) -> None:
        """Boot from image onto a new volume. The volume id is recorded before its copy is
        waited for, so a build re-driven after a crash reuses it instead of making another."""
        if any(a.boot for a in inst.volume_attachments):
            return  # done before a crash
        vol_seam = self.volumes
        if vol_seam is None:
            raise BadRequest("Cannot boot from a new volume: no volume service is running.")
        if inst.root_volume_id is None:
            inst.root_volume_id = await vol_seam.begin_boot_volume(
                image_id=request["image_id"], project_id=inst.project_id,
                size_gb=int(request["size"]), name=f"{inst.name}-root")
            await self.progress.save(inst)
        await vol_seam.wait_available(inst.root_volume_id)
        vol = await vol_seam.root_volume_for_boot(inst.root_volume_id, inst.project_id)
        await vol_seam.mark_attached(inst.root_volume_id, inst.id, "/dev/vda")
        inst.volume_attachments.insert(0, VolumeAttachment(
            id=inst.root_volume_id, volume_id=inst.root_volume_id, device="/dev/vda",
            path=str(vol.path), format=vol.format, boot=True,
            delete_on_termination=bool(request.get("delete_on_termination"))))
        await self.progress.save(inst)

    async def _allocate_network(self, inst: Instance) -> None:
        net = self.network
        if net is None:
            return
        ports: list[PortBinding] = await net.allocate_ports(
            inst.id, inst.project_id, inst.requested_networks, inst.security_groups)
        inst.ports = list(ports)
        inst.addresses = addresses_of(ports)
        await self.progress.save(inst)

    async def prepare_disks(self, inst: Instance, boot: BootImage | None, *,
                             fresh: bool) -> None:
        d = await asyncio.to_thread(disks.make_instance_dir, self.instances_dir, inst.id)
        if inst.root_volume_id is None:
            if boot is None:
                raise BadRequest("The instance has neither an image nor a root volume.")
            root = d / "disk"
            if fresh or not root.exists():
                await self.make_root(root, boot, inst.flavor.disk)
        self.progress.advance(inst.id, progress_meter.BUILD_ROOT_DISK_DONE)
        if self.wants_config_drive(inst):
            await self.write_config_drive(inst, d / "disk.config")
            self.progress.advance(inst.id, progress_meter.BUILD_CONFIG_DRIVE_DONE)

    async def make_root(self, root: Path, boot: BootImage, flavor_disk_gb: int) -> None:
        vsize = boot.virtual_size or await disks.virtual_size(boot.path, boot.disk_format)
        size = flavor_disk_gb * GiB
        if size and size < vsize:
            raise BadRequest(f"Flavor's disk is too small for requested image. Flavor disk is "
                             f"{size} bytes, image is {vsize} bytes.")
        tmp = root.with_name(root.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(tmp.unlink)
        await disks.create_overlay(tmp, boot.path, boot.disk_format, max(size, vsize))
        await asyncio.to_thread(os.replace, tmp, root)

    def wants_config_drive(self, inst: Instance) -> bool:
        """As in Nova: when the user asks (or the operator forces it); everything else reads
        the same documents from the metadata service."""
        return inst.config_drive or self.force_config_drive

    def metadata_content(self, inst: Instance,
                         network_data: dict[str, Any] | None = None) -> ConfigDriveContent:
        """The documents a guest reads about itself, from the config drive or the metadata
        service (one builder, so both paths say the same)."""
        user_data = None
        if inst.user_data:
            try:
                user_data = base64.b64decode(inst.user_data)
            except (binascii.Error, ValueError):
                user_data = inst.user_data.encode()
        return ConfigDriveContent(
            uuid=inst.id, name=inst.name, hostname=inst.hostname or hostname_of(inst.name),
            project_id=inst.project_id, availability_zone=inst.availability_zone,
            launch_index=inst.launch_index,
            public_keys={inst.key_name: inst.key_data} if inst.key_name and inst.key_data else {},
            meta=dict(inst.metadata), user_data=user_data, network_data=network_data or {},
            image_id=inst.image_id, flavor_name=inst.flavor.name,
            reservation_id=inst.reservation_id, security_groups=tuple(inst.security_groups),
            password=self.password_of(inst.id))

    async def write_config_drive(self, inst: Instance, path: Path) -> None:
        network_data: dict[str, Any] = {}
        net = self.network
        if net is not None:
            with contextlib.suppress(Exception):
                network_data = await net.network_data(inst.id)
        await write_config_drive(self.metadata_content(inst, network_data), str(path))

    def domain_spec(self, inst: Instance, *, rescue: bool = False) -> DomainSpec:
        d = disks.instance_dir(self.instances_dir, inst.id)
        specs: list[DiskSpec] = []
        if rescue:
            specs.append(DiskSpec(path=str(d / "disk.rescue"), target="vda"))
        root_target = "vdb" if rescue else "vda"
        if inst.root_volume_id is None:
            specs.append(DiskSpec(path=str(d / "disk"), target=root_target))
        for att in inst.volume_attachments:
            target = att.target
            if att.boot:
                target = root_target
            elif rescue and target == "vdb":
                continue
            specs.append(DiskSpec(path=att.path, format=DiskFormat(att.format),
                                  target=target, serial=att.volume_id[:20]))
        if self.wants_config_drive(inst):
            specs.append(DiskSpec(path=str(d / "disk.config"), format=DiskFormat.RAW,
                                  target="hdd", bus=DiskBus.IDE, device=DiskDevice.CDROM))
        specs.sort(key=lambda s: (s.target != "vda", s.target))
        nics = [NicSpec(mac=p.mac, tap_name=p.tap_name, mtu=p.mtu,
                        precreated_tap=p.precreated_tap) for p in inst.ports]
        claim = inst.claim
        pinning = [[p] for p in claim.pcpus] if claim and claim.pcpus else None
        numa = None
        if claim and claim.numa:
            numa = [GuestNumaCell(id=i, vcpus=tuple(c.vcpus), memory_mib=c.memory_mb,
                                  host_node=c.host_node) for i, c in enumerate(claim.numa)]
        if pinning is not None and len(pinning) != inst.flavor.vcpus:
            pinning = None
        caps = self.driver.capabilities
        return DomainSpec(
            uuid=inst.id, name=f"ms-{inst.id}", vcpus=inst.flavor.vcpus,
            memory_mib=inst.flavor.ram, disks=specs, nics=nics, cpu_pinning=pinning,
            numa_cells=numa,
            metadata={orphans.INSTANCE_KEY: inst.id, orphans.APPLIANCE_KEY: self.appliance_id(),
                      "project-id": inst.project_id,
                      "user-id": inst.user_id, "display-name": inst.name[:200],
                      "flavor": inst.flavor.name},
            console_log_path=str(d / "console.log") if caps.supports_console_log else None)

    async def spawn(self, inst: Instance, *, rescue: bool = False) -> None:
        spec = self.domain_spec(inst, rescue=rescue)
        self.spawning.add(inst.id)
        try:
            await self.driver.spawn(spec)
        finally:
            self.spawning.discard(inst.id)
        self.progress.advance(inst.id, progress_meter.BUILD_DOMAIN_STARTED)
        await self.plug(inst)

    async def respawn(self, inst: Instance, *, running: bool, rescue: bool = False) -> None:
        """Destroy the domain and define it anew from the record; left off unless
        `running` (resize, rebuild, rescue and their undoing change what it is made of)."""
        with contextlib.suppress(NotFound):
            await self.driver.destroy(inst.id)
        await self.spawn(inst, rescue=rescue)
        if not running:
            await self.driver.power_off(inst.id, graceful=False)

    async def plug(self, inst: Instance) -> None:
        net = self.network
        if net is None:
            return
        for p in inst.ports:
            await net.plug(p.tap_name, p.port_id)

    async def ensure_domain(self, inst: Instance) -> bool:
        """True if the domain exists; else spawn it from the record (it is then running)."""
        try:
            await self.driver.state(inst.id)
            return True
        except NotFound:
            await self.spawn(inst, rescue=inst.vm_state == VmState.RESCUED)
            return False

    async def cleanup_resources(self, inst: Instance, *, keep_record: bool) -> None:
        """Destroy the domain, release ports and volumes, remove disk files."""
        with contextlib.suppress(NotFound):
            await self.driver.destroy(inst.id)
        net = self.network
        if net is not None and inst.ports:
            await net.deallocate_ports(inst.id)
        inst.ports, inst.addresses = [], {}
        await asyncio.to_thread(disks.remove_instance_dir, self.instances_dir, inst.id)

def addresses_of(ports: list[PortBinding]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for p in ports:
        for ip in p.fixed_ips:
            out.setdefault(p.network_name, []).append({
                "version": 6 if ":" in ip else 4, "addr": ip, "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": p.mac})
        out.setdefault(p.network_name, [])
    return out
