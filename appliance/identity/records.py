"""Identity records: what Keystone keeps, as typed dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"
ROLE_NAMES = ("admin", "member", "reader")
#: the target of a system-scope role assignment (Keystone's `system: all`), kept where a
#: project id goes: no project can have this id (project ids are uuid hex)
SYSTEM_SCOPE = "system:all"


@dataclass
class User:
    id: str
    name: str
    password_hash: str = ""
    enabled: bool = True
    domain_id: str = DEFAULT_DOMAIN_ID
    default_project_id: str | None = None
    email: str | None = None
    description: str = ""
    password_changed_at: float = 0.0
    created_at: str = ""


@dataclass
class Project:
    id: str
    name: str
    enabled: bool = True
    domain_id: str = DEFAULT_DOMAIN_ID
    description: str = ""
    created_at: str = ""


@dataclass
class Role:
    id: str
    name: str


@dataclass
class Assignment:
    """A role held by a user on a project; the id is derived so an assignment is idempotent."""

    id: str
    user_id: str
    project_id: str
    role_id: str

    @staticmethod
    def make_id(user_id: str, project_id: str, role_id: str) -> str:
        return f"{user_id}:{project_id}:{role_id}"


@dataclass
class Token:
    """A token is kept by the sha256 of its secret, so the store never holds a usable token."""

    id: str  # sha256 hex of the token string
    user_id: str
    project_id: str | None
    roles: list[str] = field(default_factory=list)
    issued_at: float = 0.0
    expires_at: float = 0.0
    audit_id: str = ""
    password_changed_at: float = 0.0
    #: the application credential this token was minted from ("" for a password login): its
    #: roles bound the token's, and deleting it ends the token
    app_cred_id: str = ""
    #: scoped to the system (Keystone's `system: all`) rather than to a project
    system: bool = False
