"""Glance v2 request bodies. An image create is Glance's image schema: core attributes typed,
any other member an extra property (a string, as Glance's schema-image says), at most
Glance's image_property_quota (128) of them. Read-only attributes are let through to the
service, which refuses them with Glance's 403.
"""
from __future__ import annotations

from typing import Any

from appliance.api.schemas.types import (
    BOOLEAN, MAX_INT, NO_NUL, array, integer, obj, one, query, string,
)
from appliance.images.records import CONTAINER_FORMATS, DISK_FORMATS, READ_ONLY

#: Glance's image_property_quota default.
MAX_PROPERTIES = 128
MAX_TAGS = 128
TAG = string(255, 1, reason="1-255 printable characters")
PROPERTY_VALUE = string(65535, 0, nullable=True, pattern=NO_NUL, reason="text without NUL")
#: A read-only attribute in a body: the service answers 403 naming it (as Glance does).
_READ_ONLY = {"type": ["string", "integer", "boolean", "null", "array", "object"],
              "maxLength": 255, "maxItems": 16, "maxProperties": 16}

_CORE: dict[str, Any] = {
    "id": {"type": "string", "format": "uuid"},
    "name": string(255, 0, nullable=True, reason="at most 255 printable characters"),
    "disk_format": {"enum": [*DISK_FORMATS, None]},
    "container_format": {"enum": [*CONTAINER_FORMATS, None]},
    "min_disk": integer(0, MAX_INT), "min_ram": integer(0, MAX_INT),
    "visibility": {"enum": ["public", "private", "shared", "community"]},
    "protected": BOOLEAN, "os_hidden": BOOLEAN,
    "tags": array(TAG, MAX_TAGS),
    "owner": string(255, 0, nullable=True, reason="a project id"),
    **{k: _READ_ONLY for k in READ_ONLY},
}

IMAGE_CREATE = {
    "type": "object", "properties": _CORE,
    "maxProperties": len(_CORE) + MAX_PROPERTIES,
    "propertyNames": string(255, 1, reason="a property name of 1-255 printable characters"),
    "additionalProperties": PROPERTY_VALUE,
}

_PATH = string(300, 1, pattern="^/[^\\x00-\\x1f\\x7f-\\x9f]*\\Z",
               reason="a JSON pointer like /name")
#: A JSON patch (openstack-images-v2.1-json-patch, or the 2.0 {"replace": "/name"} form):
#: each value is checked by the service against the attribute it names; here it is bounded.
_OP = {"type": "object", "maxProperties": 3, "properties": {
    "op": {"enum": ["add", "remove", "replace"]}, "path": _PATH,
    "add": _PATH, "remove": _PATH, "replace": _PATH,
    "value": {"anyOf": [PROPERTY_VALUE, {"type": ["integer", "boolean"]},
                        array(TAG, MAX_TAGS)]}},
    "additionalProperties": False}
IMAGE_PATCH = array(_OP, 256)

MEMBER_CREATE = obj({"member": string(255, 1, pattern="^[a-zA-Z0-9_-]*\\Z",
                                      reason="a project id")}, required=("member",))
MEMBER_UPDATE = obj({"status": {"enum": ["pending", "accepted", "rejected"]}},
                    required=("status",))

IMPORT = obj({
    "method": obj({"name": string(64, 1), "uri": string(2048)}, required=("name",)),
    "stores": array(string(255, 1), 8), "all_stores": BOOLEAN,
    "all_stores_must_succeed": BOOLEAN,
}, required=("method",))

_BYTES = integer(-1, (1 << 63) - 1)
QUOTA_UPDATE = {"type": "object", "properties": {"quota": obj({
    "images": integer(-1, MAX_INT), "bytes": _BYTES, "max_virtual_size": _BYTES})},
    "required": ["quota"], "additionalProperties": False, "x-wrapper": "quota"}

#: `id=in:<id>,<id>…` (the openstack CLI's server list asks for every server's image at once):
#: as long as a request line may be.
IMAGES_QUERY = query(id=one(string(16384, 0, pattern=NO_NUL, reason="text without NUL")))
