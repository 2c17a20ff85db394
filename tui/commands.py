"""The command palette (ctrl+p): every action of the app and of the current screen, by name.

Screen actions come from the screen's own BINDINGS (the description is the command name), so a
new key on a screen shows up in the palette without being listed twice.
"""
from __future__ import annotations

from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.host import host_of


class MonostackCommands(Provider):
    def _commands(self) -> list[tuple[str, object, str]]:
        app = self.app
        host = host_of(self.screen)
        out: list[tuple[str, object, str]] = []
        if host.logged_in:
            for entry in host.screen_entries():
                if host.screen_allowed(entry.mode):
                    out.append((f"Go to {entry.title}", partial(app.run_action,
                                f"switch_screen('{entry.mode}')"), f"key {entry.key}"))
            out.append(("Switch project", partial(app.run_action, "switch_project"), "ctrl+o"))
            out.append(("Refresh now", partial(app.run_action, "refresh"), "ctrl+r"))
        out.append(("Toggle light/dark theme", partial(app.run_action, "toggle_theme"), "ctrl+t"))
        out.append(("Help: all keys", partial(app.run_action, "help"), "?"))
        out.append(("Quit monostack", partial(app.run_action, "quit"), "ctrl+q"))
        screen = self.screen
        title = getattr(screen, "TITLE", "")
        for b in getattr(screen, "BINDINGS", []):
            if isinstance(b, Binding) and b.description and title:
                out.append((f"{title}: {b.description}",
                            partial(screen.run_action, b.action), f"key {b.key_display or b.key}"))
        return out

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)  # type: ignore[arg-type]
