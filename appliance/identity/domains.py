"""Keystone domains: name spaces for users and projects.

The default domain (`default`, "Default") always exists and cannot be deleted; others are
made by the admin. A user's and a project's name is unique within its domain. A disabled
domain's users cannot log in and its tokens stop working; deleting a domain (disabled first,
as Keystone insists) deletes its projects and users.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from appliance.errors import Conflict, Forbidden, Invalid, NotFound
from appliance.identity.records import DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME
from appliance.state import Repository, Store


@dataclass
class Domain:
    id: str
    name: str
    enabled: bool = True
    description: str = ""
    created_at: str = ""


DEFAULT_DOMAIN = Domain(id=DEFAULT_DOMAIN_ID, name=DEFAULT_DOMAIN_NAME,
                        description="The default domain")

#: the types Keystone's schema allows for each writable field of a domain
DOMAIN_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "enabled": (bool,), "description": (str, type(None))}


class Domains:
    def __init__(self, store: Store) -> None:
        self.repo = Repository(store, "domains", Domain)

    def get(self, domain_id: str) -> Domain | None:
        return DEFAULT_DOMAIN if domain_id == DEFAULT_DOMAIN_ID else self.repo.get(domain_id)

    def require(self, domain_id: str) -> Domain:
        domain = self.get(domain_id)
        if domain is None:
            raise NotFound(f"Could not find domain: {domain_id}.")
        return domain

    def by_name(self, name: str) -> Domain | None:
        if name == DEFAULT_DOMAIN_NAME:
            return DEFAULT_DOMAIN
        return next(iter(self.repo.list(lambda d: d.name == name)), None)

    def find(self, id_or_name: str | None) -> Domain | None:
        """A login's `domain` (id or name); None names the default domain."""
        if id_or_name is None:
            return DEFAULT_DOMAIN
        return self.get(id_or_name) or self.by_name(id_or_name)

    def all(self) -> list[Domain]:
        return [DEFAULT_DOMAIN, *sorted(self.repo.list(), key=lambda d: d.name)]

    def enabled(self, domain_id: str) -> bool:
        domain = self.get(domain_id)
        return domain is not None and domain.enabled

    def new(self, name: str, description: str, enabled: bool, created_at: str) -> Domain:
        if not isinstance(name, str) or not name.strip() or len(name) > 64 \
                or any(ord(c) < 32 for c in name):
            raise Invalid("A domain name must be 1 to 64 characters, no control characters.")
        if self.by_name(name) is not None:
            raise Conflict(f"Duplicate entry found with name {name}.")
        return Domain(id=uuid.uuid4().hex, name=name, enabled=enabled,
                      description=description or "", created_at=created_at)

    def check_deletable(self, domain: Domain) -> None:
        if domain.id == DEFAULT_DOMAIN_ID:
            raise Forbidden("The default domain cannot be deleted.")
        if domain.enabled:
            raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
