"""What the rooms ask of the ports the manager holds (network/manager.py is the real one).

Routers, floating IPs and compute's ports are ports: their addresses and MACs come from the
one allocator under the one lock, so a gateway or floating address can never be handed out
twice. Routing (routing.py) and compute binding (compute_binding.py) get this narrow face of
it instead of the manager, so a unit test can hand in a small fake over a store of its own.
"""
from __future__ import annotations

from typing import Any, Protocol

from appliance.network.records import Port


class PortWriter(Protocol):
    async def create_port(self, project_id: str, network_id: str, **options: Any) -> Port:
        """Take the lock, make the port (addresses, MAC, groups), then sync unless
        `sync=False`."""
        ...

    async def create_port_locked(self, project_id: str, network_id: str,
                                 **options: Any) -> Port:
        """Make the port under the caller's hold of the lock, the project's port quota
        reserved (none for the service's own ports, project "")."""
        ...

    async def delete_port_locked(self, port_id: str, *, internal: bool = False) -> None:
        """Delete the port under the caller's hold of the lock: its floating IPs are
        disassociated and its leases dropped in the same commit. Router and floating-IP
        ports are refused unless `internal`."""
        ...

    def check_groups(self, groups: list | None, project_id: str, is_admin: bool) -> list[str]:
        """The ids of the named (or id-given) groups the project may use; NotFound else."""
        ...
