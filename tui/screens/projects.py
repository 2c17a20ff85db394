"""The project switcher: the projects this user has a role in; Enter rescopes the token.

Typing filters the list; Enter in the filter box takes the highlighted project (the first
match when nothing is highlighted), so `ctrl+o`, a few letters, Enter is the whole trip.
"""
from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from appliance.errors import MonostackError
from tui.cloud import Project
from tui.host import host_of
from tui.widgets.inputs import TextInput


class ProjectSwitcher(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ProjectSwitcher { align: center middle; }
    ProjectSwitcher > Vertical { width: 54; max-width: 100%; height: auto; max-height: 80%;
                                 border: thick $primary; background: $surface; }
    ProjectSwitcher OptionList { height: auto; max-height: 14; border: none; }
    ProjectSwitcher #reason { color: $warning; padding: 0 1; height: auto; }
    ProjectSwitcher #reason.-empty { display: none; }
    ProjectSwitcher #hint { color: $text-muted; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"),
                Binding("down", "move(1)", show=False), Binding("up", "move(-1)", show=False)]

    def __init__(self, current: str | None, reason: str = "") -> None:
        super().__init__()
        self.current = current
        self.reason = reason
        self.projects: list[Project] = []

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Switch project"
            yield Static(self.reason, id="reason", classes="" if self.reason else "-empty")
            yield TextInput(placeholder="type to filter", id="project-filter")
            yield Static("loading…", id="hint")
            yield OptionList()

    def on_mount(self) -> None:
        self.query_one("#project-filter", Input).focus()
        self._load()

    @work(exit_on_error=False)
    async def _load(self) -> None:
        try:
            self.projects = await host_of(self).cloud.my_projects()
        except MonostackError as exc:
            host_of(self).report_error(exc)
            self.dismiss(None)
            return
        self._fill()

    def _fill(self) -> None:
        needle = self.query_one("#project-filter", Input).value.strip().lower()
        shown = [p for p in self.projects if needle in p.name.lower()]
        options = self.query_one(OptionList)
        options.clear_options()
        for p in shown:
            mark = "● " if p.id == self.current else "  "
            options.add_option(Option(mark + p.name, id=p.id))
        ids = [p.id for p in shown]
        if shown:
            options.highlighted = ids.index(self.current) if self.current in ids else 0
        self.query_one("#hint", Static).update(
            f"{len(shown)} of {len(self.projects)} project(s) · enter switch · esc cancel")

    @on(Input.Changed, "#project-filter")
    def _filter_changed(self) -> None:
        if self.projects:
            self._fill()

    @on(Input.Submitted, "#project-filter")
    def _take_highlighted(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is not None:
            self.dismiss(options.get_option_at_index(options.highlighted).id)

    def action_move(self, step: int) -> None:
        """Up and Down move through the list while the filter keeps the keyboard."""
        options = self.query_one(OptionList)
        if options.option_count:
            current = options.highlighted if options.highlighted is not None else -step
            options.highlighted = max(0, min(options.option_count - 1, current + step))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
