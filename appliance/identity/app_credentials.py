"""Application credentials: how automation logs in without a user's password (Keystone's).

A user makes one with a project-scoped token; it names that project and a subset of the
user's roles there, and a secret shown once (kept as a scrypt hash, like a password). A login
with it gets a token on that project carrying the credential's roles that the user *still*
holds: removing the user's role, deleting the credential or letting it expire ends every token
it made at the next request. A restricted credential (the default) may not make further
credentials, so a leaked one cannot mint itself successors.
"""
from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field

from appliance.errors import Conflict, Forbidden, Invalid, NotFound
from appliance.state import Repository, Store

#: a user's credentials are few: a bound keeps one user from filling the store
MAX_PER_USER = 100


@dataclass
class ApplicationCredential:
    id: str
    name: str
    user_id: str
    project_id: str
    secret_hash: str
    #: role ids, a subset of the user's roles on the project when it was made
    roles: list[str] = field(default_factory=list)
    description: str = ""
    expires_at: float | None = None
    unrestricted: bool = False
    created_at: float = 0.0

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class ApplicationCredentials:
    """The records; hashing and token minting stay with the identity service."""

    def __init__(self, store: Store) -> None:
        self.repo = Repository(store, "application_credentials", ApplicationCredential)

    def get(self, cred_id: str) -> ApplicationCredential | None:
        return self.repo.get(cred_id)

    def of_user(self, user_id: str) -> list[ApplicationCredential]:
        return sorted(self.repo.list(lambda c: c.user_id == user_id), key=lambda c: c.name)

    def by_name(self, user_id: str, name: str) -> ApplicationCredential | None:
        return next((c for c in self.of_user(user_id) if c.name == name), None)

    def require_own(self, user_id: str, cred_id: str) -> ApplicationCredential:
        cred = self.repo.get(cred_id)
        if cred is None or cred.user_id != user_id:
            raise NotFound(f"Could not find Application Credential: {cred_id}.")
        return cred

    def check_new(self, user_id: str, name: str, *, made_with: str | None,
                  expires_at: float | None) -> None:
        """Refusals before anything is hashed or stored."""
        if made_with:
            maker = self.repo.get(made_with)
            if maker is not None and not maker.unrestricted:
                raise Forbidden("A restricted application credential cannot create other "
                                "application credentials.")
        if self.by_name(user_id, name) is not None:
            raise Conflict(f"Duplicate entry found with name {name}.")
        if len(self.of_user(user_id)) >= MAX_PER_USER:
            raise Forbidden(f"A user may hold at most {MAX_PER_USER} application credentials.")
        if expires_at is not None and expires_at <= time.time():
            raise Invalid("expires_at must be in the future.")

    def new(self, *, user_id: str, project_id: str, name: str, secret_hash: str,
            roles: list[str], description: str, expires_at: float | None,
            unrestricted: bool) -> ApplicationCredential:
        return ApplicationCredential(
            id=uuid.uuid4().hex, name=name, user_id=user_id, project_id=project_id,
            secret_hash=secret_hash, roles=roles, description=description,
            expires_at=expires_at, unrestricted=unrestricted, created_at=time.time())


def new_secret() -> str:
    return secrets.token_urlsafe(48)
