"""A small, stable ring: which devices hold the replicas of an object.

Swift's ring maps md5(path) to one of 2**part_power partitions and keeps a table
partition → devices, rebalanced by a separate builder.  That machinery exists so that
thousands of servers agree on placement while devices come and go with minimal movement.
On one host with a handful of directories we get the same two properties — every
process computes the same placement, and adding a device moves only the objects that
belong on it — from *rendezvous (highest-random-weight) hashing*, without a table:

    score(device, object) = md5(device.id + "\\0" + object_hash)
    replicas               = the `replicas` devices with the highest scores

Why rendezvous:
- stable: the placement is a pure function of (device ids, object hash); no state file to
  build, distribute, or lose;
- minimal movement: adding a device D changes an object's replica set only where D scores
  among its top N, i.e. ≈ N/(devices+1) of objects, and those objects move *onto* D only;
  removing a device moves only the objects that were on it;
- handoffs for free: the full ranking (primaries first, then the rest) is the order in
  which to look for a replica that was written elsewhere while the ring was different.

Device identity is its ``id`` (default: the resolved directory path), so renaming a mount
point is a ring change; pass explicit ids to keep placement across a move.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Device:
    """One storage directory (normally its own disk)."""

    id: str
    path: Path


def default_replicas(device_count: int) -> int:
    """Three replicas when there are at least three devices, else one per device."""
    return 3 if device_count >= 3 else device_count


def quorum_size(replicas: int) -> int:
    """Majority of replicas: a PUT is acknowledged once this many are durable."""
    return replicas // 2 + 1


class Ring:
    """Places objects (by their hex hash) on `replicas` distinct devices."""

    def __init__(self, devices: list[Path] | list[Device], replicas: int | None = None) -> None:
        devs: list[Device] = []
        for d in devices:
            if isinstance(d, Device):
                devs.append(d)
            else:
                p = Path(d).resolve()
                devs.append(Device(id=str(p), path=p))
        if not devs:
            raise ValueError("a ring needs at least one device")
        ids = [d.id for d in devs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate device ids in {ids}")
        paths = [d.path for d in devs]
        if len(set(paths)) != len(paths):
            raise ValueError(f"duplicate device paths in {paths}")
        n = default_replicas(len(devs)) if replicas is None else replicas
        if not 1 <= n <= len(devs):
            raise ValueError(f"replicas must be between 1 and {len(devs)} (devices), got {n}")
        self.devices: tuple[Device, ...] = tuple(devs)
        self.replicas = n
        self.quorum = quorum_size(n)
        self._by_id = {d.id: d for d in devs}

    def device(self, device_id: str) -> Device:
        return self._by_id[device_id]

    def ranking(self, object_hash: str) -> list[Device]:
        """All devices, best first: the first `replicas` are primaries, the rest handoffs."""
        key = object_hash.encode("ascii")

        def score(dev: Device) -> bytes:
            return hashlib.md5(dev.id.encode("utf-8") + b"\0" + key).digest()

        return sorted(self.devices, key=score, reverse=True)

    def primaries(self, object_hash: str) -> list[Device]:
        """The `replicas` distinct devices that hold this object."""
        return self.ranking(object_hash)[: self.replicas]
