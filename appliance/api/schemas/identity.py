"""Keystone v3 request bodies for users, projects, roles and application credentials (the
token requests stay with the identity service, which bounds them before any hashing).

As Keystone's schemas (keystone/identity/schema.py, keystone/resource/schema.py): names 1-255
characters and not all blank, `enabled` a JSON boolean, extra attributes allowed but never
stored here, so only bounded in number.
"""
from __future__ import annotations

from appliance.api.schemas.types import BOOLEAN, string, wrapped
from appliance.identity.passwords import MAX_PASSWORD_BYTES

NAME = string(255, 1, pattern="^(?=.*[^\\s])[^\\x00-\\x1f\\x7f-\\x9f]*\\Z",
              reason="1-255 printable characters, not all blank")
DESCRIPTION = string(65535, 0, nullable=True, pattern="^[^\\x00]*\\Z", reason="text without NUL")
ID = string(64, 1, nullable=True, pattern="^[a-zA-Z0-9_-]*\\Z", reason="an id")
#: characters, checked again in bytes by the service (a password is at most
#: MAX_PASSWORD_BYTES of UTF-8)
PASSWORD = string(MAX_PASSWORD_BYTES, 0, nullable=True, pattern="^[^\\x00]*\\Z",
                  reason="text without NUL")


def _extra(properties: dict, required: tuple[str, ...] = ()) -> dict:
    schema = {"type": "object", "properties": properties, "maxProperties": 32,
              "additionalProperties": {"type": ["string", "integer", "boolean", "null"],
                                       "maxLength": 255}}
    if required:
        schema["required"] = list(required)
    return schema


_USER = {"name": NAME, "password": PASSWORD, "enabled": BOOLEAN,
         "email": string(255, 0, nullable=True), "description": DESCRIPTION,
         "default_project_id": ID, "domain_id": ID,
         "options": {"type": "object", "maxProperties": 16}}
USER_CREATE = wrapped("user", _extra(_USER, ("name",)))
USER_UPDATE = wrapped("user", _extra(_USER))

_PROJECT = {"name": NAME, "description": DESCRIPTION, "enabled": BOOLEAN, "domain_id": ID,
            "parent_id": ID, "is_domain": {"enum": [False]},
            "tags": {"type": "array", "maxItems": 80, "items": string(255, 1)},
            "options": {"type": "object", "maxProperties": 16}}
PROJECT_CREATE = wrapped("project", _extra(_PROJECT, ("name",)))
PROJECT_UPDATE = wrapped("project", _extra(_PROJECT))

ROLE_CREATE = wrapped("role", _extra({"name": NAME, "description": DESCRIPTION,
                                      "domain_id": ID,
                                      "options": {"type": "object", "maxProperties": 16}},
                                     ("name",)))

_ROLE_REF = {"type": "object", "properties": {"id": ID, "name": string(255, 1),
                                              "domain_id": ID},
             "additionalProperties": False}
APP_CREDENTIAL_CREATE = wrapped("application_credential", {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {
        "name": NAME, "secret": string(1024, 1, nullable=True, pattern="^[^\\x00]*\\Z",
                                       reason="text without NUL"),
        "description": string(1024, 0, nullable=True, pattern="^[^\\x00]*\\Z",
                              reason="text without NUL"),
        "expires_at": string(64, 0, nullable=True, pattern="^[0-9T:.+Z -]*\\Z",
                             reason="an ISO 8601 time"),
        "roles": {"type": ["array", "null"], "maxItems": 32, "items": _ROLE_REF},
        "unrestricted": BOOLEAN,
        "access_rules": {"type": ["array", "null"], "maxItems": 0},
    }})

_DOMAIN = {"name": NAME, "description": DESCRIPTION, "enabled": BOOLEAN,
           "id": ID, "explicit_domain_id": ID,
           "tags": {"type": "array", "maxItems": 80, "items": string(255, 1)},
           "options": {"type": "object", "maxProperties": 16}}
DOMAIN_CREATE = wrapped("domain", _extra(_DOMAIN, ("name",)))
DOMAIN_UPDATE = wrapped("domain", _extra(_DOMAIN))
