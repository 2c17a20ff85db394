"""Identity (admin): users, projects and role assignments, with create / enable / delete / grant."""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, TabbedContent, TabPane

from tui.cloud import Assignment, Project, Role, User
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.form import Field, FormDialog
from tui.screens.base import TabbedScreen
from tui.widgets.table import selected_key, sync_rows


@dataclass
class IdentityData:
    users: list[User]
    projects: list[Project]
    roles: list[Role]
    assignments: list[Assignment]


def _enabled(flag: bool) -> Text:
    return Text("yes", style="green") if flag else Text("no", style="bold red")


class IdentityScreen(TabbedScreen):
    TITLE = "Identity"
    ADMIN_ONLY = True
    RESOURCE_TYPES = frozenset({"user", "project", "role", "assignment", "identity"})
    BINDINGS = [
        *TabbedScreen.TAB_BINDINGS,
        Binding("n", "new", "New"),
        Binding("g", "grant", "Grant role"),
        Binding("e", "toggle_enabled", "Enable/disable"),
        Binding("d", "delete", "Delete"),
    ]

    data: IdentityData | None = None

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="identity-tabs"):
            with TabPane("Users", id="tab-users"):
                yield DataTable(id="users", cursor_type="row", zebra_stripes=True)
            with TabPane("Projects", id="tab-projects"):
                yield DataTable(id="projects", cursor_type="row", zebra_stripes=True)
            with TabPane("Role assignments", id="tab-assignments"):
                yield DataTable(id="assignments", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#users", DataTable).add_columns("Name", "Enabled", "Default project",
                                                         "Email")
        self.query_one("#projects", DataTable).add_columns("Name", "Enabled", "Description")
        self.query_one("#assignments", DataTable).add_columns("User", "Project", "Role")
        super().on_mount()
        self.query(DataTable).first().focus()

    async def fetch(self) -> IdentityData:
        c = self.cloud
        return IdentityData(await c.users(), await c.projects(), await c.roles(),
                            await c.assignments())

    def show(self, data: IdentityData) -> None:
        self.data = data
        names = {p.id: p.name for p in data.projects}
        sync_rows(self.query_one("#users", DataTable), [
            (u.id, (u.name, _enabled(u.enabled), names.get(u.default_project_id or "", "—"),
                    u.email or "—")) for u in sorted(data.users, key=lambda u: u.name)])
        sync_rows(self.query_one("#projects", DataTable), [
            (p.id, (p.name, _enabled(p.enabled), p.description or "—"))
            for p in sorted(data.projects, key=lambda p: p.name)])
        sync_rows(self.query_one("#assignments", DataTable), [
            (f"{a.project_id}/{a.user_id}/{a.role_id}", (a.user, a.project, a.role))
            for a in data.assignments])

    @property
    def tab(self) -> str:
        return (self.query_one("#identity-tabs", TabbedContent).active or "tab-users")[4:]

    def _selected(self) -> str | None:
        return selected_key(self.query_one(f"#{self.tab}", DataTable))

    # actions
    def action_new(self) -> None:
        if self.tab == "projects":
            self.app.push_screen(FormDialog("New project", [
                Field("name", "Name", required=True),
                Field("description", "Description")]), self._create_project)
            return
        projects = [(p.name, p.id) for p in (self.data.projects if self.data else [])]
        self.app.push_screen(FormDialog("New user", [
            Field("name", "Name", required=True),
            Field("password", "Password", kind="password", required=True),
            Field("project", "Default project (gets the member role)", kind="select",
                  options=projects),
            Field("email", "Email")]), self._create_user)

    def _create_project(self, values: dict | None) -> None:
        if values:
            self.call(lambda: self.cloud.create_project(values["name"], values["description"]),
                      done=f"Project {values['name']} created.")

    def _create_user(self, values: dict | None) -> None:
        if not values:
            return
        member = next((r.id for r in (self.data.roles if self.data else [])
                       if r.name == "member"), None)

        async def create() -> None:
            user = await self.cloud.create_user(values["name"], values["password"],
                                                values["project"], values["email"])
            if values["project"] and member:
                await self.cloud.grant(values["project"], user.id, member)
        self.call(create, done=f"User {values['name']} created.")

    def action_grant(self) -> None:
        if not self.data:
            return
        d = self.data
        self.app.push_screen(FormDialog("Grant a role", [
            Field("user", "User", kind="select", required=True,
                  options=[(u.name, u.id) for u in sorted(d.users, key=lambda u: u.name)]),
            Field("project", "Project", kind="select", required=True,
                  options=[(p.name, p.id) for p in sorted(d.projects, key=lambda p: p.name)]),
            Field("role", "Role", kind="select", required=True,
                  options=[(r.name, r.id) for r in sorted(d.roles, key=lambda r: r.name)]),
        ], submit="Grant"), self._grant)

    def _grant(self, values: dict | None) -> None:
        if values:
            self.call(lambda: self.cloud.grant(values["project"], values["user"], values["role"]),
                      done="Role granted.")

    def action_toggle_enabled(self) -> None:
        key = self._selected()
        if not self.require_selection(key) or not self.data or self.tab == "assignments":
            return
        kind = self.tab[:-1]
        items = self.data.users if kind == "user" else self.data.projects
        item = next((i for i in items if i.id == key), None)
        if item is not None:
            self.call(lambda: self.cloud.set_enabled(kind, item.id, not item.enabled),
                      done=f"{item.name} {'disabled' if item.enabled else 'enabled'}.")

    def action_delete(self) -> None:
        key = self._selected()
        if not self.require_selection(key) or not self.data:
            return
        tab = self.tab
        if tab == "assignments":
            pid, uid, rid = key.split("/")
            a = next(a for a in self.data.assignments if (a.project_id, a.user_id, a.role_id)
                     == (pid, uid, rid))
            question = f"Revoke role {a.role} of {a.user} on project {a.project}?"
            action = lambda: self.cloud.revoke(pid, uid, rid)  # noqa: E731
            yes = "Revoke"
        else:
            kind = tab[:-1]
            items = self.data.users if kind == "user" else self.data.projects
            name = next((i.name for i in items if i.id == key), key)
            question = f"Delete {kind} {name}? This cannot be undone."
            action = lambda: self.cloud.delete_identity(kind, key)  # noqa: E731
            yes = "Delete"

        def answered(ok: bool | None) -> None:
            if ok:
                self.call(action, done="Done.")
        self.app.push_screen(ConfirmDialog(question, yes=yes), answered)
