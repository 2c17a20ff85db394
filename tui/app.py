"""The monostack operator console: a Textual app over the daemon's HTTP API.

`MonostackApp(client_factory)` never touches state files or libvirt: it talks to the daemon
through `appliance.client.MonostackClient` (wrapped by `tui.cloud.Cloud`). Screens are Textual
modes switched with the number keys, so each keeps its own stack (Instances → instance detail) and its
cursor. Live updates: one worker reads the event-stream websocket (`tui.live.EventFeed`),
bursts are merged and debounced, and only the screens whose resource types changed reload;
a slow periodic reload is the fallback. A lost stream shows a banner and is redialled.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from weakref import WeakSet

from textual import events, work
from textual.app import App, ScreenStackError
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from appliance.client import MonostackClient
from appliance.errors import MonostackError
from tui.clock import Clock
from tui.cloud import Cloud, CloudEvent
from tui.commands import MonostackCommands
from tui.live import SESSION_EXPIRED, EventFeed
from tui.screens.audit import AuditScreen
from tui.screens.base import CloudScreen
from tui.screens.events import EventsScreen
from tui.screens.help import HelpScreen
from tui.screens.identity import IdentityScreen
from tui.screens.images import ImagesScreen
from tui.screens.instances import InstancesScreen
from tui.screens.login import LoginScreen
from tui.screens.networks import NetworksScreen
from tui.screens.objects import ObjectsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.projects import ProjectSwitcher
from tui.screens.volumes import VolumesScreen
from tui.host import ScreenEntry
from tui.settings import Settings
from tui.widgets.serial_console import SerialConsole

#: Number key → (mode name, screen class), in the order of the footer and the help sheet.
SCREENS: dict[str, tuple[str, type[CloudScreen]]] = {
    "1": ("overview", OverviewScreen),
    "2": ("instances", InstancesScreen),
    "3": ("images", ImagesScreen),
    "4": ("volumes", VolumesScreen),
    "5": ("networks", NetworksScreen),
    "6": ("objects", ObjectsScreen),
    "7": ("identity", IdentityScreen),
    "8": ("events", EventsScreen),
    "9": ("audit", AuditScreen),
}
SCREEN_CLASSES = {mode: cls for mode, cls in SCREENS.values()}
SCREEN_ENTRIES = tuple(ScreenEntry(key, mode, cls.TITLE) for key, (mode, cls) in SCREENS.items())
#: The one footer hint that stands for all the number keys (its label is computed per user).
SCREENS_HINT_ACTION = f"switch_screen('{SCREENS['1'][0]}')"


def key_ranges(keys: list[str]) -> str:
    """'1…9' for every screen, '1…6,8' for a member (Identity and Audit are admin-only):
    the footer names exactly the keys that do something for this user."""
    digits = sorted(int(k) for k in keys)
    runs: list[list[int]] = []
    for d in digits:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return ",".join(f"{r[0]}…{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)

ClientFactory = Callable[[], MonostackClient]


class MonostackApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "monostack"
    COMMANDS = App.COMMANDS | {MonostackCommands}
    ENABLE_COMMAND_PALETTE = True
    MODES = {mode: cls for mode, cls in SCREENS.values()}
    BINDINGS = [
        # The footer shows the number keys as one short hint on every screen ("1…9 Screens",
        # the keys this user has: get_key_display); the overview names each one instead.
        *[Binding(key, f"switch_screen('{mode}')", "Screens" if key == "1" else cls.TITLE,
                  show=key == "1")
          for key, (mode, cls) in SCREENS.items()],
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("ctrl+o", "switch_project", "Project", show=False),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    where: reactive[str] = reactive("")
    who: reactive[str] = reactive("")
    link_up: reactive[bool] = reactive(True)

    def __init__(self, client_factory: ClientFactory, *, settings: Settings | None = None,
                 clock: Clock | None = None, live: bool = True,
                 refresh_seconds: float = 15.0, debounce_seconds: float = 0.3,
                 cursor_blink: bool = True, web: bool | None = None) -> None:
        self.client_factory = client_factory
        self.settings = settings if settings is not None else Settings.load()
        self.clock = clock or Clock()
        self.live = live
        self.refresh_seconds = refresh_seconds
        self.debounce_seconds = debounce_seconds
        self.cursor_blink = cursor_blink
        self._web = web  # None: as the driver says (textual-serve runs the web driver)
        self.cloud = Cloud(client_factory())
        self.logged_in = False
        self.recent_events: deque[CloudEvent] = deque(maxlen=200)
        self._screens: WeakSet[CloudScreen] = WeakSet()
        self._dirty: set[str] = set()
        self._flush_pending = False
        super().__init__()
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme

    def post_message(self, message: Message) -> bool:
        """A key for a focused serial console goes to it at once (SerialConsole.take_key says
        why); everything else, and any key while other messages wait, takes Textual's route."""
        if (isinstance(message, events.Key) and not message.is_forwarded
                and self._thread_id == threading.get_ident() and self._message_queue.empty()):
            try:
                screen = self.screen
            except ScreenStackError:  # no screen yet: the normal route decides
                return super().post_message(message)
            focused = screen.focused
            if isinstance(focused, SerialConsole) and screen.maximized is None:
                self.app_focus = True
                if focused.take_key(message):
                    return True
        return super().post_message(message)

    @property
    def web_session(self) -> bool:
        return self.is_web if self._web is None else self._web

    # -- login and session ---------------------------------------------------------------------
    def get_default_screen(self) -> LoginScreen:
        target = self.cloud.client.url or "local daemon (unix socket)"
        return LoginScreen(self.settings.last_user, self.settings.last_project, target)

    async def log_in(self, user: str, password: str, project: str) -> None:
        """Called by the login screen's worker; raises MonostackError on refusal.

        A token without a project (Project left empty, and the user has no default project)
        can do almost nothing: every panel would say "policy doesn't allow". So the console
        scopes it at once to the user's only project, or asks which one, and says why."""
        await self.cloud.login(user, password, project or None)
        self.settings.last_user = user
        self.settings.last_project = project
        self.settings.save()
        self.logged_in = True
        self._session_changed()
        self.where = f"host {self.cloud.location}"
        if self.cloud.session is not None and not self.cloud.session.project_id:
            await self._scope_unscoped(user)
        await self.switch_mode("overview")
        if self.live:
            self.run_worker(self._follow_events(), group="events", exclusive=True,
                            exit_on_error=False)
        self._describe_host()

    async def _scope_unscoped(self, user: str) -> None:
        why = f"No project was given and {user} has no default project"
        try:
            projects = await self.cloud.my_projects()
        except MonostackError as exc:
            self.report_error(exc)
            return
        if len(projects) == 1:
            await self.cloud.switch_project(projects[0].id)
            self._session_changed()
            self.settings.last_project = projects[0].name
            self.settings.save()
            self.notify(f"{why}: working in {projects[0].name}, the only project {user} has "
                        "a role in.", title="Project chosen", timeout=8)
        elif projects:
            chosen = await self.push_screen(
                ProjectSwitcher(None, f"{why}: choose one of {len(projects)}."),
                wait_for_dismiss=True)
            if chosen:
                await self.cloud.switch_project(chosen)
                self._session_changed()
                self.settings.last_project = self.cloud.session.project_name or ""
                self.settings.save()
            else:
                self.notify(f"{why}: without one, little is visible. Ctrl+O picks one.",
                            title="No project", severity="warning", timeout=12)
        else:
            self.notify(f"{why}, and no role in any project: an admin can grant one "
                        "(Identity, g).", title="No project", severity="warning", timeout=12)

    def _session_changed(self) -> None:
        s = self.cloud.session
        if s is None:
            self.who = ""
            return
        role = " (admin)" if s.is_admin else ""
        self.who = f"{s.user_name}@{s.project_name or '-'}{role}"
        self.refresh_bindings()

    @work(exit_on_error=False, group="host")
    async def _describe_host(self) -> None:
        """'host edge-01 · QEMU' in the header when the caller may read os-hypervisors."""
        if not (self.cloud.is_admin and self.cloud.has("compute")):
            return
        try:
            hypervisors = await self.cloud.hypervisors()
        except MonostackError:
            return
        if hypervisors:
            h = hypervisors[0]
            self.where = f"host {h.hostname} · {h.type.lower() or 'hypervisor'}"

    # -- live updates --------------------------------------------------------------------------
    async def _follow_events(self) -> None:
        await EventFeed(self.cloud, self._on_cloud_event, self._on_link).run()

    def _on_link(self, up: bool, detail: str) -> None:
        was = self.link_up
        if detail.startswith(SESSION_EXPIRED):
            self.session_expired()
            return
        self.link_up = up
        if up and not was:
            self.notify("Reconnected to the daemon.", timeout=3)
            self.mark_dirty({"*"})

    def _on_cloud_event(self, event: CloudEvent) -> None:
        self.recent_events.appendleft(event)
        for screen in list(self._screens):
            screen.live_event(event)
        self.mark_dirty({event.resource_type, "event"})

    def mark_dirty(self, resource_types: set[str]) -> None:
        """Merge bursts: one reload per affected screen per debounce window."""
        self._dirty |= resource_types
        if not self._flush_pending:
            self._flush_pending = True
            self.set_timer(self.debounce_seconds, self._flush_dirty)

    def _flush_dirty(self) -> None:
        dirty, self._dirty, self._flush_pending = self._dirty, set(), False
        for screen in list(self._screens):
            if not screen.affected_by(dirty):
                continue
            if screen.is_current:
                screen.reload()
            else:
                screen.stale = True

    def session_expired(self) -> None:
        """The daemon refused our token (expired, revoked, daemon reset): log in again."""
        self.logged_in = False
        self.link_up = True
        self.refresh_bindings()
        self.switch_mode("_default")
        self.notify("Your session has ended: please log in again.", title="Session expired",
                    severity="warning", timeout=8)

    def register_screen(self, screen: CloudScreen) -> None:
        self._screens.add(screen)

    # -- errors --------------------------------------------------------------------------------
    def report_error(self, exc: BaseException) -> None:
        """Daemon errors as notifications carrying the OpenStack text, never a traceback."""
        if isinstance(exc, MonostackError):
            title, message = exc.title, exc.message
        elif isinstance(exc, OSError):
            title, message = "Local file error", f"{exc.strerror or exc}: {exc.filename or ''}"
        else:
            title, message = "Unexpected error", f"{type(exc).__name__}: {exc}"
        self.notify(message, title=title, severity="error", timeout=8)

    # -- actions -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("switch_screen", "switch_project", "refresh"):
            if not self.logged_in:
                return False
        if action == "switch_screen" and parameters:
            cls = SCREEN_CLASSES.get(str(parameters[0]))
            if cls is not None and cls.ADMIN_ONLY and not self.cloud.is_admin:
                return False
        return True

    def get_key_display(self, binding: Binding) -> str:
        if binding.show and binding.action == SCREENS_HINT_ACTION:
            return key_ranges([e.key for e in SCREEN_ENTRIES if self.screen_allowed(e.mode)]
                              or ["1"])
        return super().get_key_display(binding)

    def screen_entries(self) -> tuple[ScreenEntry, ...]:
        return SCREEN_ENTRIES

    def screen_allowed(self, mode: str) -> bool:
        cls = SCREEN_CLASSES.get(mode)
        return bool(cls and self.logged_in and (self.cloud.is_admin or not cls.ADMIN_ONLY))

    async def action_switch_screen(self, mode: str) -> None:
        if not self.screen_allowed(mode):
            return
        # Leave any modal (help, dialog) of the current mode before switching.
        while isinstance(self.screen, HelpScreen):
            self.pop_screen()
        await self.switch_mode(mode)

    def open_console(self, server_id: str, name: str) -> None:
        """The serial console of one instance, in the console screen's tabs."""
        self.run_worker(self._open_console(server_id, name), group="console",
                        exit_on_error=False)

    async def _open_console(self, server_id: str, name: str) -> None:
        from tui.screens.console import ConsoleScreen
        if not self.is_screen_installed("consoles"):
            self.install_screen(ConsoleScreen(self._console_transport), "consoles")
        consoles = self.get_screen("consoles")
        if self.screen is not consoles:
            await self.push_screen("consoles")
        try:
            await consoles.open_console(server_id, name)  # type: ignore[attr-defined]
        except Exception as exc:
            self.report_error(exc)

    async def _console_transport(self, server_id: str):
        from tui.console_link import open_serial_console
        return await open_serial_console(self.cloud, server_id)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"
        self.settings.theme = self.theme
        self.settings.save()

    def action_refresh(self) -> None:
        if isinstance(self.screen, CloudScreen):
            self.screen.reload()

    def action_switch_project(self, reason: str = "") -> None:
        session = self.cloud.session
        self.push_screen(ProjectSwitcher(session.project_id if session else None, reason),
                         self._project_chosen)

    def _project_chosen(self, project_id: str | None) -> None:
        if project_id and self.cloud.session and project_id != self.cloud.session.project_id:
            self._rescope(project_id)

    @work(exit_on_error=False, group="session")
    async def _rescope(self, project_id: str) -> None:
        try:
            await self.cloud.switch_project(project_id)
        except MonostackError as exc:
            self.report_error(exc)
            return
        self._session_changed()
        self.settings.last_project = self.cloud.session.project_name or ""
        self.settings.save()
        if isinstance(self.screen, CloudScreen) and self.screen.ADMIN_ONLY \
                and not self.cloud.is_admin:
            await self.switch_mode("overview")
        # What the panels said under the old scope (errors included) is no longer true.
        self.clear_notifications()
        self.notify(f"Now working in project {self.cloud.session.project_name}.", timeout=3)
        self._reload_all()

    def _reload_all(self) -> None:
        """Every screen now: the current one reloads, the others on their next visit."""
        self._dirty, self._flush_pending = set(), False
        for screen in list(self._screens):
            if screen.is_current:
                screen.reload()
            else:
                screen.stale = True

    async def on_unmount(self) -> None:
        await self.cloud.close()


def run_tui(url: str | None = None, socket_path: Path | str | None = None, *,
            remember: bool = True) -> int:
    """Entry point of `monostack tui` (and of each browser session of `monostack web`, which
    remembers nothing between sessions)."""
    sock = Path(socket_path) if socket_path else None

    def factory() -> MonostackClient:
        return MonostackClient(url, socket_path=sock)

    settings = Settings.load() if remember else Settings(persist=False)
    app = MonostackApp(factory, settings=settings)
    app.run()
    return app.return_code or 0


__all__ = ["MonostackApp", "run_tui", "SCREENS"]
