"""Images (3): list, upload from a local file with progress and ETA, visibility, properties, delete."""
from __future__ import annotations

import os

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from tui.cloud import Image
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.form import Field, FormDialog
from tui.screens.base import CloudScreen
from tui.widgets.badge import status_text
from tui.widgets.table import selected_key, sync_rows
from tui.widgets.transfer import TransferBar, human_bytes


class ImagesScreen(CloudScreen):
    TITLE = "Images"
    SERVICE = "image"
    RESOURCE_TYPES = frozenset({"image"})
    BINDINGS = [
        Binding("u", "upload", "Upload"),
        Binding("v", "visibility", "Visibility"),
        Binding("e", "edit", "Properties"),
        Binding("d", "delete", "Delete"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, Image] = {}

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Static("Images", classes="toolbar-title")
            yield Static("", id="count", classes="toolbar-count")
        yield DataTable(id="images", cursor_type="row", zebra_stripes=True)
        yield Static("", id="properties", classes="props")
        yield TransferBar(id="transfer")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Name", "Status", "Size", "Format", "Visibility", "Protected")
        super().on_mount()
        table.focus()

    async def fetch(self) -> list[Image]:
        return await self.cloud.images()

    def show(self, data: list[Image]) -> None:
        self.images = {i.id: i for i in data}
        sync_rows(self.query_one(DataTable), [
            (i.id, (i.name or "(unnamed)", status_text(i.status),
                    human_bytes(i.size) if i.size is not None else "—", i.disk_format or "—",
                    i.visibility, "yes" if i.protected else ""))
            for i in data])
        self.query_one("#count", Static).update(f"{len(data)} image(s)")
        self._show_properties()

    def _selected(self) -> Image | None:
        return self.images.get(selected_key(self.query_one(DataTable)) or "")

    @on(DataTable.RowHighlighted)
    def _show_properties(self) -> None:
        image = self._selected()
        props = self.query_one("#properties", Static)
        if image is None or not image.properties:
            props.update(Text("no extra properties", style="dim") if image else "")
            return
        props.update("  ".join(f"{k}={v}" for k, v in sorted(image.properties.items())))

    def action_upload(self) -> None:
        if not self.host_files_allowed("openstack image create --file FILE NAME"):
            return
        self.app.push_screen(FormDialog("Upload an image", [
            Field("path", "Local file path", required=True, placeholder="/srv/images/x.qcow2"),
            Field("name", "Name (default: file name)"),
            Field("disk_format", "Disk format", kind="select", default="qcow2",
                  options=[(f, f) for f in ("qcow2", "raw", "iso", "vmdk", "vdi")]),
            Field("visibility", "Visibility", kind="select", default="private",
                  options=[(v, v) for v in ("private", "shared", "community", "public")]),
        ], submit="Upload"), self._upload)

    def _upload(self, values: dict | None) -> None:
        if not values:
            return
        path = os.path.expanduser(values["path"])
        name = values["name"] or os.path.basename(path)
        bar = self.query_one(TransferBar)

        async def upload() -> None:
            size = os.path.getsize(path)
            image = await self.cloud.create_image(name, values["disk_format"] or "qcow2",
                                                  values["visibility"] or "private")
            bar.begin(f"↑ {name}", size)
            try:
                await self.cloud.upload_image(image.id, path, bar.advance_to)
            finally:
                bar.finish()
        self.call(upload, done=f"Image {name} uploaded.")

    def action_visibility(self) -> None:
        image = self._selected()
        if not self.require_selection(image and image.id, "image") or image is None:
            return
        new = "public" if image.visibility != "public" else "private"
        self.call(lambda: self.cloud.update_image(image.id, visibility=new),
                  done=f"{image.name} is now {new}.")

    def action_edit(self) -> None:
        image = self._selected()
        if not self.require_selection(image and image.id, "image") or image is None:
            return
        text = "\n".join(f"{k}={v}" for k, v in sorted(image.properties.items()))
        self.app.push_screen(FormDialog(f"Properties of {image.name}", [
            Field("props", "key=value, one per line", kind="textarea", default=text)],
            submit="Save"), lambda v: self._save_props(image, v))

    def _save_props(self, image: Image, values: dict | None) -> None:
        if values is None:
            return
        changes = {}
        for line in values["props"].splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip():
                changes[key.strip()] = value.strip()
        if changes:
            self.call(lambda: self.cloud.update_image(image.id, **changes),
                      done="Properties saved.")

    def action_delete(self) -> None:
        image = self._selected()
        if not self.require_selection(image and image.id, "image") or image is None:
            return
        self.app.push_screen(ConfirmDialog(f"Delete image {image.name}?"),
                             lambda ok: ok and self.call(
                                 lambda: self.cloud.delete_image(image.id),
                                 done=f"Image {image.name} deleted."))
