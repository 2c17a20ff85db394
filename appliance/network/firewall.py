"""nftables in the data-plane namespace: load JSON rulesets atomically.

`nft -j -f -` applies a whole JSON document as one kernel transaction, so a ruleset that flushes
our table and re-adds every rule is never seen half-applied (a restart rebuilds it from state the
same way). The `nft` child joins the namespace itself (see nsexec), so the host's own rules are
never touched. Rule generation (anti-spoofing, security groups, NAT) builds on top of this.
"""
from __future__ import annotations

import json
from typing import Any

from appliance.errors import MonostackError
from appliance.network.nsexec import run_in_namespace

NFT = "nft"


class FirewallError(MonostackError):
    """nft refused a ruleset; the message carries nft's own explanation."""


async def apply_ruleset(namespace: str, json_ruleset: dict[str, Any] | str) -> None:
    """Load `json_ruleset` ({"nftables": [...]}) into `namespace` in one transaction.

    Either every command in it takes effect or none does (nft's batch semantics).
    Raises NotFound if the namespace does not exist, FirewallError if nft rejects it.
    """
    doc = json_ruleset if isinstance(json_ruleset, str) else json.dumps(json_ruleset)
    result = await run_in_namespace(namespace, [NFT, "-j", "-f", "-"], stdin=doc.encode())
    if result.returncode != 0:
        raise FirewallError(
            f"nft rejected the ruleset in {namespace}: {result.stderr.decode(errors='replace').strip()}"
        )


async def list_ruleset(namespace: str) -> dict[str, Any]:
    """The namespace's current ruleset as nft JSON (for reconciliation and tests)."""
    result = await run_in_namespace(namespace, [NFT, "-j", "list", "ruleset"])
    if result.returncode != 0:
        raise FirewallError(f"nft list ruleset failed in {namespace}: {result.stderr.decode(errors='replace').strip()}")
    return json.loads(result.stdout or b'{"nftables": []}')
