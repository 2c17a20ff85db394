"""Nova v2.1 request bodies (as Nova's own schemas, microversions up to 2.60, plus list bounds).

Nova leaves lists and counts unbounded; one host cannot hold more than a few hundred guests, so
a request may name at most MAX_SERVERS_PER_REQUEST servers, and lists (networks, block devices,
security groups, tags, metadata) are bounded so a body cannot make the daemon copy 10^5 items.
"""
from __future__ import annotations

from typing import Any

from appliance.api.schemas.types import (
    BOOLEAN, DESCRIPTION, IP_ADDRESS, MAX_INT, NOVA_BOOLEAN, NULLABLE_REF, NULLABLE_UUID, REF,
    array, integer, metadata, obj, one, query, string, wrapped,
)

#: More servers than this in one request is refused as out of range (400), whatever the
#: quota: the count is checked arithmetically against quota before any server is built.
MAX_SERVERS_PER_REQUEST = 1000
#: Nova's quota default for metadata_items is 128; an admin may raise it up to this.
MAX_METADATA_ITEMS = 1024
MAX_TAGS = 50  # Nova's instance.MAX_TAG_COUNT

#: Server and flavor names: printable and not only blanks (Nova: no leading/trailing blanks
#: from 2.1 on; we keep accepting inner and edge blanks, refusing all-blank names).
SERVER_NAME = string(255, 1, pattern="^(?=.*[^\\s])[^\\x00-\\x1f\\x7f-\\x9f]*\\Z",
                     reason="1-255 printable characters, not all blank")
COUNT = integer(1, MAX_SERVERS_PER_REQUEST, digits_too=True)
TAG = string(60, 1, pattern="^[^,/\\x00-\\x1f\\x7f-\\x9f]*\\Z",
             reason="1-60 printable characters without ',' or '/'")
_ACCESS_IPV4 = {"type": ["string", "null"], "anyOf": [{"format": "ipv4"}, {"maxLength": 0}]}
_ACCESS_IPV6 = {"type": ["string", "null"], "anyOf": [{"format": "ipv6"}, {"maxLength": 0}]}
_DISK_CONFIG = {"enum": ["AUTO", "MANUAL"]}
_FLAVOR_REF = {"type": ["string", "integer"], "minLength": 1, "maxLength": 255,
               "minimum": 0, "maximum": MAX_INT, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*\\Z",
               "x-reason": "a flavor id or link"}
_BOOT_INDEX = {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]{1,4}\\Z",
               "minimum": -1, "maximum": 1024, "x-reason": "an integer"}
_USER_DATA = {"type": ["string", "null"], "format": "base64", "maxLength": 65535}
_PERSONALITY = array(obj({"path": string(255, 1), "contents": {"type": "string",
                                                               "format": "base64",
                                                               "maxLength": 13656}}), 5)

_BDM = obj({
    "virtual_name": string(255), "volume_id": NULLABLE_REF, "snapshot_id": NULLABLE_REF,
    "image_id": NULLABLE_REF, "volume_size": integer(1, MAX_INT, nullable=True, digits_too=True),
    "device_name": {"type": ["string", "null"], "maxLength": 255,
                    "pattern": "^[a-zA-Z0-9._/-]*\\Z", "x-reason": "a device name like /dev/vdb"},
    "delete_on_termination": NOVA_BOOLEAN, "no_device": {},
    "connection_info": string(4096, nullable=True),
    "source_type": {"enum": ["volume", "image", "snapshot", "blank"]},
    "uuid": string(255, 1, pattern="^[a-zA-Z0-9._-]*\\Z", reason="an id"),
    "destination_type": {"enum": ["local", "volume"]},
    "guest_format": string(255, nullable=True), "device_type": string(255, nullable=True),
    "disk_bus": string(255, nullable=True), "boot_index": _BOOT_INDEX, "tag": TAG,
    "volume_type": string(255, nullable=True),
})
_NETWORK = obj({"fixed_ip": IP_ADDRESS, "port": NULLABLE_REF, "uuid": REF, "tag": TAG})
_HINTS = {"type": "object", "maxProperties": 16,
          "properties": {"group": {"anyOf": [REF, array(REF, 1)]}},
          "additionalProperties": {"anyOf": [string(255, pattern="^[^\\x00]*\\Z"),
                                             array(string(255), 16)]}}

