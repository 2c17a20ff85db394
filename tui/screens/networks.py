"""Networks (5): networks, subnets, ports, security groups and their rules, routers, floating
IPs and the DHCP leases table — one tab each, `n` creates and `d` deletes in the active tab.

Each tab is a `NeutronTab` row in a table of specs (collection, columns, create form), so the
eight tabs share one loader and one set of actions.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, TabbedContent, TabPane

from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.form import Field, FormDialog
from tui.screens.base import TabbedScreen
from tui.widgets.badge import status_text
from tui.widgets.table import selected_key, sync_rows

Row = dict[str, Any]
Names = dict[str, str]


def _fixed_ips(p: Row) -> str:
    return ", ".join(ip.get("ip_address", "") for ip in p.get("fixed_ips") or []) or "—"


def _rule_ports(r: Row) -> str:
    lo, hi = r.get("port_range_min"), r.get("port_range_max")
    if lo is None:
        return "any"
    return str(lo) if lo == hi else f"{lo}-{hi}"


@dataclass
class NeutronTab:
    id: str
    label: str
    collection: str
    key: str
    columns: list[tuple[str, Callable[[Row, Names], Any]]]
    deletable: bool = True
    create_fields: Callable[["NetworksScreen"], list[Field]] | None = None
    create_body: Callable[[dict], Row] | None = None
    rows: list[Row] = field(default_factory=list)


def _name(r: Row, _: Names) -> str:
    return r.get("name") or "—"


def _port_name(r: Row, n: Names) -> str:
    """A port is known by its name, else by what it plugs in (the server's name)."""
    if r.get("name"):
        return r["name"]
    device = n.get(r.get("device_id") or "")
    owner = str(r.get("device_owner") or "")
    if device:
        return f"({device})"
    return f"({owner.split(':')[-1]})" if owner else "—"


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(x) if x.isdigit() else 0 for x in ip.split("."))


#: Rows sort by what an operator reads, never by the daemon's random ids.
SORT_KEYS: dict[str, Callable[[Row], Any]] = {
    "ports": lambda r: (_ip_key((r.get("fixed_ips") or [{}])[0].get("ip_address", "")),
                        r.get("mac_address", "")),
    "security-group-rules": lambda r: (r.get("_group", ""), r.get("direction", ""),
                                       r.get("ethertype", ""), r.get("protocol") or "",
                                       r.get("port_range_min") or 0),
    "floatingips": lambda r: _ip_key(r.get("floating_ip_address", "")),
    "leases": lambda r: _ip_key(r.get("ip", "")),
}


