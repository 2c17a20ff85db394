"""Parameter types shared by the service schemas: names, ids, booleans, bounded integers,
metadata maps, query parameters.

Bounds are OpenStack's where it has one (names and descriptions ≤ 255, quotas ≤ 2^31-1 as
Nova's database column) and the appliance's own where upstream has none (list lengths).
"""
from __future__ import annotations

from typing import Any

#: The largest value a 32-bit signed database column holds: Nova's bound for counts, sizes
#: and quotas, kept so nothing larger is ever stored or multiplied.
MAX_INT = 0x7FFFFFFF

#: C0 and C1 control characters (NUL, newline, escape …) and DEL: never in a name.
NO_CONTROL = "^[^\\x00-\\x1f\\x7f-\\x9f]*\\Z"
#: NUL alone: never in any string that is stored.
NO_NUL = "^[^\\x00]*\\Z"


def string(max_length: int = 255, min_length: int = 0, *, nullable: bool = False,
           pattern: str = NO_CONTROL, reason: str = "printable characters") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"] if nullable else "string",
                              "minLength": min_length, "maxLength": max_length,
                              "pattern": pattern, "x-reason": reason}
    return schema


def integer(minimum: int = 0, maximum: int = MAX_INT, *, nullable: bool = False,
            digits_too: bool = False) -> dict[str, Any]:
    """A JSON integer in range (never a float, bool or string); `digits_too` also takes a
    string of digits, as Nova's and Cinder's APIs do for counts and sizes."""
    kinds = ["integer"] + (["string"] if digits_too else []) + (["null"] if nullable else [])
    schema: dict[str, Any] = {"type": kinds if len(kinds) > 1 else "integer",
                              "minimum": minimum, "maximum": maximum}
    if digits_too:
        schema.update(pattern="^-?[0-9]{1,10}\\Z", maxLength=11,
                      **{"x-reason": f"an integer from {minimum} to {maximum}"})
    return schema


def as_int(value: Any) -> int:
    """An `integer(digits_too=True)` value as an int (the schema bounded it already)."""
    return int(value)


NAME = string(255, 1, reason="1-255 printable characters")
NAME_OR_EMPTY = string(255, 0, reason="at most 255 printable characters")
NULLABLE_NAME = string(255, 0, nullable=True, reason="at most 255 printable characters")
DESCRIPTION = string(255, 0, nullable=True, pattern=NO_NUL, reason="text without NUL")
#: A reference to something by id: looked up, so its exact form is the lookup's business;
#: bounded and printable so nothing odd reaches a log line or a file name.
REF = string(255, 1, reason="an id of printable characters")
NULLABLE_REF = string(255, 0, nullable=True, reason="an id of printable characters")
UUID = {"type": "string", "format": "uuid"}
NULLABLE_UUID = {"type": ["string", "null"], "format": "uuid"}
BOOLEAN = {"type": "boolean"}
NULLABLE_BOOLEAN = {"type": ["boolean", "null"]}

_TRUE = ("True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes")
_FALSE = ("False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no")
#: Nova's boolean parameter: JSON booleans or these exact strings (its documented API).
NOVA_BOOLEAN = {"type": ["boolean", "string", "null"], "enum": [True, False, None, *_TRUE, *_FALSE]}


def nova_bool(value: Any) -> bool:
    """A NOVA_BOOLEAN value as a bool (the schema allowed only the listed forms)."""
    return value is True or value in _TRUE


IP_ADDRESS = {"type": "string", "format": "ip-address", "maxLength": 64}
CIDR = {"type": "string", "format": "cidr", "maxLength": 64}
MAC = {"type": "string", "pattern": "^([0-9a-fA-F]{2})(:[0-9a-fA-F]{2}){5}\\Z",
       "x-reason": "a MAC address aa:bb:cc:dd:ee:ff"}


def metadata(max_items: int = 128, *, nullable_values: bool = False,
             nullable: bool = False) -> dict[str, Any]:
    """A string → string map: keys 1-255 printable characters, values ≤ 255, at most
    `max_items` entries (so a body of 10^5 keys is refused before it is copied)."""
    return {"type": ["object", "null"] if nullable else "object",
            "maxProperties": max_items,
            "propertyNames": string(255, 1, reason="a key of 1-255 printable characters"),
            "additionalProperties": string(255, 0, nullable=nullable_values, pattern=NO_NUL,
                                           reason="text without NUL")}


def wrapped(key: str, inner: dict[str, Any], **siblings: dict[str, Any]) -> dict[str, Any]:
    """A body {key: inner} (and optional sibling members): `valid_body` returns the inner
    object and error messages name fields inside it (`max_count`, not `server.max_count`)."""
    return {"type": "object", "properties": {key: inner, **siblings}, "required": [key],
            "additionalProperties": False, "x-wrapper": key}


def obj(properties: dict[str, Any], *, required: tuple[str, ...] = (), extra: bool = False,
        max_properties: int | None = None) -> dict[str, Any]:
    """An object with the listed members; unknown members refused unless `extra`."""
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": extra}
    if required:
        schema["required"] = list(required)
    if max_properties is not None:
        schema["maxProperties"] = max_properties
    return schema


def array(items: dict[str, Any], max_items: int, *, nullable: bool = False) -> dict[str, Any]:
    return {"type": ["array", "null"] if nullable else "array", "items": items,
            "maxItems": max_items}


# -- query strings: every value is a list of strings ({name: [values]}) -------------------------

#: Any list page: at most this many items per request (Nova's and Neutron's max_limit).
MAX_LIMIT = 1000


def one(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter given at most once."""
    return {"type": "array", "items": schema, "maxItems": 1}


QUERY_LIMIT = one({"type": "string", "pattern": "^[0-9]{1,7}\\Z",
                   "x-reason": "a non-negative integer"})
QUERY_MARKER = one(string(255, 0, reason="an id of printable characters"))
#: A filter value: a few values, each as long as a name.
QUERY_FILTER = {"type": "array", "maxItems": 32,
                "items": string(255, 0, pattern=NO_NUL, reason="text without NUL")}


def query(**params: dict[str, Any]) -> dict[str, Any]:
    """A query string: limit, marker and the named parameters; any other filter bounded."""
    return {"type": "object", "properties": {"limit": QUERY_LIMIT, "marker": QUERY_MARKER,
                                             **params},
            "additionalProperties": QUERY_FILTER, "maxProperties": 64}


PAGE = query()
