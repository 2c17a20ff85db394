"""Instances (2): the table, filter as you type, sort, lifecycle actions on keys, create wizard.

The actions live in `ServerActions` so the detail screen offers the same keys on its one server.
Rows are keyed by server id but show only names; `show()` can be fed data directly (the bench
does, with 1,000 servers).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from appliance.errors import MonostackError
from tui.host import host_of
from tui.clock import parse_iso
from tui.cloud import Server
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.form import Field, FormDialog
from tui.screens.base import CloudScreen
from tui.tasks import TaskWatch
from tui.widgets.badge import status_text
from tui.widgets.table import KeyedTable, selected_key, sync_rows
from tui.widgets.inputs import TextInput

#: Seconds between two looks at the servers while one of them is in a long action.
POLL_RUNNING = 2.0

SERVER_BINDINGS = [
    Binding("s", "start", "Start"),
    Binding("S", "stop", "Stop", key_display="S"),
    Binding("r", "reboot", "Reboot"),
    Binding("c", "console", "Console"),
    Binding("d", "delete", "Delete"),
    Binding("p", "pause", "Pause/unpause", show=False),
    Binding("u", "suspend", "Suspend/resume", show=False),
    Binding("z", "resize", "Resize", show=False),
    Binding("m", "snapshot", "Snapshot", show=False),
    Binding("R", "rescue", "Rescue/unrescue", show=False, key_display="R"),
    Binding("l", "lock", "Lock/unlock", show=False),
]

SORT_KEYS: list[tuple[str, Callable[[Server], Any]]] = [
    ("name", lambda s: s.name.lower()),
    ("status", lambda s: (s.status, s.name.lower())),
    ("flavor", lambda s: (s.flavor, s.name.lower())),
    ("image", lambda s: (s.image, s.name.lower())),
    ("age", lambda s: -(parse_iso(s.created) or 0)),
]


def network_label(network: dict) -> str:
    name = network.get("name") or network["id"][:8]
    return f"{name} (external)" if network.get("router:external") else name


def default_network(networks: list[dict], project_id: str) -> str | None:
    """The network a new instance gets unless told otherwise, as Horizon does: the project's
    one internal network (else the one shared internal network); never an external one, and
    none when the choice is not obvious."""
    internal = [n for n in networks if not n.get("router:external")]
    own = [n for n in internal if (n.get("project_id") or n.get("tenant_id")) == project_id]
    for group in (own, [n for n in internal if n.get("shared")]):
        if len(group) == 1:
            return group[0]["id"]
        if group:
            return None
    return None


class ServerActions:
    """Lifecycle actions on `self.current_server()`; mixed into list and detail screens."""

    def current_server(self) -> Server | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _server(self) -> Server | None:
        server = self.current_server()
        if server is None:
            self.notify("Select an instance first.", severity="warning", timeout=3)  # type: ignore[attr-defined]
        return server

    def _act(self, verb: str, action: str, args: Any = None, *, server: Server | None = None) -> None:
        s = server or self._server()
        if s is None:
            return
        self.call(lambda: self.cloud.server_action(s.id, action, args),  # type: ignore[attr-defined]
                  done=f"{verb} {s.name}.")

    def action_start(self) -> None:
        self._act("Starting", "os-start")

    def action_stop(self) -> None:
        self._act("Stopping", "os-stop")

    def action_reboot(self) -> None:
        self._act("Rebooting", "reboot", {"type": "SOFT"})

    def action_pause(self) -> None:
        s = self._server()
        if s:
            if s.status == "PAUSED":
                self._act("Unpausing", "unpause", server=s)
            else:
                self._act("Pausing", "pause", server=s)

    def action_suspend(self) -> None:
        s = self._server()
        if s:
            if s.status == "SUSPENDED":
                self._act("Resuming", "resume", server=s)
            else:
                self._act("Suspending", "suspend", server=s)

    def action_rescue(self) -> None:
        s = self._server()
        if s:
            if s.status == "RESCUE":
                self._act("Unrescuing", "unrescue", server=s)
            else:
                self._act("Rescuing", "rescue", {}, server=s)

    def action_lock(self) -> None:
        s = self._server()
        if s:
            if s.locked:
                self._act("Unlocking", "unlock", server=s)
            else:
                self._act("Locking", "lock", server=s)

    def action_snapshot(self) -> None:
        s = self._server()
        if s is None:
            return

        def chosen(values: dict | None) -> None:
            if values:
                self._act("Snapshotting", "createImage", {"name": values["name"]}, server=s)
        self.app.push_screen(FormDialog(f"Snapshot {s.name}", [  # type: ignore[attr-defined]
            Field("name", "Image name", default=f"{s.name}-snap", required=True)],
            submit="Snapshot"), chosen)

    def action_resize(self) -> None:
        s = self._server()
        if s is None:
            return
        if s.status == "VERIFY_RESIZE":
            self._act("Confirming resize of", "confirmResize", server=s)
            return
        self._resize_dialog(s)

    @work(exit_on_error=False, group="dialogs")
    async def _resize_dialog(self, s: Server) -> None:
        try:
            flavors = await self.cloud.flavors()  # type: ignore[attr-defined]
        except MonostackError as exc:
            host_of(self).report_error(exc)  # type: ignore[arg-type]
            return
        options = [(f"{f.name} · {f.vcpus} vCPU · {f.ram} MiB · {f.disk} GiB", f.id)
                   for f in flavors if f.name != s.flavor]

        def chosen(values: dict | None) -> None:
            if values and values["flavor"]:
                self._act("Resizing", "resize", {"flavorRef": values["flavor"]}, server=s)
        self.app.push_screen(FormDialog(f"Resize {s.name} (now {s.flavor})", [  # type: ignore[attr-defined]
            Field("flavor", "New flavor", kind="select", options=options, required=True)],
            submit="Resize"), chosen)

    def action_delete(self) -> None:
        s = self._server()
        if s is None:
            return

        def answered(ok: bool | None) -> None:
            if ok:
                self.call(lambda: self.cloud.delete_server(s.id),  # type: ignore[attr-defined]
                          done=f"Deleting {s.name}.", then=lambda _: self.after_delete(s))
        self.app.push_screen(ConfirmDialog(  # type: ignore[attr-defined]
            f"Delete instance {s.name}? Its disk goes with it.", title="Delete instance"),
            answered)

    def after_delete(self, server: Server) -> None:
        pass

    def action_console(self) -> None:
        s = self._server()
        if s is not None:
            host_of(self).open_console(s.id, s.name)  # type: ignore[arg-type]


def age_changes(created: float | None, now: float) -> float:
    """When `Clock.ago(created)` next reads differently ("now" → "1m ago" → … → "1h ago")."""
    if not created:
        return float("inf")
    delta = max(0.0, now - created)
    for unit, below in ((60, 60), (60, 3600), (3600, 86400)):
        if delta < below:
            return created + (delta // unit + 1) * unit
    return created + (delta // 86400 + 1) * 86400


class ServerRow:
    """One server as the table shows it, kept between refreshes so an unchanged server costs
    an equality check, not a new row of renderables."""

    __slots__ = ("server", "created", "haystack", "sort_key", "cells")

    def __init__(self, server: Server, sort_key: Any) -> None:
        self.server = server
        self.created = parse_iso(server.created)
        self.haystack = " ".join((server.name, server.status, server.flavor, server.image,
                                  *server.addresses)).lower()
        self.sort_key = sort_key
        self.cells: tuple | None = None


class InstancesScreen(ServerActions, CloudScreen):
    TITLE = "Instances"
    SERVICE = "compute"
    RESOURCE_TYPES = frozenset({"instance", "server"})
    BINDINGS = [
        Binding("n", "create", "New"),
        *SERVER_BINDINGS,
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("o", "sort", "Sort", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.servers: list[Server] = []
        self.by_id: dict[str, Server] = {}
        self.sort_index = 0
        self.sort_reverse = False
        self.tasks = TaskWatch()
        #: Per server id, what its row was rendered from; `order` is their ids, sorted.
        self.rows: dict[str, ServerRow] = {}
        self.order: list[str] = []
        self.sorting: tuple[int, bool] | None = None
        self.count_text = ""
        #: Rows made since the last render, and when the next "3m ago" turns into "4m ago".
        self.fresh: list[ServerRow] = []
        self.ages_due = 0.0
        self._shown_at = 0.0

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Static("Instances", classes="toolbar-title")
            yield TextInput(placeholder="/ filter", id="filter", classes="filter")
            yield Static("", id="count", classes="toolbar-count")
        yield KeyedTable(id="servers", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#servers", DataTable)
        for key, label in (("name", "Name"), ("status", "Status"), ("task", "Task"),
                           ("flavor", "Flavor"), ("image", "Image"),
                           ("addresses", "Addresses"), ("age", "Age")):
            table.add_column(label, key=key)
        super().on_mount()
        self.set_interval(1.0, self._tick)
        table.focus()

    async def fetch(self) -> list[Server]:
        return await self.cloud.servers()

    def show(self, data: list[Server]) -> None:
        self._shown_at = time.monotonic()
        self.servers = data
        self.by_id = {s.id: s for s in data}
        for failure in self.tasks.update(data, self.monostack.clock.now()):
            self.notify(f"{failure.server.name}: {failure.reason}",
                        title=f"{failure.action.capitalize()} failed", severity="error",
                        timeout=15)
        self._render_rows()

    def _tick(self) -> None:
        """Elapsed times move while an action runs, without asking the daemon; its progress
        (which no event announces) is asked for every POLL_RUNNING seconds meanwhile."""
        if self.tasks.running and self.is_current:
            if time.monotonic() - self._shown_at >= POLL_RUNNING:
                self.reload()
            else:
                self._render_rows()

    def _render_rows(self) -> None:
        """Cost follows the changes: an unchanged server keeps its rendered row (the same
        tuple, so `sync_rows` passes it by identity) and its place in the sorted order; only
        changed servers, running tasks and ages that moved are rendered again, and the list is
        sorted again only when membership or a sort key changed."""
        needle = self.query_one("#filter", Input).value.strip().lower()
        name, _ = SORT_KEYS[self.sort_index]
        now = self.monostack.clock.now()
        rows = self.rows
        order = self._sorted_ids()
        self._rerender_moving(now)
        shown = [(i, rows[i].cells) for i in order if not needle or needle in rows[i].haystack]
        sync_rows(self.query_one("#servers", DataTable), shown)
        arrow = "↓" if self.sort_reverse else "↑"
        count = f"{len(shown)} of {len(self.servers)} · {name}{arrow}"
        if count != self.count_text:  # an update relayouts the screen, even to the same text
            self.count_text = count
            self.query_one("#count", Static).update(count)

    def _sorted_ids(self) -> list[str]:
        """Server ids in sort order, kept from the last render unless it may have moved."""
        rows = self.rows
        key = SORT_KEYS[self.sort_index][1]
        sorting = (self.sort_index, self.sort_reverse)
        resort = sorting != self.sorting or len(rows) != len(self.servers)
        if self.sorting is None or self.sorting[0] != self.sort_index:
            for row in rows.values():
                row.sort_key = key(row.server)
        for s in self.servers:
            row = rows.get(s.id)
            if row is not None and (row.server is s or row.server == s):
                row.server = s
                continue
            fresh = ServerRow(s, key(s))
            resort = resort or row is None or row.sort_key != fresh.sort_key
            rows[s.id] = fresh
            self.fresh.append(fresh)
        if len(rows) != len(self.servers):
            self.rows = rows = {s.id: rows[s.id] for s in self.servers}
        if resort:
            self.sorting = sorting
            self.order = sorted(rows, key=lambda i: rows[i].sort_key, reverse=self.sort_reverse)
        return self.order

    def _rerender_moving(self, now: float) -> None:
        """Render the rows that need it: new or changed servers (no cells yet), servers in a
        long action (their elapsed time moves), and, once one of them is due, the ages."""
        clock = self.monostack.clock
        ages_due = now >= self.ages_due
        if ages_due:
            self.ages_due = min((age_changes(row.created, now) for row in self.rows.values()),
                                default=float("inf"))
        rows = self.rows.values() if ages_due else (
            self.fresh
            + [self.rows[i] for i in self.tasks.running if i in self.rows])
        for row in rows:
            s = row.server
            task = self.tasks.describe(s, now) if s.task_state else ""
            age = clock.ago(row.created)
            if row.cells is not None and row.cells[2] == task and row.cells[6] == age:
                continue
            if row.cells is None:
                self.ages_due = min(self.ages_due, age_changes(row.created, now))
            status = status_text(s.status)
            if s.locked:
                status += Text(" 🔒" if not self.app.no_color else " L")
            row.cells = (s.name, status, task, s.flavor, s.image,
                         ", ".join(s.addresses) or "—", age)
        self.fresh = []

    def current_server(self) -> Server | None:
        return self.by_id.get(selected_key(self.query_one("#servers", DataTable)) or "")

    # filter and sort
    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self._render_rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#servers", DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one("#servers", DataTable).focus()

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORT_KEYS)
        self.sort_reverse = False
        self._render_rows()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        names = [n for n, _ in SORT_KEYS]
        key = str(event.column_key.value)
        if key in names:
            idx = names.index(key)
            self.sort_reverse = not self.sort_reverse if idx == self.sort_index else False
            self.sort_index = idx
            self._render_rows()

    @on(DataTable.RowSelected, "#servers")
    def _open_detail(self) -> None:
        s = self.current_server()
        if s is not None:
            from tui.screens.instance_detail import InstanceDetailScreen
            self.app.push_screen(InstanceDetailScreen(s.id, s.name))

    # create wizard
    def action_create(self) -> None:
        self._wizard()

    @work(exit_on_error=False, group="dialogs")
    async def _wizard(self) -> None:
        c = self.cloud
        try:
            flavors = await c.flavors()
        except MonostackError as exc:
            self.monostack.report_error(exc)
            return
        sources = await self._boot_sources()
        networks = await c._quiet(lambda: c.neutron("networks"), []) if c.has("network") else []
        keypairs = await c._quiet(c.keypairs, [])
        default_net = default_network(networks, c.project_id)
        fields = [
            Field("name", "Name", required=True),
            Field("flavor", "Flavor", kind="select", required=True,
                  options=[(f"{f.name} · {f.vcpus} vCPU · {f.ram} MiB · {f.disk} GiB", f.id)
                           for f in flavors]),
            Field("source", "Boot from image or volume", kind="select", required=True,
                  options=sources),
            Field("networks", "Networks", kind="multiselect",
                  options=[(network_label(n), n["id"]) for n in networks],
                  default=[default_net] if default_net else []),
            Field("key_name", "Key pair", kind="select", options=[(k, k) for k in keypairs]),
            Field("user_data", "User data (cloud-init)", kind="textarea"),
            Field("count", "Count", kind="int", default=1, minimum=1),
        ]
        self.app.push_screen(FormDialog(
            "New instance", fields, refresh_options={"source": self._boot_sources},
            refresh_on=frozenset({"image", "volume"})), self._create)

    async def _boot_sources(self) -> list[tuple[str, str]]:
        """Active images and available volumes, as the form's boot-source choices."""
        c = self.cloud
        images = await c._quiet(c.images, []) if c.has("image") else []
        volumes = await c._quiet(c.volumes, []) if c.has("volume") else []
        sources = [(f"image · {i.name}", f"image:{i.id}") for i in images if i.status == "active"]
        sources += [(f"volume · {v.name or v.id[:8]} ({v.size} GiB)", f"volume:{v.id}")
                    for v in volumes if v.status == "available"]
        return sources

    def _create(self, values: dict | None) -> None:
        if not values:
            return
        kind, _, source_id = (values["source"] or "").partition(":")
        self.call(lambda: self.cloud.create_server(
            name=values["name"], flavor_id=values["flavor"],
            image_id=source_id if kind == "image" else None,
            volume_id=source_id if kind == "volume" else None,
            networks=values["networks"], key_name=values["key_name"],
            user_data=values["user_data"] or None, count=values["count"] or 1),
            done=f"Creating {values['name']}.")
