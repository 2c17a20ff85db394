"""Object storage (6): containers on the left, their objects on the right with pseudo-folders
(the '/' delimiter), enter to open a folder, backspace to go up, upload/download with progress,
metadata and the read ACL.
"""
from __future__ import annotations

import os

from email.utils import parsedate_to_datetime

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from tui.cloud import ObjectEntry
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.details import DetailsDialog
from tui.dialogs.form import Field, FormDialog
from tui.screens.base import CloudScreen
from tui.widgets.table import selected_key, sync_rows
from tui.widgets.transfer import TransferBar, human_bytes


#: Metadata sheet order: what the operator asks first, then user metadata, then the rest.
FIRST = ("Content-Type", "Content-Length", "Etag", "Last-Modified", "X-Container-Object-Count",
         "X-Container-Bytes-Used", "X-Container-Read", "X-Container-Write")


def metadata_rows(meta: dict[str, str], clock) -> list[tuple[str, str]]:
    """HEAD headers as readable rows: sizes in units, times relative, meta keys short."""
    rows: list[tuple[str, str]] = []
    seen = set()
    for key in FIRST:
        if key in meta:
            value = meta[key]
            if key in ("Content-Length", "X-Container-Bytes-Used") and value.isdigit():
                value = f"{human_bytes(int(value))} ({value} bytes)"
            elif key == "Last-Modified":
                try:
                    value = clock.ago(parsedate_to_datetime(value).timestamp())
                except (TypeError, ValueError):
                    pass
            label = {"X-Container-Object-Count": "Objects", "X-Container-Bytes-Used": "Bytes",
                     "X-Container-Read": "Read ACL", "X-Container-Write": "Write ACL",
                     "Last-Modified": "Modified"}.get(key, key)
            rows.append((label, value))
            seen.add(key)
    for key, value in sorted(meta.items()):
        lower = key.lower()
        if key in seen or lower in ("x-timestamp", "content-type"):
            continue
        for prefix in ("x-object-meta-", "x-container-meta-"):
            if lower.startswith(prefix):
                key = "meta: " + key[len(prefix):].lower()
        rows.append((key, value))
    return rows


