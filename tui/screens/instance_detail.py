"""Instance detail (enter on a row): addresses, volumes, security groups, fault, console log
tail, and sparklines of CPU/memory/disk/network from the server's diagnostics when offered.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Log, Sparkline, Static

from appliance.errors import MonostackError
from tui.cloud import Server
from tui.screens.base import CloudScreen
from tui.screens.instances import SERVER_BINDINGS, ServerActions
from tui.widgets.badge import status_text


@dataclass
class Detail:
    server: Server
    volumes: list[str] = field(default_factory=list)
    console: str = ""
    diagnostics: dict = field(default_factory=dict)


def _sum(diag: dict, test) -> float:
    return float(sum(v for k, v in diag.items() if isinstance(v, (int, float)) and test(k)))


class InstanceDetailScreen(ServerActions, CloudScreen):
    TITLE = "Instance"
    SERVICE = "compute"
    RESOURCE_TYPES = frozenset({"instance", "server", "volume"})
    BINDINGS = [Binding("escape,backspace", "back", "Back"), *SERVER_BINDINGS]

    def __init__(self, server_id: str, name: str = "") -> None:
        super().__init__()
        self.server_id = server_id
        self.name_hint = name
        self.server: Server | None = None
        self.history: dict[str, deque[float]] = {k: deque([0.0, 0.0], maxlen=40)
                                                 for k in ("cpu", "mem", "disk", "net")}
        self._last: dict[str, float] = {}

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(self.name_hint, id="detail-title", classes="toolbar-title")
            with Horizontal(id="detail-top"):
                yield Static("loading…", id="detail-facts", classes="panel")
                with Vertical(id="detail-sparks", classes="panel") as box:
                    box.border_title = "Activity"
                    for key, label in (("cpu", "CPU "), ("mem", "Mem "), ("disk", "Disk"),
                                       ("net", "Net ")):
                        with Horizontal(classes="spark-row"):
                            yield Static(label, classes="spark-label")
                            yield Sparkline([0, 0], id=f"spark-{key}")
            yield Static("", id="detail-fault")
            log = Log(id="console-log", max_lines=200, auto_scroll=True)
            log.border_title = "Console log (tail)"
            yield log

    def current_server(self) -> Server | None:
        return self.server

    def action_back(self) -> None:
        self.app.pop_screen()

    def after_delete(self, server: Server) -> None:
        self.app.pop_screen()

    async def fetch(self) -> Detail:
        c = self.cloud
        detail = Detail(await c.server(self.server_id))
        vols = await c._quiet(lambda: c.server_volumes(self.server_id), [])
        names = {}
        if vols and c.has("volume"):
            names = {v.id: v.name for v in await c._quiet(c.volumes, [])}
        detail.volumes = [f"{names.get(a.get('volumeId'), '') or a.get('volumeId', '')[:8]}"
                          f" on {a.get('device') or '?'}" for a in vols]
        try:
            detail.console = await c.console_log(self.server_id, 30)
        except MonostackError:
            detail.console = ""
        try:
            body = await c.client.get(f"/compute/v2.1/servers/{self.server_id}/diagnostics")
            detail.diagnostics = body if isinstance(body, dict) else {}
        except MonostackError:
            detail.diagnostics = {}
        return detail

    def show(self, d: Detail) -> None:
        s = self.server = d.server
        self.query_one("#detail-title", Static).update(
            Text(s.name, style="bold") + Text("  ") + status_text(s.status)
            + Text(f"  {s.task_state}" if s.task_state else "", style="yellow"))
        facts = Table.grid(padding=(0, 1))
        facts.add_column(style="bold", no_wrap=True)
        facts.add_column()
        facts.add_row("Flavor", s.flavor)
        facts.add_row("Image", s.image)
        nets = s.raw.get("addresses") or {}
        addr = "\n".join(f"{net}: " + ", ".join(a.get("addr", "") for a in items)
                         for net, items in nets.items()) or "—"
        facts.add_row("Addresses", addr)
        facts.add_row("Volumes", "\n".join(d.volumes) or "—")
        facts.add_row("Sec. groups", ", ".join(s.security_groups) or "—")
        facts.add_row("Key pair", s.key_name or "—")
        facts.add_row("Locked", "yes" if s.locked else "no")
        self.query_one("#detail-facts", Static).update(facts)
        fault = self.query_one("#detail-fault", Static)
        fault.update(Text(f"Fault: {s.fault}", style="bold red") if s.fault else "")
        fault.display = bool(s.fault)
        log = self.query_one("#console-log", Log)
        log.clear()
        log.write_lines((d.console or "(no console output)").splitlines()[-30:])
        self._sample(d.diagnostics)

    def _sample(self, diag: dict) -> None:
        if not diag:
            return
        now = {
            "cpu": _sum(diag, lambda k: k.startswith("cpu") and k.endswith("_time")),
            "mem": float(diag.get("memory-actual") or diag.get("memory") or 0)
            - float(diag.get("memory-unused") or 0),
            "disk": _sum(diag, lambda k: k.endswith(("_read", "_write"))),
            "net": _sum(diag, lambda k: k.endswith(("_rx", "_tx"))),
        }
        for key, value in now.items():
            if key == "mem":
                self.history[key].append(value)
            elif key in self._last:
                self.history[key].append(max(value - self._last[key], 0.0))
            self._last[key] = value
            self.query_one(f"#spark-{key}", Sparkline).data = list(self.history[key])
