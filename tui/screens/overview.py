"""Overview (1): host capacity vs allocation ratio, instances by state, storage, recent events.

Each panel degrades on its own: a non-admin sees 'host statistics need the admin role', a
missing compute service shows 'compute not available', and the rest still fills in.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Sparkline, Static

from appliance.errors import MonostackError
from tui.cloud import CloudEvent, Hypervisor, Server, Volume, unavailable
from tui.screens.base import CloudScreen
from tui.widgets.badge import status_text
from tui.widgets.table import sync_rows

STATE_ORDER = ["ACTIVE", "BUILD", "SHUTOFF", "PAUSED", "SUSPENDED", "RESCUE", "ERROR"]


@dataclass
class OverviewData:
    hypervisors: list[Hypervisor] | None = None
    host_note: str = ""
    servers: list[Server] | None = None
    servers_note: str = ""
    volumes: list[Volume] | None = None
    images: int | None = None
    containers: int | None = None
    events: list[CloudEvent] = field(default_factory=list)


def bar(used: float, total: float, width: int = 12) -> Text:
    frac = 0.0 if total <= 0 else min(used / total, 1.0)
    full = round(frac * width)
    style = "green" if frac < 0.7 else "yellow" if frac < 0.9 else "red"
    return Text("█" * full, style=style) + Text("░" * (width - full), style="dim")


def human_gib(mb: float) -> str:
    return f"{mb / 1024:.1f}" if mb < 10240 else f"{mb / 1024:.0f}"


class OverviewScreen(CloudScreen):
    TITLE = "Overview"
    RESOURCE_TYPES = frozenset({"event"})
    PALETTE_HINT = False
    # The overview is where an operator lands: its footer shows where the number keys go.
    BINDINGS = [Binding(str(i), f"app.switch_screen('{mode}')", label)
                for i, (mode, label) in enumerate(
                    [("instances", "Instances"), ("images", "Images"), ("volumes", "Volumes"),
                     ("networks", "Networks"), ("objects", "Objects"), ("identity", "Identity"),
                     ("events", "Events")], start=2)]

    def __init__(self) -> None:
        super().__init__()
        self.cpu_history: deque[float] = deque([0.0] * 2, maxlen=40)
        self.mem_history: deque[float] = deque([0.0] * 2, maxlen=40)

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="overview-top"):
            with Vertical(id="host-panel", classes="panel") as host:
                host.border_title = "Host"
                yield Static("loading…", id="host-bars")
                with Horizontal(classes="spark-row"):
                    yield Static("CPU ", classes="spark-label")
                    yield Sparkline(list(self.cpu_history), id="cpu-spark")
                with Horizontal(classes="spark-row"):
                    yield Static("Mem ", classes="spark-label")
                    yield Sparkline(list(self.mem_history), id="mem-spark")
            with Vertical(id="side-panels"):
                with Vertical(id="instances-panel", classes="panel") as inst:
                    inst.border_title = "Instances"
                    yield Static("loading…", id="instance-counts")
                with Vertical(id="storage-panel", classes="panel") as sto:
                    sto.border_title = "Storage"
                    yield Static("loading…", id="storage")
        with Vertical(id="events-panel", classes="panel") as ev:
            ev.border_title = "Recent events"
            yield DataTable(id="recent-events", cursor_type="none", show_header=False)

    def on_mount(self) -> None:
        table = self.query_one("#recent-events", DataTable)
        table.add_column("when", key="when", width=7)
        table.add_column("what", key="what", width=18)
        table.add_column("kind", key="kind")
        table.add_column("message", key="message")
        super().on_mount()

    async def fetch(self) -> OverviewData:
        c = self.cloud
        data = OverviewData()
        if not c.has("compute"):
            data.host_note = data.servers_note = "Compute (Nova) is not available."
        else:
            if c.is_admin:
                try:
                    data.hypervisors = await c.hypervisors()
                except MonostackError as exc:
                    data.host_note = str(exc)
            else:
                data.host_note = "Host statistics need the admin role."
            try:
                data.servers = await c.servers()
            except MonostackError as exc:
                data.servers_note = "Compute is not available." if unavailable(exc) else str(exc)
        if c.has("volume"):
            try:
                data.volumes = await c.volumes()
            except MonostackError:
                pass
        if c.has("image"):
            try:
                data.images = len(await c.images())
            except MonostackError:
                pass
        if c.has("object"):
            try:
                data.containers = len(await c.containers())
            except MonostackError:
                pass
        data.events = await c.events(12)
        return data

    def show(self, data: OverviewData) -> None:
        self._show_host(data)
        self._show_instances(data)
        self._show_storage(data)
        clock = self.monostack.clock
        names = {s.id: s.name for s in data.servers or []}
        rows = []
        for e in data.events:
            style = "bold red" if e.failed else ""
            rows.append((e.id, (clock.ago(e.time), names.get(e.resource_id, e.resource_name),
                                Text(e.kind, style=style or "cyan"),
                                Text(e.message, style=style))))
        if not rows:
            rows = [("none", ("", "", Text("no events yet", style="dim"), ""))]
        sync_rows(self.query_one("#recent-events", DataTable), rows)

    def _show_host(self, data: OverviewData) -> None:
        target = self.query_one("#host-bars", Static)
        self.query_one("#host-panel").set_class(not data.hypervisors, "-no-host")
        if not data.hypervisors:
            target.update(Text(data.host_note or "No hypervisor reported.", style="dim"))
            return
        h = data.hypervisors[0]
        grid = Table.grid(padding=(0, 1))
        for _ in range(3):
            grid.add_column(no_wrap=True)
        cap_cpu = h.vcpu_limit
        cap_ram = h.memory_mb * h.ram_ratio
        cap_disk = h.local_gb * h.disk_ratio
        grid.add_row("vCPU", bar(h.vcpus_used, cap_cpu),
                     f"{h.vcpus_used}/{cap_cpu:g} (×{h.cpu_ratio:.3g})")
        grid.add_row("RAM ", bar(h.memory_mb_used, cap_ram),
                     f"{human_gib(h.memory_mb_used)}/{human_gib(cap_ram)} GiB")
        grid.add_row("Disk", bar(h.local_gb_used, cap_disk),
                     f"{h.local_gb_used}/{cap_disk:g} GiB")
        target.update(grid)
        cpu = h.cpu_percent if h.cpu_percent is not None else (
            100.0 * h.vcpus_used / cap_cpu if cap_cpu else 0.0)
        mem = 100.0 * h.memory_mb_used / h.memory_mb if h.memory_mb else 0.0
        self.cpu_history.append(cpu)
        self.mem_history.append(mem)
        self.query_one("#cpu-spark", Sparkline).data = list(self.cpu_history)
        self.query_one("#mem-spark", Sparkline).data = list(self.mem_history)

    def _show_instances(self, data: OverviewData) -> None:
        target = self.query_one("#instance-counts", Static)
        if data.servers is None:
            target.update(Text(data.servers_note or "—", style="dim"))
            return
        counts = Counter(s.status for s in data.servers)
        text = Text()
        order = STATE_ORDER + sorted(set(counts) - set(STATE_ORDER))
        for status in order:
            if counts.get(status):
                text += status_text(status) + Text(f" {counts[status]}  ")
        if not counts:
            text = Text("no instances", style="dim")
        text += Text(f"\n{len(data.servers)} total", style="dim")
        target.update(text)

    def _show_storage(self, data: OverviewData) -> None:
        parts = []
        if data.volumes is not None:
            size = sum(v.size for v in data.volumes)
            parts.append(f"volumes {len(data.volumes)} · {size} GiB")
        else:
            parts.append("volumes —")
        parts.append(f"images {data.images}" if data.images is not None else "images —")
        parts.append(f"containers {data.containers}" if data.containers is not None
                     else "objects —")
        self.query_one("#storage", Static).update("\n".join(parts))
