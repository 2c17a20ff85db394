"""Request bodies and query strings checked against JSON schemas before a handler reads them.

Why a schema and not checks in each handler: a hostile or careless client must get a 400 that
names the field, and nothing it sends may be allocated, stored or converted (`int(1e400)`,
`bool("no")`) before it is bounded. Hand-written checks scattered over handlers missed cases;
one declarative schema per request (in `appliance.api.schemas`) checked by jsonschema (as Nova
does) cannot forget a field it lists, and `additionalProperties: false` refuses the ones it
does not.

This module is the one place a schema failure becomes an error of `appliance.errors`:
`BadRequest("Invalid input for field/attribute max_count. Value: 0. 0 is less than the minimum
of 1")`, Nova's wording, which the error middleware then shapes per service.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import re
import uuid
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from aiohttp import web
from appliance.api.util import json_body
from appliance.errors import BadRequest

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return str(uuid.UUID(value)) == value.lower()


def _is_ipv4(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.IPv4Address(value))


def _is_ipv6(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.IPv6Address(value))


def _is_ip(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.ip_address(value))


def _is_cidr(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.ip_network(value, strict=False))


def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return True
    base64.b64decode(value, validate=True)
    return True


def _is_ssh_public_key(value: object) -> bool:
    """One line an OpenSSH `authorized_keys` would take: a key `cryptography` can load."""
    if not isinstance(value, str):
        return True
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key
    line = value.strip()
    if "\n" in line or "\r" in line:
        raise ValueError("a public key is one line")
    try:
        load_ssh_public_key(line.encode())
    except Exception as exc:  # cryptography raises ValueError or UnsupportedAlgorithm
        raise ValueError(str(exc)) from exc
    return True


@cache
def _jsonschema() -> tuple[Any, Any, Any]:
    """(validator class, format checker, best_match), built on the first validation: importing
    jsonschema (and referencing, rpds) is a tenth of the daemon's start, and no request needs
    it before one carries a body or a query to check."""
    from jsonschema import Draft202012Validator, FormatChecker, validators
    from jsonschema.exceptions import best_match

    # JSON's integers are integers: 64.5, 1e400 (inf), 64.0 and true are not (jsonschema's
    # 2020-12 checker would take 64.0; Nova's Draft 4 does not, and neither do we).
    types = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool))
    formats = FormatChecker()
    for name, check, raises in _FORMAT_CHECKS:
        formats.checks(name, raises=raises)(check)
    return validators.extend(Draft202012Validator, type_checker=types), formats, best_match


_FORMAT_CHECKS: tuple[tuple[str, Any, Any], ...] = (
    ("uuid", _is_uuid, ValueError),
    ("ipv4", _is_ipv4, ValueError),
    ("ipv6", _is_ipv6, ValueError),
    ("ip-address", _is_ip, ValueError),
    ("cidr", _is_cidr, ValueError),
    ("base64", _is_base64, (binascii.Error, ValueError)),
    ("ssh-public-key", _is_ssh_public_key, ValueError),
)
_compiled: dict[int, Any] = {}

#: How many errors are weighed to pick the one to report (a list of 10^5 bad items must not
#: cost 10^5 error objects: the body size bounds the work, this bounds the report).
_ERRORS_WEIGHED = 16
_VALUE_SHOWN = 80


def _validator(schema: Mapping[str, Any]) -> Any:
    """Schemas are module constants: compile each once (checked against the metaschema then,
    so a broken schema fails the first request in tests, not silently)."""
    key = id(schema)
    v = _compiled.get(key)
    if v is None:
        validator, formats, _ = _jsonschema()
        validator.check_schema(schema)
        v = _compiled[key] = validator(schema, format_checker=formats)
    return v


def compile_all() -> int:
    """Compile every request schema now; returns how many. The daemon runs this in a thread
    once it has settled: the first request carrying a body otherwise paid for importing
    jsonschema and compiling its schema on the event loop (~320 ms measured under load at the
    first POST /servers after a start, a stall for every other client and DHCP)."""
    import importlib
    import pkgutil

    from appliance.api import schemas

    count = 0
    for info in pkgutil.iter_modules(schemas.__path__):
        module = importlib.import_module(f"{schemas.__name__}.{info.name}")
        for name, value in vars(module).items():
            if name.isupper() and not name.startswith("_") and isinstance(value, dict) \
                    and ("type" in value or "properties" in value):
                _validator(value)
                count += 1
    return count


def _path(error: ValidationError) -> list[str | int]:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = [p for p in error.validator_value
                   if isinstance(error.instance, dict) and p not in error.instance]
        path += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        extra = [k for k in error.instance
                 if k not in known and not any(p.search(k) for p in patterns)]
        path += extra[:1]
    return path


def _render(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if part.isprintable() else repr(part)
            out += ("." if out else "") + text[:_VALUE_SHOWN]
    return out


#: Our wording for the keywords whose jsonschema message would repeat the whole value (a 1 MB
#: string, a 10^5-entry map) or say little.
_REASONS: dict[str, Any] = {
    "additionalProperties": lambda v: "This attribute is not recognised.",
    "required": lambda v: "This attribute is required.",
    "maxLength": lambda v: f"It is longer than {v} characters.",
    "minLength": lambda v: f"It is shorter than {v} character(s).",
    "maxItems": lambda v: f"It has more than {v} items.",
    "minItems": lambda v: f"It has fewer than {v} item(s).",
    "maxProperties": lambda v: f"It has more than {v} entries.",
    "minProperties": lambda v: f"It has fewer than {v} entries.",
    "enum": lambda v: "It must be one of: " + ", ".join(repr(x) for x in v[:12]) + ".",
    "format": lambda v: f"It is not a valid {v}.",
    "pattern": lambda v: "It holds characters that are not allowed here.",
    "oneOf": lambda v: "It matches none of the accepted forms.",
    "anyOf": lambda v: "It matches none of the accepted forms.",
}


def _reason(error: ValidationError) -> str:
    custom = error.schema.get("x-reason") if isinstance(error.schema, dict) else None
    if error.validator in ("pattern", "format") and custom:
        return f"It must be {custom}."
    wording = _REASONS.get(str(error.validator))
    if wording is not None:
        return wording(error.validator_value)
    if error.validator == "type":
        kinds = error.validator_value
        kinds = " or ".join(kinds) if isinstance(kinds, list) else kinds
        return f"It is not of type {kinds}."
    return error.message[:300]  # minimum, maximum …: short, and they name the bound


def _shown(value: Any) -> str:
    """The offending value as a client can recognise it, never the whole of a huge one."""
    if isinstance(value, str) and len(value) > _VALUE_SHOWN:
        return repr(value[:_VALUE_SHOWN]) + "…"
    if isinstance(value, (dict, list)) and len(value) > 8:
        return f"<{type(value).__name__} of {len(value)} items>"
    text = repr(value)
    return text if len(text) <= _VALUE_SHOWN else text[:_VALUE_SHOWN] + "…"


def validate(schema: Mapping[str, Any], value: Any) -> Any:
    """`value` if it matches `schema`; else BadRequest naming the field (the first, most
    relevant failure), its value (shortened) and why."""
    v = _validator(schema)
    errors = list(itertools.islice(v.iter_errors(value), _ERRORS_WEIGHED))
    if not errors:
        return value
    error = _jsonschema()[2](errors)
    path = _path(error)
    if len(path) > 1 and path[0] == schema.get("x-wrapper"):
        path = path[1:]  # "max_count", not "server.max_count" (as Nova names it)
    if path:
        raise BadRequest(f"Invalid input for field/attribute {_render(path)}. "
                         f"Value: {_shown(error.instance)}. {_reason(error)}")
    raise BadRequest(f"Invalid request body. {_reason(error)}")


async def valid_body(request: web.Request, schema: Mapping[str, Any], *,
                     unwrap: bool = True) -> Any:
    """The parsed JSON body once it matches `schema`; with an `x-wrapper` schema
    ({"server": {...}}), the wrapped object (unless `unwrap` is false). The one door every
    handler reads a body by."""
    body = validate(schema, await json_body(request))
    wrapper = schema.get("x-wrapper")
    return body[wrapper] if unwrap and isinstance(wrapper, str) else body


def valid_query(request: web.Request, schema: Mapping[str, Any]) -> dict[str, list[str]]:
    """The query string as {name: [values]} once it matches `schema` (an object schema whose
    properties are arrays of strings): limit, marker and filters bounded before any use."""
    query: dict[str, list[str]] = {}
    for key in request.query:
        query.setdefault(key, request.query.getall(key))
    validate(schema, query)
    return query
