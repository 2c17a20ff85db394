"""Log in: user, password, project. The last user and project are filled in; the password never."""
from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Input, Label, LoadingIndicator, Static

from appliance.errors import MonostackError
from tui.host import host_of
from tui.widgets.inputs import TextInput

LOGO = "monostack"


class LoginScreen(Screen):
    AUTO_FOCUS = None
    # Enter, Tab and Shift+Tab are handled as the key arrives (priority bindings), not after
    # the field's Submitted message or the app's focus binding: keys typed ahead (a fast
    # typist, a paste, a password manager's `user<Tab>password<Enter>`, a browser session)
    # then land in the next field instead of the one being left.
    BINDINGS = [Binding("ctrl+t", "app.toggle_theme", "Theme", show=False),
                Binding("enter", "next_or_submit", show=False, priority=True),
                Binding("tab", "app.focus_next", show=False, priority=True),
                Binding("shift+tab", "app.focus_previous", show=False, priority=True)]
    DEFAULT_CSS = """
    LoginScreen { align: center middle; }
    LoginScreen #login-box { width: 56; max-width: 100%; height: auto; border: thick $primary;
                             background: $surface; padding: 0 2; }
    LoginScreen #logo { width: 1fr; content-align: center middle; text-style: bold;
                        color: $accent; }
    LoginScreen #tagline { width: 1fr; content-align: center middle; color: $text-muted;
                           margin-bottom: 1; }
    LoginScreen .login-row { height: 3; }
    LoginScreen .login-row Label { width: 10; height: 3; content-align: left middle;
                                   color: $text-muted; }
    LoginScreen .login-row Input { width: 1fr; }
    LoginScreen #login-error { color: $error; height: auto; min-height: 1; }
    LoginScreen Button { width: 1fr; }
    LoginScreen LoadingIndicator { height: 1; display: none; }
    LoginScreen.-busy LoadingIndicator { display: block; }
    """

    def __init__(self, user: str = "", project: str = "", target: str = "") -> None:
        super().__init__()
        self.user = user
        self.project = project
        self.target = target

    def compose(self) -> ComposeResult:
        with Vertical(id="login-box") as box:
            box.border_title = "Log in"
            box.border_subtitle = self.target
            yield Static(LOGO, id="logo")
            yield Static("OpenStack in a box", id="tagline")
            with Horizontal(classes="login-row"):
                yield Label("User")
                yield TextInput(self.user, id="user", placeholder="admin")
            with Horizontal(classes="login-row"):
                yield Label("Password")
                yield TextInput(id="password", password=True)
            with Horizontal(classes="login-row"):
                yield Label("Project")
                yield TextInput(self.project, id="project", placeholder="(the user's default)")
            yield Static("", id="login-error")
            yield LoadingIndicator()
            yield Button("Log in", id="login", variant="primary")

    def on_mount(self) -> None:
        # query, not query_one: a session quit while it starts (a web console's spare at
        # shutdown) mounts without its fields, and must end quietly
        for field in self.query("#password" if self.user else "#user").results(Input):
            field.focus()

    def action_next_or_submit(self) -> None:
        order = ["user", "password", "project"]
        field = self.focused.id if isinstance(self.focused, Input) else None
        # Enter in the password logs in: the project is optional (the user's default, or
        # their only project); walking into it first made every login two Enters.
        if field not in order or field in ("password", "project"):
            self._submit_when_typed([self.query_one(f"#{f}", Input) for f in order])
        else:
            self.set_focus(self.query_one(f"#{order[order.index(field) + 1]}", Input))

    def _submit_when_typed(self, inputs: list[Input]) -> None:
        """Submit once each field has taken the keys already queued for it (this binding runs
        as Enter arrives, possibly before the characters typed just ahead of it)."""
        if inputs:
            inputs[0].call_later(self._submit_when_typed, inputs[1:])
        else:
            self.submit()

    @on(Button.Pressed, "#login")
    def submit(self) -> None:
        if self.has_class("-busy"):
            # a login is on its way: an Enter typed ahead (into the password field, which
            # keeps focus) must not start another, which would cancel the first (exclusive)
            return
        user = self.query_one("#user", Input).value.strip()
        password = self.query_one("#password", Input).value
        project = self.query_one("#project", Input).value.strip()
        if not user or not password:
            self.query_one("#login-error", Static).update("User and password are required.")
            return
        self.add_class("-busy")
        self.query_one("#login-error", Static).update("")
        self._login(user, password, project)

    @work(exclusive=True, exit_on_error=False)
    async def _login(self, user: str, password: str, project: str) -> None:
        try:
            await host_of(self).log_in(user, password, project)
        except MonostackError as exc:
            self.query_one("#login-error", Static).update(exc.message)
            self.query_one("#password", Input).value = ""
            self.query_one("#password", Input).focus()
        except Exception as exc:
            self.query_one("#login-error", Static).update(f"{type(exc).__name__}: {exc}")
        finally:
            self.remove_class("-busy")
