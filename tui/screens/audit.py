"""Audit (admins): who changed what, from where, and how it ended — the daemon's audit trail
(GET /monostack/audit, CADF records), newest first.

Filters go to the daemon, not just over the rows already fetched: `o` cycles the outcome
(all → failures → successes) and a user typed in `/` (a name or an id, resolved through
Keystone) asks for that user's events only; while typing, the rows shown narrow at once.
Members never get here (the key and the palette entry are for admins); should the daemon
refuse anyway (a role revoked meanwhile), its 403 is a notification like any other.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from tui.cloud import AuditRecord
from tui.dialogs.error import ErrorDialog
from tui.screens.base import CloudScreen
from tui.widgets.inputs import TextInput
from tui.widgets.table import selected_key, sync_rows

#: outcome filter → what the toolbar says; cycled with `o`.
OUTCOMES: tuple[tuple[str | None, str], ...] = ((None, "all"), ("failure", "failures"),
                                                ("success", "successes"))


_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}",
                   re.IGNORECASE)


def short_path(path: str) -> str:
    """Ids cut to their first 8 characters, as the other screens show them: at 80 columns
    '/compute/v2.1/servers/91a45c2e…/action' still says what was done (the details dialog
    has the whole path)."""
    return _UUID.sub(lambda m: m.group(0)[:8] + "…", path)


def _utc(when: float | None) -> str:
    if when is None:
        return "—"
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class AuditScreen(CloudScreen):
    TITLE = "Audit"
    ADMIN_ONLY = True
    #: Every mutating call appends to the trail and publishes events: follow them.
    RESOURCE_TYPES = frozenset({"event"})
    BINDINGS = [
        Binding("slash", "filter", "Filter by user", key_display="/"),
        Binding("o", "outcome", "Outcome"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    #: The newest this many: the daemon answers up to 1000.
    LIMIT = 500

    def __init__(self) -> None:
        super().__init__()
        self.records: list[AuditRecord] = []
        self.outcome_index = 0
        #: The user the daemon was asked about (an id), or None for everyone.
        self.user_id: str | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Static("Audit trail", classes="toolbar-title")
            yield TextInput(placeholder="/ user", id="filter", classes="filter")
            yield Static("", id="count", classes="toolbar-count")
        yield DataTable(id="audit", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("When", key="when", width=8)
        table.add_column("Outcome", key="outcome")
        table.add_column("User", key="user")
        table.add_column("Method", key="method")
        table.add_column("Path", key="path")
        # Last: at 80 columns it is what gets cut, not the path ("local socket" mostly).
        table.add_column("Source", key="source")
        super().on_mount()
        table.focus()

    @property
    def outcome(self) -> str | None:
        return OUTCOMES[self.outcome_index][0]

    async def fetch(self) -> list[AuditRecord]:
        return await self.cloud.audit(limit=self.LIMIT, outcome=self.outcome,
                                      user_id=self.user_id)

    def show(self, data: list[AuditRecord]) -> None:
        self.records = data
        self._render_rows()

    def _render_rows(self) -> None:
        needle = self.query_one("#filter", Input).value.strip().lower()
        rows = []
        for r in self.records:
            if needle and self.user_id is None and needle not in \
                    f"{r.user_name} {r.user_id}".lower():
                continue
            failed = r.outcome != "success"
            outcome = Text(f"{r.outcome} {r.status}".strip(),
                           style="bold red" if failed else "green")
            rows.append((r.id, (self.monostack.clock.ago(r.time), outcome, r.who,
                                Text(r.method, style="cyan"), short_path(r.path), r.source)))
        sync_rows(self.query_one(DataTable), rows)
        shown = f"{len(rows)} of {len(self.records)}"
        if self.outcome is not None:
            shown += f" · {OUTCOMES[self.outcome_index][1]}"
        self.query_one("#count", Static).update(shown)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self.user_id is not None and not event.value.strip():
            self.user_id = None
            self.reload()
            return
        self._render_rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()
        wanted = event.value.strip()
        if wanted:
            self.run_worker(self._ask_for_user(wanted), group="load", exclusive=True,
                            exit_on_error=False)

    async def _ask_for_user(self, wanted: str) -> None:
        """A name becomes its id (the daemon filters on ids); an unknown name is said so."""
        try:
            users = await self.cloud.users()
        except Exception as exc:
            self.monostack.report_error(exc)
            return
        match = next((u for u in users if wanted in (u.name, u.id)), None)
        if match is None:
            self.notify(f"No user named {wanted}: showing the rows that mention it.",
                        severity="warning", timeout=4)
            return
        self.user_id = match.id
        self.reload()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""  # Changed → back to everyone
        self.query_one(DataTable).focus()

    def action_outcome(self) -> None:
        self.outcome_index = (self.outcome_index + 1) % len(OUTCOMES)
        self.reload()

    @on(DataTable.RowSelected)
    def action_details(self) -> None:
        key = selected_key(self.query_one(DataTable))
        r = next((r for r in self.records if r.id == key), None)
        if r is None:
            return
        lines = [f"{r.action} · {r.outcome} (HTTP {r.status or '?'})",
                 f"{r.method} {r.path}", "",
                 f"user: {r.who} ({r.user_id or 'unknown'})",
                 f"project: {r.project_id or '—'}", f"source: {r.source or '—'}",
                 f"service: {r.service or '—'}", f"request id: {r.request_id or '—'}",
                 f"time: {_utc(r.time)} ({self.monostack.clock.ago(r.time)})"]
        self.app.push_screen(ErrorDialog("Audit event", "\n".join(lines)))
