"""Who may do what: one table of rules, one `enforce`, pure allow/deny.

Rules name the least role needed:
    "admin"   — the admin role on any project (cloud admin, as Keystone's default policy)
    "member"  — member or admin on the target project
    "reader"  — reader, member or admin on the target project
    "any"     — any authenticated user
A rule ending in ":own" is also satisfied when the target is the caller's own user id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from appliance.errors import Forbidden

ROLE_RANK = {"reader": 1, "member": 2, "admin": 3}


@dataclass(frozen=True)
class AuthContext:
    user_id: str
    user_name: str
    project_id: str | None
    project_name: str | None
    roles: frozenset[str]
    token_id: str
    expires_at: float = 0.0
    #: a system-scoped token (roles held on the whole deployment, not on a project)
    system: bool = False

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def rank(self) -> int:
        return max((ROLE_RANK.get(r, 0) for r in self.roles), default=0)


RULES: dict[str, str] = {
    # identity
    "identity:list_users": "admin",
    "identity:get_user": "admin:own",
    "identity:create_user": "admin",
    "identity:update_user": "admin",
    "identity:delete_user": "admin",
    "identity:list_projects": "admin",
    "identity:get_project": "admin",
    "identity:create_project": "admin",
    "identity:update_project": "admin",
    "identity:delete_project": "admin",
    "identity:list_roles": "reader",
    "identity:create_role": "admin",
    "identity:delete_role": "admin",
    "identity:assign_role": "admin",
    "identity:list_role_assignments": "admin",
    "identity:list_user_projects": "admin:own",
    "identity:create_domain": "admin",
    "identity:update_domain": "admin",
    "identity:delete_domain": "admin",
    "identity:list_services": "admin",
    "identity:list_endpoints": "admin",
    "identity:update_catalog": "admin",
    # compute
    "compute:create_flavor": "admin",
    "compute:update_flavor": "admin",
    "compute:delete_flavor": "admin",
    "compute:get_flavor_access": "admin",
    "compute:update_flavor_access": "admin",
    "compute:list_hypervisors": "admin",
    "compute:get_hypervisor": "admin",
    "compute:get_hypervisor_statistics": "admin",
    "compute:get_hypervisor_usage": "admin",
    "compute:get_server_diagnostics": "admin",
    "compute:update_quotas": "admin",
    "compute:list_flavors": "any",
    "compute:get_flavor": "any",
    "compute:list_keypairs": "any",
    "compute:get_keypair": "any",
    "compute:list_availability_zones": "any",
    "monostack:backup": "admin",
    "monostack:status": "admin",
    "monostack:audit": "admin",
    # object storage (Swift): the account quota is the operator's, as Swift's reseller admin
    "object:set_account_quota": "admin",
    "object:get_auditor": "admin",
    "object:run_auditor": "admin",
    "object:run_expirer": "admin",
    "object:rebuild_index": "admin",
    # image
    "image:publicize_image": "admin",
    "image:set_quota": "admin",
    "image:download_image": "reader",
    # volume
    "volume:update_quota_set": "admin",
    "volume:delete_quota_set": "admin",
    "volume:reset_status": "admin",
    # network: members manage their project's resources; these are the cloud admin's
    "network:create_external_network": "admin",
    "network:create_shared_network": "admin",
    "network:list_quotas": "admin",
    "network:update_quota": "admin",
    "network:delete_quota": "admin",
    "network:list_dhcp_leases": "admin",
}

DEFAULT_READ = "reader"
DEFAULT_WRITE = "member"


def rule_for(action: str) -> str:
    if action in RULES:
        return RULES[action]
    verb = action.rsplit(":", 1)[-1]
    if verb.startswith(("get", "list", "show", "index")):
        return DEFAULT_READ
    return DEFAULT_WRITE


def allowed(ctx: AuthContext, action: str, *, target_project_id: str | None = None,
            target_user_id: str | None = None) -> bool:
    rule = rule_for(action)
    if rule.endswith(":own"):
        if target_user_id is not None and target_user_id == ctx.user_id:
            return True
        rule = rule.split(":", 1)[0]
    if ctx.is_admin:
        return True
    if rule == "admin":
        return False
    if rule == "any":
        return True
    if target_project_id is not None and target_project_id != ctx.project_id:
        return False
    return ctx.rank >= ROLE_RANK[rule]


def owns(ctx: AuthContext, project_id: str | None) -> bool:
    """May the caller see and act on a record of `project_id`: its own project's, or any as a
    cloud admin. The one ownership check (a record the caller may not see is a 404, never a
    403, so its existence does not leak)."""
    return ctx.is_admin or project_id == ctx.project_id


class PublishableNetwork(Protocol):
    """What the visibility rule reads of a network (appliance/network/records.py Network)."""

    @property
    def project_id(self) -> str: ...
    @property
    def shared(self) -> bool: ...
    @property
    def external(self) -> bool: ...


def network_visible(net: PublishableNetwork, project_id: str | None, is_admin: bool) -> bool:
    """May a caller of `project_id` see a network: its own project's, any as a cloud admin,
    and one published to every project (shared, or external: the floating IP pool), as
    Neutron's default policy. An invisible network is a 404, like any record not owned."""
    return is_admin or net.project_id == project_id or net.shared or net.external


def enforce(ctx: AuthContext, action: str, *, target_project_id: str | None = None,
            target_user_id: str | None = None) -> None:
    if not allowed(ctx, action, target_project_id=target_project_id,
                   target_user_id=target_user_id):
        raise Forbidden(f"Policy doesn't allow {action} to be performed.")
