"""Overview (1): host capacity vs allocation ratio, instances by state, storage, recent events,
and sparklines: host CPU/memory, and the API request rate read from the daemon's /metrics.

Each panel degrades on its own: a non-admin sees 'host statistics need the admin role', a
missing compute service shows 'compute not available', and the rest still fills in.
"""
from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from appliance.errors import MonostackError
from tui.cloud import CloudEvent, HostUsage, Hypervisor, Server, Volume, unavailable
from tui.screens.base import CloudScreen
from tui.widgets.badge import status_text
from tui.widgets.spark import Spark

STATE_ORDER = ["ACTIVE", "BUILD", "SHUTOFF", "PAUSED", "SUSPENDED", "RESCUE", "ERROR"]


@dataclass
class OverviewData:
    hypervisors: list[Hypervisor] | None = None
    usage: HostUsage | None = None
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
    BINDINGS = [Binding("1", "app.switch_screen('overview')", "Overview", show=False),
                *[Binding(str(i), f"app.switch_screen('{mode}')", label)
                  for i, (mode, label) in enumerate(
                      [("instances", "Instances"), ("images", "Images"), ("volumes", "Volumes"),
                       ("networks", "Networks"), ("objects", "Objects"),
                       ("identity", "Identity"), ("events", "Events"), ("audit", "Audit")],
                      start=2)]]

    def __init__(self) -> None:
        super().__init__()
        self.cpu_history: deque[float] = deque(maxlen=200)
        self.mem_history: deque[float] = deque(maxlen=200)
        self.hv_id = ""
        #: API requests per second, from the counter /metrics exposes (this console's own
        #: requests included), and the last (time, count) it was read at.
        self.api_history: deque[float] = deque(maxlen=200)
        self._api_last: tuple[float, float] | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="overview-top"):
            with Vertical(id="host-panel", classes="panel") as host:
                host.border_title = "Host"
                yield Static("loading…", id="host-bars")
                with Horizontal(classes="spark-row"):
                    yield Static("CPU ", classes="spark-label")
                    yield Spark(scale=100.0, id="cpu-spark")
                    yield Static("", id="cpu-now", classes="spark-now")
                with Horizontal(classes="spark-row"):
                    yield Static("Mem ", classes="spark-label")
                    yield Spark(scale=100.0, id="mem-spark")
                    yield Static("", id="mem-now", classes="spark-now")
                with Horizontal(classes="spark-row"):
                    yield Static("API ", classes="spark-label")
                    yield Spark(floor=1.0, id="api-spark")
                    yield Static("", id="api-now", classes="spark-now")
            with Vertical(id="side-panels"):
                with Vertical(id="instances-panel", classes="panel") as inst:
                    inst.border_title = "Instances"
                    yield Static("loading…", id="instance-counts")
                with Vertical(id="storage-panel", classes="panel") as sto:
                    sto.border_title = "Storage"
                    yield Static("loading…", id="storage")
        with Vertical(id="events-panel", classes="panel") as ev:
            ev.border_title = "Recent events"
            yield Static("", id="recent-events")

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(self.monostack.refresh_seconds / 5, self._sample_host)  # 3 s by default

    @work(exclusive=True, group="sample", exit_on_error=False)
    async def _sample_host(self) -> None:
        """Between full reloads, cheap calls feed the sparklines: CPU/memory of the host, and
        the API request rate from the same counter Prometheus scrapes."""
        if not (self.is_current and self.cloud.is_admin):
            return
        await self._sample_api()
        if not self.hv_id:
            return
        try:
            usage = await self.cloud.host_usage(self.hv_id)
        except MonostackError:
            return
        if usage.cpu_percent is not None:
            self._push("cpu", usage.cpu_percent)
        if usage.memory_percent is not None:
            self._push("mem", usage.memory_percent)

    async def _sample_api(self) -> None:
        try:
            sample = await self.cloud.metrics()
        except MonostackError:
            return
        now = time.monotonic()
        last, self._api_last = self._api_last, (now, sample.api_requests)
        if last is None or now <= last[0]:
            return  # the first reading only sets the baseline: a rate needs two
        rate = max(sample.api_requests - last[1], 0.0) / (now - last[0])
        self.api_history.append(rate)
        self.query_one("#api-spark", Spark).set_samples(self.api_history)
        self.query_one("#api-now", Static).update(f"{rate:.0f}/s" if rate < 1000
                                                 else f"{rate / 1000:.0f}k/s")

    def _push(self, which: str, value: float) -> None:
        history = self.cpu_history if which == "cpu" else self.mem_history
        history.append(value)
        self.query_one(f"#{which}-spark", Spark).set_samples(history)
        self.query_one(f"#{which}-now", Static).update(f"{value:3.0f}%")

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
                if data.hypervisors and data.hypervisors[0].id:
                    hv_id = data.hypervisors[0].id
                    data.usage = await c._quiet(lambda: c.host_usage(hv_id), None)
                if self._api_last is None:
                    await self._sample_api()
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
        # A Rich table, not a DataTable: the message column takes what is left and ends in
        # an ellipsis, so a row never wraps or scrolls sideways.
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True, style="dim", width=6)
        table.add_column(no_wrap=True, max_width=12, overflow="ellipsis")
        table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        for e in data.events:
            style = "bold red" if e.failed else ""
            kind = e.kind.split(".", 1)[-1] if "." in e.kind else e.kind
            message = e.message
            name = names.get(e.resource_id, e.resource_name)
            if name and message.startswith(name + ": "):
                message = message[len(name) + 2:]
            table.add_row(clock.ago(e.time), Text(name or e.resource_type, style="bold"),
                          Text.assemble((f"{kind:<8} ", style or "cyan"), (message, style)))
        if not data.events:
            table.add_row("", "", Text("no events yet", style="dim"))
        self.query_one("#recent-events", Static).update(table)

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
        # Live load when the driver reports it (monostack-usage), else the allocation.
        u = data.usage
        cpu = u.cpu_percent if u and u.cpu_percent is not None else h.cpu_percent \
            if h.cpu_percent is not None else (100.0 * h.vcpus_used / cap_cpu if cap_cpu else 0.0)
        mem = u.memory_percent if u and u.memory_percent is not None else (
            100.0 * h.memory_mb_used / h.memory_mb if h.memory_mb else 0.0)
        self.hv_id = h.id
        self._push("cpu", cpu)
        self._push("mem", mem)

    def _show_instances(self, data: OverviewData) -> None:
        target = self.query_one("#instance-counts", Static)
        if data.servers is None:
            target.update(Text(data.servers_note or "—", style="dim"))
            return
        counts = Counter(s.status for s in data.servers)
        order = STATE_ORDER + sorted(set(counts) - set(STATE_ORDER))
        present = [s for s in order if counts.get(s)]
        if not present:
            target.update(Text("no instances", style="dim"))
            return
        # Two states a row, counts right-aligned: reads the same at 80 and 160 columns.
        grid = Table.grid(padding=(0, 1))
        for _ in range(2):
            grid.add_column(no_wrap=True, min_width=10)
            grid.add_column(no_wrap=True, justify="right", min_width=3)
        cells = [c for st in present for c in (status_text(st), str(counts[st]))]
        cells += [""] * (-len(cells) % 4)
        for i in range(0, len(cells), 4):
            grid.add_row(*cells[i:i + 4])
        grid.add_row(Text(f"{len(data.servers)} total", style="dim"), "", "", "")
        target.update(grid)

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
