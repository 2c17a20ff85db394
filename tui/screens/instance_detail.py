"""Instance detail (enter on a row): addresses, volumes, security groups, fault, the server's
actions (newest first, a failed one with the step that failed and why), console log tail, and
sparklines of CPU/memory/disk/network from the server's diagnostics when offered.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Log, Static

from appliance.errors import MonostackError
from tui.cloud import Server, ServerAction, ServerStats
from tui.screens.base import CloudScreen
from tui.screens.instances import SERVER_BINDINGS, ServerActions
from tui.widgets.badge import status_text
from tui.widgets.spark import Spark


@dataclass
class Detail:
    server: Server
    volumes: list[str] = field(default_factory=list)
    console: str = ""
    stats: ServerStats | None = None
    actions: list[ServerAction] = field(default_factory=list)
    user_names: dict[str, str] = field(default_factory=dict)


#: Actions shown with their steps (one GET each): enough to fill the panel at 160×48.
SHOWN_ACTIONS = 6


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
        self.history: dict[str, deque[float]] = {k: deque(maxlen=200)
                                                 for k in ("cpu", "mem", "disk", "net")}
        self._last: dict[str, float] = {}

    def compose_body(self) -> ComposeResult:
        with Vertical(id="detail"):
            yield Static(self.name_hint, id="detail-title", classes="toolbar-title")
            with Horizontal(id="detail-top"):
                yield Static("loading…", id="detail-facts", classes="panel")
                with Vertical(id="detail-sparks", classes="panel") as box:
                    box.border_title = "Activity"
                    for key, label in (("cpu", "CPU"), ("mem", "Mem"), ("disk", "Disk"),
                                       ("net", "Net")):
                        with Horizontal(classes="spark-row"):
                            yield Static(label, classes="spark-label")
                            yield Spark(scale=100.0 if key == "cpu" else None,
                                        floor=1024.0 if key in ("disk", "net") else 1.0,
                                        id=f"spark-{key}")
                            yield Static("", id=f"now-{key}", classes="spark-now")
            yield Static("", id="detail-fault")
            actions = Static("", id="detail-actions", classes="panel")
            actions.border_title = "Actions"
            yield actions
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
        detail.actions = await self._actions()
        if c.is_admin and detail.actions:
            detail.user_names = {u.id: u.name for u in await c._quiet(c.users, [])}
        if c.is_admin and detail.server.status == "ACTIVE":
            detail.stats = await c._quiet(lambda: c.server_stats(self.server_id), None)
        return detail

    async def _actions(self) -> list[ServerAction]:
        """The newest actions with their steps, so each row has a result and a failed one its
        reason; a cloud without os-instance-actions just shows none."""
        c = self.cloud
        listed = await c._quiet(lambda: c.server_actions(self.server_id, SHOWN_ACTIONS), [])

        async def detailed(a: ServerAction) -> ServerAction:
            return await c._quiet(lambda: c.server_action_detail(self.server_id, a.request_id), a)
        return list(await asyncio.gather(*(detailed(a) for a in listed[:SHOWN_ACTIONS])))

    def _show_actions(self, d: Detail) -> None:
        panel = self.query_one("#detail-actions", Static)
        panel.display = bool(d.actions)
        if not d.actions:
            return
        table = Table.grid(padding=(0, 2))
        for _ in range(4):
            table.add_column(no_wrap=True)
        failed: ServerAction | None = None
        for a in d.actions:
            result = a.result
            style = {"Error": "bold red", "Success": "green"}.get(result, "yellow")
            who = d.user_names.get(a.user_id) or a.user_id[:8] or "—"
            table.add_row(Text(a.action, style="bold"), self.monostack.clock.ago(a.start_time),
                          who, Text(result, style=style))
            if result == "Error" and failed is None:
                failed = a
        if failed is None:
            panel.update(table)
            return
        step = failed.failed_step
        why = Text(f"{failed.action} failed", style="bold red")
        if step is not None:
            why += Text(f" at {step.event}: ", style="red") + Text(step.details or "(no reason given)")
        panel.update(Group(table, why))

    def _show_title(self, s: Server) -> None:
        busy = ""
        if s.task_state:
            busy = f"  {s.task_state}" + (f" {s.progress}%" if 0 < s.progress < 100 else "")
        self.query_one("#detail-title", Static).update(
            Text(s.name, style="bold") + Text("  ") + status_text(s.status)
            + Text(busy, style="yellow"))

    def show(self, d: Detail) -> None:
        s = self.server = d.server
        self._show_title(s)
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
        self._show_actions(d)
        log = self.query_one("#console-log", Log)
        log.clear()
        log.write_lines((d.console or "(no console output)").splitlines()[-30:])
        if d.stats is not None:
            self._sample(d.stats)

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(self.monostack.refresh_seconds / 7.5, self._poll_stats)  # 2 s by default

    @work(exclusive=True, group="sample", exit_on_error=False)
    async def _poll_stats(self) -> None:
        """Between reloads, only the counters: the sparklines move every couple of seconds.
        While an action runs, the server itself instead: its progress moves in the title,
        and the whole screen reloads once the action is over."""
        s = self.server
        if self.is_current and s and s.task_state:
            try:
                now = await self.cloud.server(self.server_id)
            except MonostackError:
                return
            self.server = now
            if now.task_state:
                self._show_title(now)
            else:
                self.reload()
            return
        if not (self.is_current and s and s.status == "ACTIVE" and self.cloud.is_admin):
            return
        try:
            self._sample(await self.cloud.server_stats(self.server_id))
        except MonostackError:
            return

    def _sample(self, st: ServerStats) -> None:
        """Counters are cumulative: plot per-second rates (CPU as % of one vCPU)."""
        now = time.monotonic()
        counters = {"cpu": float(st.cpu_time_ns), "disk": float(st.disk_bytes),
                    "net": float(st.net_bytes)}
        last_at = self._last.get("at")
        if last_at is not None and now > last_at:
            dt = now - last_at
            for key, value in counters.items():
                rate = max(value - self._last[key], 0.0) / dt
                self.history[key].append(rate / 1e7 if key == "cpu" else rate)
        self.history["mem"].append(float(st.memory_used_mb))
        self.query_one("#spark-mem", Spark).scale = float(st.memory_max_mb or 0) or None
        self._last = {**counters, "at": now}
        for key in self.history:
            self.query_one(f"#spark-{key}", Spark).set_samples(self.history[key])
        cpu = self.history["cpu"][-1] if self.history["cpu"] else 0.0
        self.query_one("#now-cpu", Static).update(f"{cpu:3.0f}%")
        self.query_one("#now-mem", Static).update(f"{st.memory_used_mb}M")
        for key in ("disk", "net"):
            h = self.history[key]
            self.query_one(f"#now-{key}", Static).update(_rate(h[-1]) if h else "—")


def _rate(bps: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if bps < 1000 or unit == "G":
            return f"{bps:.0f}{unit}"
        bps /= 1024
    return ""