class ObjectsScreen(CloudScreen):
    TITLE = "Objects"
    SERVICE = "object"
    RESOURCE_TYPES = frozenset({"container", "object"})
    BINDINGS = [
        Binding("n", "new_container", "New container"),
        Binding("u", "upload", "Upload"),
        Binding("w", "download", "Download"),
        Binding("i", "metadata", "Metadata"),
        Binding("a", "acl", "ACL", show=False),
        Binding("d", "delete", "Delete"),
        Binding("backspace", "up", "Up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.container: str | None = None
        self.prefix = ""
        self.entries: dict[str, ObjectEntry] = {}

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="object-browser"):
            with Vertical(id="containers-pane", classes="panel") as left:
                left.border_title = "Containers"
                yield DataTable(id="containers", cursor_type="row")
            with Vertical(id="objects-pane", classes="panel") as right:
                right.border_title = "Objects"
                yield Static("", id="path", classes="props")
                yield DataTable(id="objects", cursor_type="row", zebra_stripes=True)
        yield TransferBar(id="transfer")

    def on_mount(self) -> None:
        self.query_one("#containers", DataTable).add_columns("Name", "Objects", "Size")
        self.query_one("#objects", DataTable).add_columns("Name", "Size", "Type")
        super().on_mount()
        self.query_one("#containers", DataTable).focus()

    async def fetch(self) -> tuple[list[dict], list[ObjectEntry]]:
        containers = await self.cloud.containers()
        names = [c.get("name") for c in containers]
        if self.container not in names:
            self.container = names[0] if names else None
            self.prefix = ""
        entries = await self.cloud.objects(self.container, self.prefix) if self.container else []
        return containers, entries

    def show(self, data: tuple[list[dict], list[ObjectEntry]]) -> None:
        containers, entries = data
        sync_rows(self.query_one("#containers", DataTable), [
            (c["name"], (c["name"], str(c.get("count", 0)), human_bytes(c.get("bytes", 0))))
            for c in containers])
        self._show_entries(entries)

    def _show_entries(self, entries: list[ObjectEntry]) -> None:
        self.entries = {e.name: e for e in entries}
        rows = []
        if self.prefix:
            rows.append(("..", (Text("↑ ..", style="bold"), "", "")))
        for e in entries:
            label = e.name[len(self.prefix):]
            if e.is_folder:
                rows.append((e.name, (Text("▸ " + label, style="bold cyan"), "", Text(
                    "folder", style="dim"))))
            else:
                rows.append((e.name, (label, human_bytes(e.bytes), e.content_type or "—")))
        sync_rows(self.query_one("#objects", DataTable), rows)
        where = f"/{self.container}/{self.prefix}" if self.container else "no containers yet"
        self.query_one("#path", Static).update(where)

    @on(DataTable.RowSelected, "#containers")
    def _open_container(self, event: DataTable.RowSelected) -> None:
        self.container = str(event.row_key.value)
        self.prefix = ""
        self.reload()
        self.query_one("#objects", DataTable).focus()

    @on(DataTable.RowSelected, "#objects")
    def _open_entry(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        if key == "..":
            self.action_up()
        elif key in self.entries and self.entries[key].is_folder:
            self.prefix = key
            self.reload()

    def action_up(self) -> None:
        if not self.prefix:
            self.query_one("#containers", DataTable).focus()
            return
        parts = self.prefix.rstrip("/").split("/")[:-1]
        self.prefix = "/".join(parts) + "/" if parts else ""
        self.reload()

    def _selected_object(self) -> ObjectEntry | None:
        key = selected_key(self.query_one("#objects", DataTable))
        entry = self.entries.get(key or "")
        return entry if entry and not entry.is_folder else None

    def action_new_container(self) -> None:
        self.app.push_screen(FormDialog("New container", [Field("name", "Name", required=True)]),
                             lambda v: v and self.call(
                                 lambda: self.cloud.create_container(v["name"]),
                                 done=f"Container {v['name']} created."))

    def action_upload(self) -> None:
        if not self.container:
            self.notify("Create a container first (n).", severity="warning")
            return
        if not self.host_files_allowed(f"swift upload {self.container} FILE"):
            return
        self.app.push_screen(FormDialog(f"Upload to /{self.container}/{self.prefix}", [
            Field("path", "Local file path", required=True),
            Field("name", "Object name (default: file name)")], submit="Upload"), self._upload)

    def _upload(self, values: dict | None) -> None:
        if not values or not self.container:
            return
        path = os.path.expanduser(values["path"])
        name = self.prefix + (values["name"] or os.path.basename(path))
        container = self.container
        bar = self.query_one(TransferBar)

        async def upload() -> None:
            bar.begin(f"↑ {name}", os.path.getsize(path))
            try:
                await self.cloud.upload_object(container, name, path, bar.advance_to)
            finally:
                bar.finish()
        self.call(upload, done=f"Uploaded {name}.")

    def action_download(self) -> None:
        entry = self._selected_object()
        if entry is None or not self.container:
            self.notify("Select an object first.", severity="warning")
            return
        if not self.host_files_allowed(f"swift download {self.container} {entry.name}"):
            return
        default = os.path.join(os.getcwd(), os.path.basename(entry.name))
        container = self.container
        bar = self.query_one(TransferBar)

        def chosen(values: dict | None) -> None:
            if not values:
                return
            target = os.path.expanduser(values["path"])

            async def download() -> None:
                bar.begin(f"↓ {entry.name}", entry.bytes)
                try:
                    await self.cloud.download_object(container, entry.name, target,
                                                     bar.advance_to)
                finally:
                    bar.finish()
            self.call(download, done=f"Saved {target}.", reload=False)
        self.app.push_screen(FormDialog(f"Download {entry.name}", [
            Field("path", "Save as", default=default, required=True)], submit="Download"), chosen)

    def action_metadata(self) -> None:
        if not self.container:
            return
        entry = self._selected_object()
        container = self.container

        async def head() -> dict[str, str]:
            return await self.cloud.object_metadata(container, entry.name if entry else None)

        def show(meta: dict[str, str]) -> None:
            title = f"/{container}/{entry.name}" if entry else f"/{container}"
            self.app.push_screen(DetailsDialog(title, metadata_rows(meta, self.monostack.clock)))
        self.call(head, then=show, reload=False)

    def action_acl(self) -> None:
        if not self.container:
            return
        container = self.container
        self.app.push_screen(FormDialog(f"Read ACL of {container}", [
            Field("read", "X-Container-Read", placeholder=".r:*,.rlistings (public)")],
            submit="Save"),
            lambda v: v is not None and self.call(
                lambda: self.cloud.set_container_acl(container, v["read"]), done="ACL saved."))

    def action_delete(self) -> None:
        if not self.container:
            return
        entry = self._selected_object()
        container = self.container
        if entry is not None:
            question = f"Delete object {entry.name}?"
            action = lambda: self.cloud.delete_object(container, entry.name)  # noqa: E731
        else:
            question = f"Delete container {container}? It must be empty."
            action = lambda: self.cloud.delete_container(container)  # noqa: E731
        self.app.push_screen(ConfirmDialog(question),
                             lambda ok: ok and self.call(action, done="Deleted."))