TABS: list[NeutronTab] = [
    NeutronTab("networks", "Networks", "networks", "network", [
        ("Name", _name), ("Status", lambda r, n: status_text(r.get("status") or "")),
        ("Subnets", lambda r, n: ", ".join(n.get(s, s[:8]) for s in r.get("subnets") or []) or "—"),
        ("External", lambda r, n: "yes" if r.get("router:external") else ""),
        ("Shared", lambda r, n: "yes" if r.get("shared") else "")],
        create_fields=lambda s: [Field("name", "Name", required=True),
                                 Field("external", "External (floating IP pool)", kind="checkbox")],
        create_body=lambda v: {"name": v["name"], "admin_state_up": True,
                               **({"router:external": True} if v["external"] else {})}),
    NeutronTab("subnets", "Subnets", "subnets", "subnet", [
        ("Name", _name), ("Network", lambda r, n: n.get(r.get("network_id", ""), "")),
        ("CIDR", lambda r, n: r.get("cidr", "")), ("Gateway", lambda r, n: r.get("gateway_ip") or "—"),
        ("DHCP", lambda r, n: "yes" if r.get("enable_dhcp", True) else "no")],
        create_fields=lambda s: [
            Field("name", "Name", required=True),
            Field("network_id", "Network", kind="select", required=True,
                  options=s.options("networks")),
            Field("cidr", "CIDR", required=True, placeholder="10.0.1.0/24")],
        create_body=lambda v: {"name": v["name"], "network_id": v["network_id"],
                               "ip_version": 4, "cidr": v["cidr"]}),
    NeutronTab("ports", "Ports", "ports", "port", [
        ("Name", _port_name), ("Network", lambda r, n: n.get(r.get("network_id", ""), "")),
        ("Fixed IPs", lambda r, n: _fixed_ips(r)), ("MAC", lambda r, n: r.get("mac_address", "")),
        ("Owner", lambda r, n: r.get("device_owner") or "—"),
        ("Status", lambda r, n: status_text(r.get("status") or ""))],
        create_fields=lambda s: [
            Field("name", "Name", required=True),
            Field("network_id", "Network", kind="select", required=True,
                  options=s.options("networks"))],
        create_body=lambda v: {"name": v["name"], "network_id": v["network_id"],
                               "admin_state_up": True}),
    NeutronTab("security-groups", "Groups", "security-groups", "security_group", [
        ("Name", _name), ("Description", lambda r, n: r.get("description") or ""),
        ("Rules", lambda r, n: str(len(r.get("security_group_rules") or [])))],
        create_fields=lambda s: [Field("name", "Name", required=True),
                                 Field("description", "Description")],
        create_body=lambda v: {"name": v["name"], "description": v["description"] or v["name"]}),
    NeutronTab("security-group-rules", "Rules", "security-group-rules", "security_group_rule", [
        ("Group", lambda r, n: n.get(r.get("security_group_id", ""), "")),
        ("Direction", lambda r, n: r.get("direction", "")),
        ("Ether", lambda r, n: r.get("ethertype", "")),
        ("Protocol", lambda r, n: r.get("protocol") or "any"),
        ("Ports", lambda r, n: _rule_ports(r)),
        ("Remote", lambda r, n: r.get("remote_ip_prefix")
         or n.get(r.get("remote_group_id") or "", "") or "any")],
        create_fields=lambda s: [
            Field("security_group_id", "Security group", kind="select", required=True,
                  options=s.options("security-groups")),
            Field("direction", "Direction", kind="select", default="ingress", required=True,
                  options=[("ingress", "ingress"), ("egress", "egress")]),
            Field("protocol", "Protocol", kind="select", default="tcp",
                  options=[(p, p) for p in ("tcp", "udp", "icmp")]),
            Field("port_min", "Port from", kind="int"),
            Field("port_max", "Port to (default: same)", kind="int"),
            Field("remote_ip_prefix", "Remote CIDR", default="0.0.0.0/0")],
        create_body=lambda v: {
            "security_group_id": v["security_group_id"], "direction": v["direction"],
            "ethertype": "IPv4", "protocol": v["protocol"],
            "port_range_min": v["port_min"], "port_range_max": v["port_max"] or v["port_min"],
            "remote_ip_prefix": v["remote_ip_prefix"] or None}),
    NeutronTab("routers", "Routers", "routers", "router", [
        ("Name", _name), ("Status", lambda r, n: status_text(r.get("status") or "")),
        ("External gateway", lambda r, n: n.get(((r.get("external_gateway_info") or {})
                                                  .get("network_id") or ""), "—"))],
        create_fields=lambda s: [Field("name", "Name", required=True)],
        create_body=lambda v: {"name": v["name"], "admin_state_up": True}),
    NeutronTab("floatingips", "FIPs", "floatingips", "floatingip", [
        ("Address", lambda r, n: r.get("floating_ip_address", "")),
        ("Fixed IP", lambda r, n: r.get("fixed_ip_address") or "—"),
        ("Pool", lambda r, n: n.get(r.get("floating_network_id", ""), "")),
        ("Status", lambda r, n: status_text(r.get("status") or ""))],
        create_fields=lambda s: [Field("floating_network_id", "Pool (external network)",
                                       kind="select", required=True,
                                       options=s.options("networks", external=True))],
        create_body=lambda v: {"floating_network_id": v["floating_network_id"]}),
    NeutronTab("leases", "Leases", "", "", [
        ("IP", lambda r, n: r.get("ip", "")),
        ("MAC", lambda r, n: r.get("mac", "")),
        ("Host", lambda r, n: r.get("hostname") or n.get(r.get("_device") or "", "") or "—"),
        ("Network", lambda r, n: n.get(r.get("network_id", ""), "")),
        ("State", lambda r, n: status_text("active" if r.get("state") == "active"
                                           else r.get("state") or "")),
        ("Expires", lambda r, n: r.get("_expires", "—"))], deletable=False),
]


