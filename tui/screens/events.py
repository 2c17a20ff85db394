"""Events: the task history the daemon records, failures first to the eye, reasons in full.

The list follows the live event stream: each event the app receives is put on top at once
(`live_event`), and a full reload (Ctrl+R, the slow timer, a reconnect) merges with it.
"""
from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from tui.cloud import CloudEvent
from tui.dialogs.error import ErrorDialog
from tui.screens.base import CloudScreen
from tui.widgets.table import selected_key, sync_rows
from tui.widgets.inputs import TextInput


class EventsScreen(CloudScreen):
    TITLE = "Events"
    RESOURCE_TYPES = frozenset({"event"})
    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("f", "failures", "Failures only"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    #: As many as the first fetch asks for: the live list is cut to the same length.
    LIMIT = 500

    def __init__(self) -> None:
        super().__init__()
        self.events: list[CloudEvent] = []
        self.failures_only = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Static("Events", classes="toolbar-title")
            yield TextInput(placeholder="/ filter", id="filter", classes="filter")
            yield Static("", id="count", classes="toolbar-count")
        yield DataTable(id="events", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("When", key="when", width=8)
        table.add_column("Kind", key="kind")
        table.add_column("Resource", key="resource")
        table.add_column("Message", key="message")
        super().on_mount()
        table.focus()

    async def fetch(self) -> list[CloudEvent]:
        return await self.cloud.events(self.LIMIT)

    def show(self, data: list[CloudEvent]) -> None:
        # Events that arrived live while the fetch was in flight are kept.
        known = {e.id for e in data}
        newer = [e for e in self.events if e.id not in known and e.seq > (data[0].seq if data
                                                                             else 0)]
        self.events = (newer + data)[:self.LIMIT]
        self._render_rows()

    def live_event(self, event: CloudEvent) -> None:
        if any(e.id == event.id for e in self.events[:50]):
            return
        self.events.insert(0, event)
        del self.events[self.LIMIT:]
        if self.is_mounted and self.loaded:
            self._render_rows()

    def _render_rows(self) -> None:
        needle = self.query_one("#filter", Input).value.lower()
        rows = []
        for e in self.events:
            if self.failures_only and not e.failed:
                continue
            text = f"{e.kind} {e.resource_name} {e.message}".lower()
            if needle and needle not in text:
                continue
            style = "bold red" if e.failed else ""
            rows.append((e.id, (self.monostack.clock.ago(e.time),
                                Text(e.kind, style=style or "cyan"),
                                e.resource_name, Text(e.message, style=style))))
        sync_rows(self.query_one(DataTable), rows)
        shown = f"{len(rows)} of {len(self.events)}"
        if self.failures_only:
            shown += " · failures"
        self.query_one("#count", Static).update(shown)

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self._render_rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one(DataTable).focus()

    def action_failures(self) -> None:
        self.failures_only = not self.failures_only
        self._render_rows()

    @on(DataTable.RowSelected)
    def action_details(self) -> None:
        key = selected_key(self.query_one(DataTable))
        event = next((e for e in self.events if e.id == key), None)
        if event is None:
            return
        lines = [f"{event.kind} · {event.resource_type} {event.resource_name}",
                 f"resource id: {event.resource_id}", "", event.message or "(no message)"]
        if event.data:
            lines += [""] + [f"{k}: {v}" for k, v in sorted(event.data.items())]
        self.app.push_screen(ErrorDialog("Event", "\n".join(lines)))
