"""Volumes (4): create (blank or from an image), attach/detach, snapshot, extend, delete."""
from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from tui.cloud import Server, Snapshot, Volume
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.form import Field, FormDialog
from tui.screens.base import TabbedScreen
from tui.widgets.badge import status_text
from tui.widgets.table import selected_key, sync_rows


@dataclass
class VolumeData:
    volumes: list[Volume]
    snapshots: list[Snapshot]
    servers: dict[str, str]
    images: list[tuple[str, str]]


class VolumesScreen(TabbedScreen):
    TITLE = "Volumes"
    SERVICE = "volume"
    RESOURCE_TYPES = frozenset({"volume", "snapshot", "instance", "server"})
    BINDINGS = [
        *TabbedScreen.TAB_BINDINGS,
        Binding("n", "create", "New"),
        Binding("a", "attach", "Attach"),
        Binding("x", "detach", "Detach"),
        Binding("m", "snapshot", "Snapshot"),
        Binding("e", "extend", "Extend"),
        Binding("d", "delete", "Delete"),
    ]

    data: VolumeData | None = None

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="volume-tabs"):
            with TabPane("Volumes", id="tab-volumes"):
                yield DataTable(id="volumes", cursor_type="row", zebra_stripes=True)
            with TabPane("Snapshots", id="tab-snapshots"):
                yield DataTable(id="snapshots", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#volumes", DataTable).add_columns(
            "Name", "Status", "Size", "Bootable", "Attached to", "Image")
        self.query_one("#snapshots", DataTable).add_columns("Name", "Status", "Size", "Volume")
        super().on_mount()
        self.query(DataTable).first().focus()

    async def fetch(self) -> VolumeData:
        c = self.cloud
        servers = {s.id: s.name for s in await c._quiet(c.servers, [])} \
            if c.has("compute") else {}
        images = [(i.name, i.id) for i in await c._quiet(c.images, [])] if c.has("image") else []
        return VolumeData(await c.volumes(), await c._quiet(c.snapshots, []), servers, images)

    def show(self, data: VolumeData) -> None:
        self.data = data
        names = {v.id: v.name for v in data.volumes}
        sync_rows(self.query_one("#volumes", DataTable), [
            (v.id, (v.name or v.id[:8], status_text(v.status), f"{v.size} GiB",
                    "yes" if v.bootable else "",
                    ", ".join(f"{data.servers.get(s, s[:8])} {d}".strip()
                              for s, d in zip(v.attached_to, v.devices)) or "—",
                    v.image or "—")) for v in data.volumes])
        sync_rows(self.query_one("#snapshots", DataTable), [
            (s.id, (s.name or s.id[:8], status_text(s.status), f"{s.size} GiB",
                    names.get(s.volume_id, s.volume_id[:8]))) for s in data.snapshots])

    def _volume(self) -> Volume | None:
        key = selected_key(self.query_one("#volumes", DataTable))
        v = next((v for v in (self.data.volumes if self.data else []) if v.id == key), None)
        if v is None:
            self.notify("Select a volume first.", severity="warning", timeout=3)
        return v

    def action_create(self) -> None:
        images = self.data.images if self.data else []
        self.app.push_screen(FormDialog("New volume", [
            Field("name", "Name", required=True),
            Field("size", "Size (GiB)", kind="int", default=1, minimum=1, required=True),
            Field("image", "From image (optional)", kind="select", options=images),
        ]), self._create)

    def _create(self, values: dict | None) -> None:
        if values:
            self.call(lambda: self.cloud.create_volume(values["name"], values["size"],
                                                       values["image"]),
                      done=f"Creating volume {values['name']}.")

    def action_attach(self) -> None:
        v = self._volume()
        if v is None or self.data is None:
            return
        if not self.data.servers:
            self.notify("No instances to attach to (or compute is not available).",
                        severity="warning")
            return
        self.app.push_screen(FormDialog(f"Attach {v.name}", [
            Field("server", "Instance", kind="select", required=True,
                  options=sorted((n, i) for i, n in self.data.servers.items()))],
            submit="Attach"),
            lambda values: values and self.call(
                lambda: self.cloud.attach_volume(values["server"], v.id),
                done=f"Attaching {v.name}."))

    def action_detach(self) -> None:
        v = self._volume()
        if v is None:
            return
        if not v.attached_to:
            self.notify(f"{v.name} is not attached.", severity="warning")
            return
        server = v.attached_to[0]
        self.app.push_screen(
            ConfirmDialog(f"Detach {v.name} from its instance?", yes="Detach"),
            lambda ok: ok and self.call(lambda: self.cloud.detach_volume(server, v.id),
                                        done=f"Detaching {v.name}."))

    def action_snapshot(self) -> None:
        v = self._volume()
        if v is None:
            return
        self.app.push_screen(FormDialog(f"Snapshot {v.name}", [
            Field("name", "Snapshot name", default=f"{v.name}-snap", required=True)],
            submit="Snapshot"),
            lambda values: values and self.call(
                lambda: self.cloud.create_snapshot(v.id, values["name"]),
                done="Snapshot requested."))

    def action_extend(self) -> None:
        v = self._volume()
        if v is None:
            return
        self.app.push_screen(FormDialog(f"Extend {v.name} (now {v.size} GiB)", [
            Field("size", "New size (GiB)", kind="int", default=v.size + 1,
                  minimum=v.size + 1, required=True)], submit="Extend"),
            lambda values: values and self.call(
                lambda: self.cloud.extend_volume(v.id, values["size"]),
                done=f"Extending {v.name}."))

    def action_delete(self) -> None:
        v = self._volume()
        if v is None:
            return
        self.app.push_screen(ConfirmDialog(f"Delete volume {v.name} ({v.size} GiB)?"),
                             lambda ok: ok and self.call(lambda: self.cloud.delete_volume(v.id),
                                                         done=f"Deleting {v.name}."))
