"""Instance host names: what a guest's DHCP lease, config drive and metadata call it."""
from __future__ import annotations

import re


def hostname_of(name: str) -> str:
    """A server name made DNS-safe (Nova's sanitize_hostname, in short)."""
    h = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63]
    return h or "server"