class NetworksScreen(TabbedScreen):
    TITLE = "Networks"
    SERVICE = "network"
    RESOURCE_TYPES = frozenset({"network", "subnet", "port", "security_group", "router",
                                "floatingip", "lease", "instance", "server"})
    BINDINGS = [*TabbedScreen.TAB_BINDINGS, Binding("n", "create", "New"),
                Binding("d", "delete", "Delete")]

    def __init__(self) -> None:
        super().__init__()
        self.tabs = {t.id: NeutronTab(**{**t.__dict__, "rows": []}) for t in TABS}
        self.names: Names = {}

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="network-tabs"):
            for t in self.tabs.values():
                with TabPane(t.label, id=f"tab-{t.id}"):
                    yield DataTable(id=f"t-{t.id}", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for t in self.tabs.values():
            self.query_one(f"#t-{t.id}", DataTable).add_columns(*[c for c, _ in t.columns])
        super().on_mount()
        self.query(DataTable).first().focus()

    async def fetch(self) -> dict[str, list[Row]]:
        c = self.cloud
        out: dict[str, list[Row]] = {}
        if c.has("compute"):
            out["_servers"] = [{"id": s.id, "name": s.name}
                               for s in await c._quiet(c.servers, [])]
        for t in self.tabs.values():
            if t.id == "leases":
                out[t.id] = await c._quiet(c.dhcp_leases, [])
            elif t.id == "networks":
                out[t.id] = await c.neutron(t.collection)  # the one that must work
            else:
                out[t.id] = await c._quiet(lambda t=t: c.neutron(t.collection), [])
        return out

    def show(self, data: dict[str, list[Row]]) -> None:
        names: Names = {}
        for rows in data.values():
            for r in rows:
                if r.get("id") and r.get("name"):
                    names[r["id"]] = r["name"]
        self.names = names
        clock = self.monostack.clock
        ports = {p.get("id"): p for p in data.get("ports", [])}
        for lease in data.get("leases", []):
            lease["_expires"] = clock.until(lease.get("expires_at")) \
                if lease.get("state") == "active" else "—"
            lease["_device"] = (ports.get(lease.get("port_id")) or {}).get("device_id", "")
        for rule in data.get("security-group-rules", []):
            rule["_group"] = names.get(rule.get("security_group_id", ""), "")
        for t in self.tabs.values():
            key = SORT_KEYS.get(t.id, lambda r: (r.get("name") or "", r.get("id") or ""))
            t.rows = sorted(data.get(t.id, []), key=key)
            sync_rows(self.query_one(f"#t-{t.id}", DataTable), [
                (r.get("id") or f"{t.id}-{i}", tuple(fn(r, names) for _, fn in t.columns))
                for i, r in enumerate(t.rows)])

    def options(self, tab: str, external: bool = False) -> list[tuple[str, str]]:
        rows = self.tabs[tab].rows
        if external:
            rows = [r for r in rows if r.get("router:external")]
        return [(r.get("name") or r["id"][:8], r["id"]) for r in rows]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide New/Delete on tabs that have no such thing (the DHCP leases are the DHCP
        server's, not the operator's to make or remove)."""
        if action not in ("create", "delete") or not self.is_mounted:
            return True
        try:
            t = self.active
        except Exception:  # before the tabs exist
            return True
        if action == "create":
            return t.create_fields is not None
        return t.deletable

    @property
    def active(self) -> NeutronTab:
        tab = self.query_one("#network-tabs", TabbedContent).active or "tab-networks"
        return self.tabs[tab[4:]]

    def action_create(self) -> None:
        t = self.active
        if t.create_fields is None or t.create_body is None:
            self.notify(f"{t.label} cannot be created here.", severity="warning")
            return
        body = t.create_body

        def chosen(values: dict | None) -> None:
            if values:
                self.call(lambda: self.cloud.neutron_create(t.collection, t.key, body(values)),
                          done=f"{t.label}: created.")
        self.app.push_screen(FormDialog(f"New {t.key.replace('_', ' ')}", t.create_fields(self)),
                             chosen)

    def action_delete(self) -> None:
        t = self.active
        key = selected_key(self.query_one(f"#t-{t.id}", DataTable))
        if not t.deletable or not self.require_selection(key):
            return
        label = self.names.get(key or "", (key or "")[:8])
        self.app.push_screen(
            ConfirmDialog(f"Delete {t.key.replace('_', ' ')} {label}?"),
            lambda ok: ok and self.call(lambda: self.cloud.neutron_delete(t.collection, key),
                                        done="Deleted."))