SERVER_CREATE = wrapped("server", obj({
    "name": SERVER_NAME,
    "imageRef": NULLABLE_REF,
    "flavorRef": _FLAVOR_REF,
    "adminPass": string(1024, pattern="^[^\\x00]*\\Z", reason="text without NUL"),
    "metadata": metadata(MAX_METADATA_ITEMS, nullable=True),
    "networks": {"anyOf": [array(_NETWORK, 32), {"enum": ["none", "auto"]},
                           {"type": "null"}]},
    "OS-DCF:diskConfig": _DISK_CONFIG,
    "accessIPv4": _ACCESS_IPV4, "accessIPv6": _ACCESS_IPV6,
    "personality": _PERSONALITY,
    "availability_zone": string(255, 0, nullable=True),
    "block_device_mapping": array(_BDM, 32),
    "block_device_mapping_v2": array(_BDM, 32, nullable=True),
    "config_drive": NOVA_BOOLEAN,
    "key_name": string(255, 0, nullable=True),
    "min_count": COUNT, "max_count": COUNT,
    "return_reservation_id": NOVA_BOOLEAN,
    "security_groups": array(obj({"name": string(255, 1)}), 32),
    "user_data": _USER_DATA,
    "description": DESCRIPTION,
    "tags": array(TAG, MAX_TAGS),
}, required=("name", "flavorRef")), **{"os:scheduler_hints": _HINTS,
                                       "OS-SCH-HNT:scheduler_hints": _HINTS})

#: PUT /servers/{id}/tags/{tag}: the tag from the path, checked as a body member would be.
SERVER_TAG = obj({"tag": TAG}, required=("tag",))

SERVER_UPDATE = wrapped("server", obj({
    "name": SERVER_NAME, "description": DESCRIPTION, "accessIPv4": _ACCESS_IPV4,
    "accessIPv6": _ACCESS_IPV6, "OS-DCF:diskConfig": _DISK_CONFIG,
}))

_NO_ARGS = {"type": ["null", "object"], "maxProperties": 0}
_ACTIONS: dict[str, Any] = {
    "os-start": _NO_ARGS, "os-stop": _NO_ARGS, "pause": _NO_ARGS, "unpause": _NO_ARGS,
    "suspend": _NO_ARGS, "resume": _NO_ARGS, "confirmResize": _NO_ARGS,
    "revertResize": _NO_ARGS, "unrescue": _NO_ARGS, "unlock": _NO_ARGS,
    "forceDelete": _NO_ARGS,
    "migrate": {"type": ["null", "object"], "maxProperties": 4},
    "os-migrateLive": {"type": ["null", "object"], "maxProperties": 8},
    "reboot": obj({"type": {"enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}},
                  required=("type",)),
    "resize": obj({"flavorRef": _FLAVOR_REF, "OS-DCF:diskConfig": _DISK_CONFIG},
                  required=("flavorRef",)),
    "rebuild": obj({
        "imageRef": REF, "name": SERVER_NAME, "metadata": metadata(MAX_METADATA_ITEMS),
        "adminPass": string(1024, pattern="^[^\\x00]*\\Z", reason="text without NUL"),
        "accessIPv4": _ACCESS_IPV4, "accessIPv6": _ACCESS_IPV6,
        "OS-DCF:diskConfig": _DISK_CONFIG, "personality": _PERSONALITY,
        "preserve_ephemeral": BOOLEAN, "description": DESCRIPTION,
        "key_name": string(255, 0, nullable=True), "user_data": _USER_DATA,
    }, required=("imageRef",)),
    "rescue": {"type": ["null", "object"], "properties": {
        "adminPass": string(1024, pattern="^[^\\x00]*\\Z", reason="text without NUL"),
        "rescue_image_ref": REF}, "additionalProperties": False},
    "createImage": obj({"name": SERVER_NAME, "metadata": metadata(MAX_METADATA_ITEMS)},
                       required=("name",)),
    "lock": {"type": ["null", "object"], "properties": {"locked_reason": string(255)},
             "additionalProperties": False},
    "os-getConsoleOutput": {"type": ["null", "object"], "properties": {
        "length": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]{1,10}\\Z",
                   "minimum": -1, "maximum": MAX_INT, "x-reason": "an integer ≥ -1"}},
        "additionalProperties": False},
    "os-getSerialConsole": obj({"type": {"enum": ["serial"]}}),
    "addSecurityGroup": obj({"name": string(255, 1)}, required=("name",)),
    "removeSecurityGroup": obj({"name": string(255, 1)}, required=("name",)),
}
#: An action body names exactly one action; unknown ones reach the handler (which says it
#: does not offer them) only as a small object.
SERVER_ACTION = {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "properties": _ACTIONS,
                 "additionalProperties": {"type": ["null", "object"], "maxProperties": 16}}

