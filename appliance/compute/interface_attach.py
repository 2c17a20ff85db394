"""Interface attachments: a port joins or leaves an instance as a NIC.

The network service binds the port (a new one on a network, or one the user made); a guest
with a domain gets the NIC hot-plugged and its tap plugged into the data plane, one without
takes it at its next spawn from the record. The record's ports and addresses follow.
Detach unplugs the NIC, then gives the port back to the network service.
"""
from __future__ import annotations

import contextlib

from appliance.compute.build import addresses_of
from appliance.compute.driver import ComputeDriver, NicSpec
from appliance.compute.progress import Progress
from appliance.compute.records import PowerState, Task
from appliance.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from appliance.seams import NetworkSeam, PortBinding


class InterfaceAttachments:
    def __init__(self, progress: Progress, driver: ComputeDriver,
                 network: NetworkSeam | None) -> None:
        self.progress, self.driver, self.network = progress, driver, network

    async def attach(self, task: Task) -> PortBinding:
        """The port binding as recorded on the instance."""
        inst = self.progress.require(task.instance_id)
        net = self.network
        if net is None:
            raise BadRequest("No network service is running.")
        before = {p.port_id for p in inst.ports}
        ports = await net.allocate_ports(inst.id, inst.project_id, [task.params["request"]])
        new = [p for p in ports if p.port_id not in before]
        if not new:
            raise Conflict("The network service did not bind a new port.")
        port = new[-1]
        if await self.progress.power_of(inst.id) != PowerState.NOSTATE:
            await self.driver.attach_nic(inst.id, NicSpec(
                mac=port.mac, tap_name=port.tap_name, mtu=port.mtu,
                precreated_tap=port.precreated_tap))
            await net.plug(port.tap_name, port.port_id)
        inst.ports.append(port)
        inst.addresses = addresses_of(inst.ports)
        await self.progress.finish(inst, task, inst.vm_state)
        return port

    async def detach(self, task: Task) -> None:
        inst = self.progress.require(task.instance_id)
        port = next(p for p in inst.ports if p.port_id == task.params["port_id"])
        with contextlib.suppress(NotFound, ServiceUnavailable):
            await self.driver.detach_nic(inst.id, port.mac)
        if self.network is not None:
            await self.network.deallocate_port(port.port_id)
        inst.ports = [p for p in inst.ports if p.port_id != port.port_id]
        inst.addresses = addresses_of(inst.ports)
        await self.progress.finish(inst, task, inst.vm_state)
