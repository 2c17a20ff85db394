"""A real daemon for TUI tests, in a thread with its own event loop.

Snapshot tests run the app in pytest-textual-snapshot's own loop, so the daemon cannot share
the test's loop: `ThreadDaemon` runs `tests.daemon.InProcessDaemon` (libvirt test:///default,
a unique socket and state dir) on a background thread and offers `call(coro)` to seed data
from the test through the same MonostackClient everyone uses, or `publish(...)` to put
deterministic events on the stream.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import timezone
from pathlib import Path
from typing import Any, TypeVar

from appliance.client import MonostackClient
from tests.daemon import ADMIN_PASSWORD, InProcessDaemon, write_config
from tui.app import MonostackApp
from tui.clock import Clock
from tui.settings import Settings

T = TypeVar("T")

#: 2026-01-01 12:00:00 UTC: the frozen clock every TUI test sees (header 12:00:00). Events made
#: by the tests are "in the future" of it and read as "now".
FROZEN = 1767268800.0
#: The instance store's size every TUI test sees (what the overview snapshots were taken with).
SNAPSHOT_DISK_GB = 251


class ThreadDaemon:
    def __init__(self, base: Path, components: list[str] | None = None,
                 extra: dict[str, dict[str, Any]] | None = None) -> None:
        self.base = base
        self.components = components or []
        # A fixed disk size: the overview's disk bar must not depend on the test machine.
        extra = {**(extra or {})}
        extra["compute"] = {"disk_gb": SNAPSHOT_DISK_GB, **extra.get("compute", {})}
        _, self.config = write_config(base, components=list(self.components) or ["core"],
                                      extra=extra)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.daemon: InProcessDaemon | None = None
        self.admin: MonostackClient | None = None

    def start(self) -> "ThreadDaemon":
        self.thread.start()

        async def up() -> None:
            self.daemon = InProcessDaemon(self.config, components=self.components)
            await self.daemon.__aenter__()
            self.admin = await self.daemon.admin_client()
        self.call(up())
        return self

    def call(self, coro: Awaitable[T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def admin_do(self, fn: Callable[[MonostackClient], Awaitable[T]]) -> T:
        assert self.admin is not None
        return self.call(fn(self.admin))

    def publish(self, kind: str, resource_type: str, name: str, message: str,
                project_id: str | None = None, **data: Any) -> None:
        assert self.daemon is not None
        ctx = self.daemon.appliance.ctx
        self.call(ctx.events.publish(kind, resource_type, f"{resource_type}-{name}", project_id,
                                     message, name=name, **data))

    def stop(self) -> None:
        async def down() -> None:
            if self.admin:
                await self.admin.close()
            if self.daemon:
                await self.daemon.__aexit__(None, None, None)
        try:
            self.call(down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    @property
    def socket(self) -> Path:
        return Path(self.config.api.socket)

    def make_app(self, tmp: Path, *, live: bool = True, **kw: Any) -> MonostackApp:
        settings = Settings(last_user="admin", last_project="admin", path=tmp / "tui.json")
        socket = self.socket
        return MonostackApp(lambda: MonostackClient(socket_path=socket), settings=settings,
                            clock=Clock(frozen=FROZEN, tz=timezone.utc), live=live,
                            cursor_blink=False, **kw)


async def log_in(pilot, password: str = ADMIN_PASSWORD, user: str | None = None,
                 project: str | None = None) -> None:
    """Type the password (user/project are remembered) and wait for the overview."""
    app = pilot.app
    screen = await login_screen(pilot)
    if user is not None:
        screen.query_one("#user").value = user
    if project is not None:
        screen.query_one("#project").value = project
    screen.query_one("#password").value = password
    await pilot.press("enter")
    for _ in range(500):
        if app.logged_in and app.screen.__class__.__name__ == "OverviewScreen" \
                and getattr(app.screen, "loaded", False):
            break
        await pilot.pause(0.02)
    await settle(pilot)


#: Worker groups that finish by themselves (loads, calls, dialogs); the event feed and the
#: consoles' readers run for the app's lifetime and are not waited for.
SHORT_GROUPS = {"default", "load", "calls", "dialogs", "session", "host", "console"}


async def login_screen(pilot):
    """The login screen once its inputs are mounted (run_before starts before that)."""
    for _ in range(200):
        screen = pilot.app.screen
        if screen.query("#password"):
            return screen
        await pilot.pause(0.02)
    raise TimeoutError("login screen did not mount")


def _busy(app) -> bool:
    """A short worker still runs, or a DataTable has rows whose column widths it has not
    measured yet (it does that on its next idle; a frame taken before shows cut cells)."""
    from textual.widgets import DataTable
    if any(w.is_running and w.group in SHORT_GROUPS for w in app.workers):
        return True
    try:
        tables = app.screen.query(DataTable)
    except Exception:
        return False
    return any(getattr(t, "_require_update_dimensions", False) for t in tables)


async def settle(pilot, timeout: float = 10.0) -> None:
    """Let workers finish: return as soon as no short-lived worker runs and the message
    queues are drained, checked twice across an idle pause (a finished load may post a
    message that starts the next one). No fixed sleeps: a quiet app settles in ~2 frames."""
    app = pilot.app
    for _ in range(int(timeout / 0.01)):
        if not _busy(app):
            await pilot.pause()
            if not _busy(app):
                return
        else:
            await pilot.pause(0.01)
    raise TimeoutError("workers still running: " + ", ".join(
        f"{w.group}:{w.name}" for w in app.workers if w.is_running))


async def wait_for_table(pilot, selector: str, timeout: float = 10.0) -> None:
    """Until the current screen's table has rows (its load worker has shown data)."""
    from textual.widgets import DataTable
    for _ in range(int(timeout / 0.02)):
        tables = pilot.app.screen.query(selector)
        if tables and tables.first(DataTable).row_count:
            break
        await pilot.pause(0.02)
    await settle(pilot)


async def fill_form(pilot, **values: str) -> None:
    """Fill the open FormDialog's fields by name, submit it (ctrl+s) and let the app settle."""
    from tui.dialogs.form import FormDialog
    form = pilot.app.screen
    assert isinstance(form, FormDialog)
    for name, value in values.items():
        form.query_one(f"#field-{name}").value = value
    await pilot.press("ctrl+s")
    await settle(pilot)
