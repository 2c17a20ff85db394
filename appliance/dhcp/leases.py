"""Leases the DHCP server has granted, kept in memory per listener.

The durable copy lives in the state store: every change here is also emitted as a `LeaseEvent`
(the job nova-dhcpbridge did with dnsmasq's dhcp-script), and the network manager writes it.
After a restart the manager hands the stored leases back through `LeaseTable.restore()` so
renewals are reported as renewals and expiry keeps counting from the real grant.

Why an ACK does not wait for its lease record to be durable: the server hands out no pool. What
an ACK promises — this address, for this MAC — is the port's reservation, and the port record was
committed (journal line fsynced) before the server could answer that MAC at all: reservations are
built from the store's records, which change only after their commit is durable. A crash that
loses a lease record therefore loses no promise: after the restart the same MAC is answered with
the same address (a renewal is ACKed and reported as a grant), and no other MAC can be offered it.
What is lost is bookkeeping — when the lease began and when it would expire — which the client's
next renewal re-establishes. So lease records are written off the reply path, many per commit
(network/dataplane_sync.py), and a DHCP exchange never waits for the disk.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum


class LeaseEventKind(StrEnum):
    GRANTED = "granted"
    RENEWED = "renewed"
    RELEASED = "released"
    DECLINED = "declined"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Lease:
    """One client's lease. Plain JSON types so the manager can store it as it is."""

    mac: str  # "aa:bb:cc:dd:ee:ff", lower case
    ip: str
    bridge: str
    granted_at: float  # wall clock (time.time()), when first granted
    expires_at: float  # wall clock
    hostname: str | None = None
    client_id: str | None = None  # hex of option 61, if the client sent one
    renewed_at: float | None = None

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True)
class LeaseEvent:
    kind: LeaseEventKind
    lease: Lease
    at: float


class LeaseTable:
    """Current leases of one listener, keyed by MAC (a reservation gives each MAC one IP)."""

    def __init__(self) -> None:
        self._by_mac: dict[str, Lease] = {}

    def __len__(self) -> int:
        return len(self._by_mac)

    def get(self, mac: str) -> Lease | None:
        return self._by_mac.get(mac)

    def all(self) -> list[Lease]:
        return sorted(self._by_mac.values(), key=lambda lease: lease.mac)

    def grant(
        self,
        mac: str,
        ip: str,
        bridge: str,
        lease_time: int,
        now: float,
        hostname: str | None = None,
        client_id: str | None = None,
    ) -> tuple[Lease, LeaseEventKind]:
        """Grant or extend; RENEWED when the same MAC still holds an unexpired lease on `ip`."""
        current = self._by_mac.get(mac)
        if current is not None and current.ip == ip and not current.expired(now):
            lease = replace(
                current, expires_at=now + lease_time, renewed_at=now, hostname=hostname, client_id=client_id
            )
            kind = LeaseEventKind.RENEWED
        else:
            lease = Lease(
                mac=mac, ip=ip, bridge=bridge, granted_at=now, expires_at=now + lease_time,
                hostname=hostname, client_id=client_id,
            )
            kind = LeaseEventKind.GRANTED
        self._by_mac[mac] = lease
        return lease, kind

    def remove(self, mac: str) -> Lease | None:
        return self._by_mac.pop(mac, None)

    def expire_due(self, now: float) -> list[Lease]:
        """Remove and return every lease whose time has passed."""
        due = [lease for lease in self._by_mac.values() if lease.expired(now)]
        for lease in due:
            del self._by_mac[lease.mac]
        return due

    def restore(self, leases: Iterable[Lease]) -> None:
        """Load leases recorded before a restart (expired ones are reported at the next check)."""
        for lease in leases:
            self._by_mac[lease.mac] = lease