METADATA = obj({"metadata": metadata(MAX_METADATA_ITEMS)}, required=("metadata",))

VOLUME_ATTACH = wrapped("volumeAttachment", obj({
    "volumeId": REF, "device": {"type": ["string", "null"], "maxLength": 255,
                                "pattern": "^[a-zA-Z0-9._/-]*\\Z",
                                "x-reason": "a device name like /dev/vdb"},
    "tag": TAG, "delete_on_termination": BOOLEAN,
}, required=("volumeId",)))

INTERFACE_ATTACH = wrapped("interfaceAttachment", obj({
    "port_id": NULLABLE_REF, "net_id": NULLABLE_REF, "tag": TAG,
    "fixed_ips": array(obj({"ip_address": IP_ADDRESS}, required=("ip_address",)), 1),
}))

REMOTE_CONSOLE = wrapped("remote_console", obj({
    "protocol": {"enum": ["vnc", "spice", "serial", "rdp", "mks"]},
    "type": {"enum": ["novnc", "xvpvnc", "spice-html5", "spice-direct", "serial",
                      "rdp-html5", "webmks"]},
}, required=("protocol", "type")))

# -- flavors, key pairs -------------------------------------------------------------------------

_FLAVOR_NAME = string(255, 1, pattern="^(?=.*[^\\s])[^\\x00-\\x1f\\x7f-\\x9f]*\\Z",
                      reason="1-255 printable characters, not all blank")
FLAVOR_CREATE = wrapped("flavor", obj({
    "name": _FLAVOR_NAME,
    "id": {"type": ["string", "null"], "maxLength": 255,
           "pattern": "^(?! )[a-zA-Z0-9. _-]*(?<! )\\Z",
           "x-reason": "letters, digits, '.', '_', '-' and inner spaces"},
    "ram": integer(1, MAX_INT, digits_too=True),
    "vcpus": integer(1, MAX_INT, digits_too=True),
    "disk": integer(0, MAX_INT, digits_too=True),
    "OS-FLV-EXT-DATA:ephemeral": integer(0, MAX_INT, digits_too=True),
    "swap": {"anyOf": [integer(0, MAX_INT, digits_too=True), {"enum": [""]}]},
    "rxtx_factor": {"type": ["number", "string"], "exclusiveMinimum": 0,
                    "maximum": 3.40282e38, "pattern": "^[0-9]+(\\.[0-9]+)?\\Z",
                    "maxLength": 32, "x-reason": "a positive number"},
    "os-flavor-access:is_public": NOVA_BOOLEAN,
    "description": DESCRIPTION,
}, required=("name", "ram", "vcpus", "disk")))

