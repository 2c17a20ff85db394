"""Domains the hypervisor has and our state does not: which of them are ours to remove.

Why there are any: a define can land after its server is gone. A build stuck in libvirt is
cancelled by a delete (the call cannot be taken back, only stopped being waited for); a daemon
killed mid-define restarts while libvirtd is still finishing it. Such a domain would stay
defined (often running) forever, so reconciliation removes it, at start and periodically.

Ownership is proven, never guessed: libvirtd is shared (other appliances' test daemons, an
operator's own VMs), so a domain is ours only when its `<monostack:instance>` metadata names
this appliance (`appliance-id`, a uuid made once and kept in the state store, so every state
directory is its own appliance) and its instance id is its own uuid. Anything else — another
appliance's guests, hand-made domains, domains defined before the appliance id existed — is
reported as an orphan and left untouched.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Iterable

from appliance.compute.driver import DomainSummary
from appliance.state import Store

#: metadata keys every domain we define carries
APPLIANCE_KEY = "appliance-id"
INSTANCE_KEY = "instance-id"
#: where the appliance id is kept (one document)
_TABLE, _DOC = "appliance", "identity"


async def appliance_id(store: Store) -> str:
    """This appliance's id, made on first use and durable from then on."""
    doc = store.get(_TABLE, _DOC)
    if doc is None or not doc.get("id"):
        doc = {"id": str(uuid.uuid4())}
        await store.put(_TABLE, _DOC, doc)
    return str(doc["id"])


@dataclass
class Orphans:
    #: defined by this appliance for an instance it no longer has: remove
    ours: list[DomainSummary] = field(default_factory=list)
    #: not provably ours: report only
    foreign: list[DomainSummary] = field(default_factory=list)


def classify(domains: Iterable[DomainSummary], known_instances: set[str],
             appliance: str) -> Orphans:
    """Split the domains no known instance accounts for. `known_instances` must be read after
    `domains` was listed (an instance's record is stored before its domain is defined, so a
    domain listed first whose record is missing afterwards has no server)."""
    found = Orphans()
    for dom in domains:
        uid = dom.uuid.lower()
        if uid in known_instances:
            continue
        meta = dom.metadata or {}
        if (appliance and meta.get(APPLIANCE_KEY) == appliance
                and str(meta.get(INSTANCE_KEY, "")).lower() == uid):
            found.ours.append(dom)
        else:
            found.foreign.append(dom)
    return found
