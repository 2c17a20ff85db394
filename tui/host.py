"""What a screen may ask of the app that shows it: the `ConsoleHost` protocol.

Screens, dialogs and the command palette never import `tui.app`: they reach the app through
this small protocol (`host_of(widget)`), so a screen can be read on its own and tested inside
any App that offers these members (tests/tui/test_screen_alone.py mounts one in a stand-in).
`MonostackApp` is the one real host.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from tui.clock import Clock
from tui.cloud import Cloud, CloudEvent

if TYPE_CHECKING:
    from textual.dom import DOMNode


@dataclass(frozen=True, slots=True)
class ScreenEntry:
    """One numbered screen of the app, as the palette and the help sheet list it."""

    key: str
    mode: str
    title: str


class Reloadable(Protocol):
    """A screen the host reloads when events touch the resource types it shows."""

    stale: bool
    is_current: bool

    def affected_by(self, resource_types: set[str]) -> bool: ...

    def reload(self) -> None: ...

    def live_event(self, event: CloudEvent) -> None: ...


class ConsoleHost(Protocol):
    """The app as its screens see it."""

    cloud: Cloud
    clock: Clock
    refresh_seconds: float
    logged_in: bool

    @property
    def web_session(self) -> bool:
        """Does this console run in a browser (`monostack web`)? Then a path typed into it
        names a file on the appliance, not on the operator's machine."""
        ...

    @property
    def recent_events(self) -> Sequence[CloudEvent]:
        """Events seen on the live stream, newest first."""
        ...

    def register_screen(self, screen: Reloadable) -> None:
        """Reload `screen` (or mark it stale) when events touch what it shows."""

    def report_error(self, exc: BaseException) -> None:
        """Show an error as a notification, never a traceback."""

    def open_console(self, server_id: str, name: str) -> None:
        """Open (or bring forward) the serial console of one instance."""

    async def log_in(self, user: str, password: str, project: str) -> None:
        """Authenticate; raises MonostackError on refusal."""

    def screen_allowed(self, mode: str) -> bool:
        """May this session open the numbered screen `mode`?"""

    def screen_entries(self) -> Sequence[ScreenEntry]:
        """The numbered screens, in footer order."""


def host_of(node: "DOMNode") -> ConsoleHost:
    """The app that shows `node`, as a ConsoleHost."""
    return cast(ConsoleHost, node.app)
