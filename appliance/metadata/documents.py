"""What the metadata service answers for a path: the OpenStack and EC2 trees, pure.

Paths and documents follow Nova's metadata API (nova/api/metadata/base.py and handler.py) so
cloud-init's OpenStack datasource and its EC2 reader find what they look for:

    /openstack                              the dated versions and `latest`
    /openstack/<v>/meta_data.json           the same document a config drive carries
    /openstack/<v>/user_data                404 when the user gave none
    /openstack/<v>/vendor_data.json         {}
    /openstack/<v>/vendor_data2.json        {} (no dynamic vendor data providers)
    /openstack/<v>/network_data.json        links, networks, services
    /openstack/<v>/password                 what the guest posted (POST once, 256 bytes)
    /<ec2 v>/meta-data/…                    the EC2 tree (listing lines, `name/` for a subtree)
    /<ec2 v>/user-data

Nothing here does I/O: the server hands in the instance's `ConfigDriveContent` and what only
the request knows (its fixed address, a floating address, the network document), and gets
back a status, a body and a content type.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from appliance.compute.configdrive import VERSIONS as DRIVE_VERSIONS
from appliance.compute.configdrive import ConfigDriveContent, meta_data

#: OpenStack versions listed (cloud-init takes the newest it knows); all serve the same files.
OPENSTACK_VERSIONS = (*DRIVE_VERSIONS, "2016-06-30", "2016-10-06", "2017-02-22", "2018-08-27")
VENDOR_DATA2_SINCE = "2016-10-06"
NETWORK_DATA_SINCE = "2015-10-15"
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04")
PASSWORD_MAX = 256  # Nova's limit for what a guest may post
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
OCTETS = "application/octet-stream"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = TEXT


NOT_FOUND = Answer(404, b"Not Found")


@dataclass(frozen=True)
class RequestFacts:
    """What only the request and the network know about the asking guest."""

    fixed_ip: str
    floating_ip: str | None = None
    #: network_data.json, fetched only when that file is asked for
    network_data: Callable[[], Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _json(doc: Any) -> Answer:
    return Answer(200, json.dumps(doc, sort_keys=True).encode(), JSON)


def _listing(names: list[str]) -> Answer:
    return Answer(200, "\n".join(names).encode(), TEXT)


def root_listing() -> Answer:
    return _listing([*EC2_VERSIONS, "latest", "openstack"])


def openstack_version_files(version: str, content: ConfigDriveContent) -> list[str]:
    names = ["meta_data.json"]
    if content.user_data is not None:
        names.append("user_data")
    names += ["password", "vendor_data.json"]
    if version == "latest" or version >= NETWORK_DATA_SINCE:
        names.append("network_data.json")
    if version == "latest" or version >= VENDOR_DATA2_SINCE:
        names.append("vendor_data2.json")
    return names


async def openstack_answer(parts: list[str], content: ConfigDriveContent,
                           facts: RequestFacts) -> Answer:
    """`parts` are the path's segments after `openstack`."""
    if not parts:
        return _listing([*OPENSTACK_VERSIONS, "latest"])
    version, rest = parts[0], parts[1:]
    if version not in OPENSTACK_VERSIONS and version != "latest":
        return NOT_FOUND
    files = openstack_version_files(version, content)
    if not rest:
        return _listing(files)
    if len(rest) != 1 or rest[0] not in files:
        return NOT_FOUND
    name = rest[0]
    if name == "meta_data.json":
        return _json(meta_data(content))
    if name == "user_data":
        return Answer(200, content.user_data or b"", OCTETS)
    if name == "password":
        return Answer(200, content.password.encode(), TEXT)
    if name in ("vendor_data.json", "vendor_data2.json"):
        return _json({})
    if name == "network_data.json":
        doc = facts.network_data() if facts.network_data is not None else {}
        if hasattr(doc, "__await__"):
            doc = await doc
        return _json(doc)
    return NOT_FOUND


def ec2_id(prefix: str, uuid: str | None) -> str:
    """A stable EC2-style id (`i-0a1b2c3d`) from a UUID; EC2 clients only need the shape."""
    hexpart = (uuid or "").replace("-", "")[:8] or "00000000"
    return f"{prefix}-{hexpart}"


def ec2_tree(content: ConfigDriveContent, facts: RequestFacts) -> dict[str, Any]:
    keys = {f"{i}={name}": {"openssh-key": key}
            for i, (name, key) in enumerate(sorted(content.public_keys.items()))}
    hostname = content.hostname
    return {
        "ami-id": ec2_id("ami", content.image_id),
        "ami-launch-index": str(content.launch_index),
        "ami-manifest-path": "FIXME",
        "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
        "hostname": hostname,
        "instance-action": "none",
        "instance-id": ec2_id("i", content.uuid),
        "instance-type": content.flavor_name,
        "local-hostname": hostname,
        "local-ipv4": facts.fixed_ip,
        "placement": {"availability-zone": content.availability_zone},
        "public-hostname": hostname,
        "public-ipv4": facts.floating_ip or "",
        "public-keys": keys,
        "reservation-id": content.reservation_id,
        "security-groups": "\n".join(content.security_groups),
    }


def _tree_listing(node: dict[str, Any]) -> list[str]:
    names = []
    for key, value in node.items():
        if "=" in key:  # public-keys/ lists "0=name"; the subtree is under "0/"
            names.append(key)
        else:
            names.append(key + "/" if isinstance(value, dict) else key)
    return names


def ec2_answer(parts: list[str], content: ConfigDriveContent, facts: RequestFacts) -> Answer:
    """`parts` are the path's segments after the EC2 version."""
    if not parts:
        names = ["meta-data/"] + (["user-data"] if content.user_data is not None else [])
        return _listing(names)
    head, rest = parts[0], parts[1:]
    if head == "user-data" and not rest:
        if content.user_data is None:
            return NOT_FOUND
        return Answer(200, content.user_data, OCTETS)
    if head != "meta-data":
        return NOT_FOUND
    node: Any = ec2_tree(content, facts)
    for part in rest:
        if not isinstance(node, dict):
            return NOT_FOUND
        if part in node:
            node = node[part]
            continue
        # public-keys/0 addresses the "0=name" entry
        matches = [k for k in node if "=" in k and k.split("=", 1)[0] == part]
        if not matches:
            return NOT_FOUND
        node = node[matches[0]]
    if isinstance(node, dict):
        return _listing(_tree_listing(node))
    return Answer(200, str(node).encode(), TEXT)


async def answer(path: str, content: ConfigDriveContent, facts: RequestFacts) -> Answer:
    """The answer to GET `path` (already decoded, query string removed) for this instance."""
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return NOT_FOUND
    if not parts:
        return root_listing()
    if parts[0] == "openstack":
        return await openstack_answer(parts[1:], content, facts)
    if parts[0] in EC2_VERSIONS or parts[0] == "latest":
        return ec2_answer(parts[1:], content, facts)
    return NOT_FOUND


def is_password_path(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    return (len(parts) == 3 and parts[0] == "openstack" and parts[2] == "password"
            and (parts[1] in OPENSTACK_VERSIONS or parts[1] == "latest"))
