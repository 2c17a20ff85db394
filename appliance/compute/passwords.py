"""What a guest posted to the metadata service's password file (Nova's os-server-password).

Kept in a table of its own, not in the instance record: a compute task holds a copy of the
record for minutes and saves it at the end, which would overwrite a password the guest posted
meanwhile. One small record per instance, written once, cleared by its owner.
"""
from __future__ import annotations

from dataclasses import dataclass

from appliance.state import Repository, Store
from appliance.state.store import Op


@dataclass
class InstancePassword:
    id: str  # the instance id
    value: str


class InstancePasswords:
    def __init__(self, store: Store) -> None:
        self.repo = Repository(store, "instance_passwords", InstancePassword)

    def get(self, instance_id: str) -> str:
        found = self.repo.get(instance_id)
        return found.value if found is not None else ""

    async def set_once(self, instance_id: str, value: str) -> bool:
        """False when one is already set (the guest posts once; Nova answers 409)."""
        if self.get(instance_id):
            return False
        await self.repo.save(InstancePassword(id=instance_id, value=value))
        return True

    async def clear(self, instance_id: str) -> None:
        if self.repo.get(instance_id) is not None:
            await self.repo.delete(instance_id)

    def forget_op(self, instance_id: str) -> list[Op]:
        return [self.repo.delete_op(instance_id)] if self.repo.get(instance_id) else []
