"""Cinder v3 request bodies, as Cinder's schemas (cinder/api/schemas): names and descriptions
≤ 255, sizes 1..2^31-1 (integers or digit strings), metadata maps bounded. The volume create
object takes unknown members below 3.53 as Cinder does (they are never stored), bounded.
"""
from __future__ import annotations

from typing import Any

from appliance.api.schemas.types import (
    MAX_INT, NULLABLE_REF, REF, integer, metadata, obj, string, wrapped,
)

NAME = string(255, 0, nullable=True, reason="at most 255 printable characters")
DESCRIPTION = string(255, 0, nullable=True, pattern="^[^\\x00]*\\Z", reason="text without NUL")
SIZE = integer(1, MAX_INT, digits_too=True)
#: Cinder's metadata: string keys and values of ≤ 255; a map of at most this many entries.
MAX_METADATA_ITEMS = 128
METADATA = metadata(MAX_METADATA_ITEMS, nullable=True)
#: Cinder's boolean parameter: a JSON boolean or these strings.
BOOLEAN = {"enum": [True, False, "true", "false", "True", "False", "1", "0", "t", "f",
                    "yes", "no", "y", "n", "on", "off"]}


def cinder_bool(value: Any) -> bool:
    return value is True or (isinstance(value, str)
                             and value.lower() in ("true", "1", "t", "yes", "y", "on"))


VOLUME_CREATE = wrapped("volume", {
    "type": "object", "maxProperties": 32, "additionalProperties": True,
    "properties": {
        "name": NAME, "description": DESCRIPTION, "display_name": NAME,
        "display_description": DESCRIPTION, "volume_type": NAME, "metadata": METADATA,
        "snapshot_id": NULLABLE_REF, "source_volid": NULLABLE_REF,
        "consistencygroup_id": NULLABLE_REF, "group_id": NULLABLE_REF,
        "backup_id": NULLABLE_REF, "size": integer(1, MAX_INT, nullable=True, digits_too=True),
        "availability_zone": NAME, "multiattach": {"enum": [False, None, "false", "False"]},
        "image_id": NULLABLE_REF, "imageRef": NULLABLE_REF,
    },
}, **{"OS-SCH-HNT:scheduler_hints": {"type": ["object", "null"], "maxProperties": 16}})

VOLUME_UPDATE = wrapped("volume", obj({
    "name": NAME, "description": DESCRIPTION, "display_name": NAME,
    "display_description": DESCRIPTION, "metadata": METADATA,
}))

METADATA_SET = obj({"metadata": metadata(MAX_METADATA_ITEMS)}, required=("metadata",))

_NO_ARGS = {"type": ["null", "object"], "maxProperties": 4}
_ACTIONS: dict[str, Any] = {
    "os-extend": obj({"new_size": SIZE}, required=("new_size",)),
    "os-set_bootable": obj({"bootable": BOOLEAN}, required=("bootable",)),
    "os-reserve": _NO_ARGS, "os-unreserve": _NO_ARGS, "os-begin_detaching": _NO_ARGS,
    "os-roll_detaching": _NO_ARGS, "os-terminate_connection": _NO_ARGS,
    "os-initialize_connection": _NO_ARGS,
    "os-attach": obj({"instance_uuid": REF, "mountpoint": string(255, 1),
                      "host_name": string(255), "mode": {"enum": ["rw", "ro"]}},
                     required=("mountpoint",)),
    "os-detach": {"type": ["null", "object"], "properties": {
        "attachment_id": NULLABLE_REF}, "additionalProperties": False},
    "os-force_detach": {"type": ["null", "object"], "properties": {
        "attachment_id": NULLABLE_REF, "connector": {"type": ["object", "null"],
                                                     "maxProperties": 16}},
        "additionalProperties": False},
    "os-volume_upload_image": obj({
        "image_name": string(255, 1), "force": BOOLEAN,
        "disk_format": {"enum": ["raw", "vmdk", "vdi", "qcow2", "vhd", "vhdx", "ploop"]},
        "container_format": {"enum": ["bare", "ovf", "ova", "docker", "compressed"]},
        "visibility": {"enum": ["public", "private", "shared", "community"]},
        "protected": BOOLEAN,
    }, required=("image_name",)),
    "revert": obj({"snapshot_id": REF}, required=("snapshot_id",)),
    "os-reset_status": obj({"status": string(64), "attach_status": string(64),
                            "migration_status": string(64, nullable=True)}),
    "os-update_readonly_flag": obj({"readonly": BOOLEAN}, required=("readonly",)),
}
#: Exactly one action; an unknown one reaches the handler (which names it) only as a small
#: object.
VOLUME_ACTION = {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "properties": _ACTIONS,
                 "additionalProperties": {"type": ["null", "object"], "maxProperties": 16}}

SNAPSHOT_CREATE = wrapped("snapshot", obj({
    "volume_id": REF, "name": NAME, "description": DESCRIPTION, "display_name": NAME,
    "display_description": DESCRIPTION, "force": BOOLEAN, "metadata": METADATA,
}, required=("volume_id",)))

SNAPSHOT_UPDATE = wrapped("snapshot", obj({
    "name": NAME, "description": DESCRIPTION, "display_name": NAME,
    "display_description": DESCRIPTION,
}))

_LIMIT = integer(-1, MAX_INT, digits_too=True)
#: Cinder's keys (volumes_<type> and friends included) are taken; only volumes, gigabytes and
#: snapshots have an effect here.
QUOTA_UPDATE = wrapped("quota_set", {
    "type": "object", "maxProperties": 32,
    "propertyNames": string(64, 1, pattern="^[a-zA-Z0-9_:.-]*\\Z", reason="a quota name"),
    "additionalProperties": _LIMIT,
})
