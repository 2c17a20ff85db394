"""The project switcher: the projects this user has a role in; Enter rescopes the token."""
from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from appliance.errors import MonostackError


class ProjectSwitcher(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ProjectSwitcher { align: center middle; }
    ProjectSwitcher > Vertical { width: 50; max-width: 100%; height: auto; max-height: 80%;
                                 border: thick $primary; background: $surface; }
    ProjectSwitcher OptionList { height: auto; max-height: 14; border: none; }
    ProjectSwitcher #hint { color: $text-muted; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, current: str | None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Switch project"
            yield Static("loading…", id="hint")
            yield OptionList()

    def on_mount(self) -> None:
        self._load()

    @work(exit_on_error=False)
    async def _load(self) -> None:
        try:
            projects = await self.app.cloud.my_projects()  # type: ignore[attr-defined]
        except MonostackError as exc:
            self.app.report_error(exc)  # type: ignore[attr-defined]
            self.dismiss(None)
            return
        options = self.query_one(OptionList)
        for p in projects:
            mark = "● " if p.id == self.current else "  "
            options.add_option(Option(mark + p.name, id=p.id))
        ids = [p.id for p in projects]
        if self.current in ids:
            options.highlighted = ids.index(self.current)
        self.query_one("#hint", Static).update(
            f"{len(projects)} project(s) · enter switch · esc cancel")
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
