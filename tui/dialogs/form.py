"""Form dialogs from a list of fields: every create/edit dialog of the TUI is one of these.

`FormDialog(title, [Field(...)...])` is a ModalScreen[dict | None]: it dismisses with the
values by field name (ints already parsed, selects as their value, multiselects as lists) or
None on Escape. Validation is local (required, int bounds); the daemon's own refusal comes
back as a notification with its OpenStack text.

A form whose choices can change while it is open (an image or volume made meanwhile) names
the event types that change them (`refresh_on`) and how to fetch them again
(`refresh_options`): the host reloads it like a screen, and the operator's choice is kept.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from textual import work

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, SelectionList, TextArea

from appliance.errors import MonostackError
from tui.cloud import CloudEvent
from tui.host import host_of
from tui.widgets.inputs import TextBox, TextInput

OptionsFetch = Callable[[], Awaitable[list[tuple[str, Any]]]]


@dataclass
class Field:
    name: str
    label: str
    kind: str = "text"  # text | password | int | select | multiselect | textarea | checkbox
    default: Any = None
    options: list[tuple[str, Any]] = field(default_factory=list)
    required: bool = False
    placeholder: str = ""
    minimum: int | None = None


class FormDialog(ModalScreen[dict | None]):
    DEFAULT_CSS = """
    FormDialog { align: center middle; }
    FormDialog > Vertical { width: 76; max-width: 100%; height: auto; max-height: 100%;
                            border: thick $primary; background: $surface; padding: 0 1; }
    FormDialog VerticalScroll { height: auto; max-height: 18; }
    FormDialog Label { margin-top: 1; color: $text-muted; }
    FormDialog Input, FormDialog Select { width: 1fr; }
    FormDialog TextArea { height: 5; }
    FormDialog SelectionList { height: auto; max-height: 6; }
    FormDialog #form-error { color: $error; height: auto; }
    FormDialog #buttons { height: auto; align: right middle; margin-top: 1; }
    FormDialog Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Save")]

    def __init__(self, title: str, fields: list[Field], *, submit: str = "Create",
                 refresh_options: dict[str, OptionsFetch] | None = None,
                 refresh_on: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.title_text = title
        self.fields = fields
        self.submit_label = submit
        self.refresh_options = refresh_options or {}
        self.refresh_on = refresh_on
        self.stale = False

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            box.border_subtitle = "ctrl+s save · esc cancel"
            with VerticalScroll():
                for f in self.fields:
                    if f.kind != "checkbox":
                        yield Label(f.label + (" *" if f.required else ""))
                    yield self._widget(f)
            yield Label("", id="form-error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.submit_label, id="submit", variant="primary")

    def _widget(self, f: Field):
        wid = f"field-{f.name}"
        if f.kind in ("text", "password", "int"):
            return TextInput(value="" if f.default is None else str(f.default), id=wid,
                         password=f.kind == "password", placeholder=f.placeholder,
                         type="integer" if f.kind == "int" else "text")
        if f.kind == "select":
            kwargs: dict[str, Any] = {"allow_blank": not f.required or not f.options}
            if f.default is not None:
                kwargs["value"] = f.default
            elif f.required and f.options:
                kwargs["value"] = f.options[0][1]
            return Select(f.options, id=wid, prompt=f.placeholder or "—", **kwargs)
        if f.kind == "multiselect":
            chosen = set(f.default or [])
            return SelectionList(*[(label, value, value in chosen) for label, value in f.options],
                                 id=wid)
        if f.kind == "textarea":
            return TextBox(str(f.default or ""), id=wid)
        if f.kind == "checkbox":
            return Checkbox(f.label, bool(f.default), id=wid)
        raise ValueError(f"unknown field kind {f.kind}")

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.fields:
            w = self.query_one(f"#field-{f.name}")
            if isinstance(w, Input):
                out[f.name] = w.value.strip() if f.kind != "password" else w.value
            elif isinstance(w, Select):
                out[f.name] = None if w.is_blank() else w.value
            elif isinstance(w, SelectionList):
                out[f.name] = list(w.selected)
            elif isinstance(w, TextArea):
                out[f.name] = w.text
            elif isinstance(w, Checkbox):
                out[f.name] = w.value
        return out

    def validate(self, values: dict[str, Any]) -> str:
        for f in self.fields:
            v = values.get(f.name)
            if f.required and (v is None or v == "" or v == []):
                return f"{f.label} is required"
            if f.kind == "int" and v not in (None, ""):
                try:
                    values[f.name] = int(v)
                except ValueError:
                    return f"{f.label} must be a whole number"
                if f.minimum is not None and values[f.name] < f.minimum:
                    return f"{f.label} must be at least {f.minimum}"
            elif f.kind == "int":
                values[f.name] = None
        return ""

    def on_mount(self) -> None:
        first = self.query("Input, Select, SelectionList, TextArea, Checkbox").first()
        first.focus()
        if self.refresh_options:
            host_of(self).register_screen(self)

    # live choices: the host calls these like it does for screens
    def affected_by(self, resource_types: set[str]) -> bool:
        return bool(self.refresh_on & resource_types) or "*" in resource_types

    def reload(self) -> None:
        self.stale = False
        if self.refresh_options and self.is_mounted:
            self._refresh_choices()

    def live_event(self, event: CloudEvent) -> None:
        pass

    def on_screen_resume(self) -> None:
        if self.stale:
            self.reload()

    @work(exclusive=True, group="load", exit_on_error=False)
    async def _refresh_choices(self) -> None:
        for name, fetch in self.refresh_options.items():
            try:
                options = await fetch()
            except MonostackError:
                continue
            widget = self.query_one(f"#field-{name}")
            if isinstance(widget, Select):
                keep = widget.value
                widget.set_options(options)
                if any(value == keep for _, value in options):
                    widget.value = keep

    def on_input_submitted(self) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()

    def action_submit(self) -> None:
        values = self.values()
        problem = self.validate(values)
        if problem:
            self.query_one("#form-error", Label).update(problem)
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)