FLAVOR_UPDATE = wrapped("flavor", obj({"description": DESCRIPTION},
                                      required=("description",)))

_SPEC_VALUE = {"type": ["string", "integer", "number", "boolean"], "maxLength": 255,
               "minimum": -MAX_INT - 1, "maximum": MAX_INT}
EXTRA_SPECS = obj({"extra_specs": {
    "type": "object", "maxProperties": 64,
    "propertyNames": string(255, 1, pattern="^[a-zA-Z0-9-_:. ]*\\Z",
                            reason="letters, digits and - _ : . or space"),
    "additionalProperties": _SPEC_VALUE}}, required=("extra_specs",))
#: PUT /os-extra_specs/{key}: {key: value}
EXTRA_SPEC_ONE = {"type": "object", "minProperties": 1, "maxProperties": 1,
                  "propertyNames": string(255, 1, pattern="^[a-zA-Z0-9-_:. ]*\\Z",
                                          reason="letters, digits and - _ : . or space"),
                  "additionalProperties": _SPEC_VALUE}

_TENANT = obj({"tenant": string(255, 1, pattern="^[a-zA-Z0-9-]*\\Z", reason="a project id")},
              required=("tenant",))
FLAVOR_ACTION = {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "properties": {"addTenantAccess": _TENANT, "removeTenantAccess": _TENANT},
                 "additionalProperties": False}

KEYPAIR_CREATE = wrapped("keypair", obj({
    "name": string(255, 1, pattern="^[_\\- a-zA-Z0-9@.]+\\Z",
                   reason="letters, digits, spaces and _ - @ ."),
    "public_key": {"type": ["string", "null"], "maxLength": 16384,
                   "format": "ssh-public-key"},
    "type": {"enum": ["ssh"]},  # x509 certificates are not offered
    "user_id": string(255, 1, pattern="^[a-zA-Z0-9-]*\\Z", reason="a user id"),
}, required=("name",)))

# -- quotas, server groups ----------------------------------------------------------------------

QUOTA_VALUE = integer(-1, MAX_INT, digits_too=True)
QUOTA_KEYS = ("instances", "cores", "ram", "key_pairs", "metadata_items", "server_groups",
              "server_group_members", "injected_files", "injected_file_content_bytes",
              "injected_file_path_bytes", "fixed_ips", "floating_ips", "security_groups",
              "security_group_rules", "networks")
QUOTA_UPDATE = wrapped("quota_set", obj({**{k: QUOTA_VALUE for k in QUOTA_KEYS},
                                         "force": NOVA_BOOLEAN}))

SERVER_GROUP_CREATE = wrapped("server_group", obj({
    "name": _FLAVOR_NAME,
    "policies": array({"enum": ["affinity", "anti-affinity", "soft-affinity",
                                "soft-anti-affinity"]}, 1),
    "policy": {"enum": ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]},
    "rules": obj({"max_server_per_host": integer(1, MAX_INT, digits_too=True)}),
}, required=("name",)))

# -- query strings ------------------------------------------------------------------------------

SERVERS_QUERY = query(
    name=one(string(255, 0, pattern="^[^\\x00]*\\Z", reason="text without NUL")),
    ip=one(string(64, 0, pattern="^[0-9a-fA-F.:/]*\\Z", reason="an address or its start")),
    sort_dir=one({"enum": ["asc", "desc"]}),
)
FLAVORS_QUERY = query(
    minRam=one({"type": "string", "pattern": "^[0-9]{1,10}\\Z", "x-reason": "an integer"}),
    minDisk=one({"type": "string", "pattern": "^[0-9]{1,10}\\Z", "x-reason": "an integer"}),
    sort_dir=one({"enum": ["asc", "desc"]}),
)
