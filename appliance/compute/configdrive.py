"""Config drive: the ISO9660 volume `config-2` cloud-init reads at first boot, made in Python.

Layout as Nova writes it (nova/api/metadata/base.py), so cloud-init's ConfigDrive datasource and
glean find what they expect:

    openstack/<version>/meta_data.json       uuid, name, hostname, public_keys, keys, meta …
    openstack/<version>/user_data            only when the user gave some
    openstack/<version>/vendor_data.json     {} (from 2013-10-17)
    openstack/<version>/network_data.json    (from 2015-10-15)

for the versions in VERSIONS and `latest`. Rock Ridge and Joliet carry the real (long, lower
case, dashed) names; the plain ISO9660 names underneath are mechanical upper-case stand-ins.
pycdlib builds the image in memory (a config drive is a few KiB) instead of a genisoimage or
xorriso process per boot. The file is written through storage/atomic.py, so a crash never
leaves a half-written drive where a guest could find it.
"""
from __future__ import annotations

import asyncio
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from storage.atomic import write_bytes_atomic_async

VOLUME_LABEL = "config-2"
#: Dated versions written besides `latest` (cloud-init picks the newest it knows).
VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15")
_VENDOR_DATA_SINCE = "2013-10-17"
_NETWORK_DATA_SINCE = "2015-10-15"


@dataclass(frozen=True)
class ConfigDriveContent:
    uuid: str
    name: str
    hostname: str
    project_id: str
    availability_zone: str = "nova"
    launch_index: int = 0
    #: key pair name → OpenSSH public key
    public_keys: dict[str, str] = field(default_factory=dict)
    #: server metadata (user key/values)
    meta: dict[str, str] = field(default_factory=dict)
    user_data: bytes | None = None
    #: the network component's network_data.json document (links, networks, services)
    network_data: dict[str, Any] = field(default_factory=dict)
    # What only the metadata service's EC2 tree and password file show (not on the drive).
    image_id: str | None = None
    flavor_name: str = ""
    reservation_id: str = ""
    security_groups: tuple[str, ...] = ()
    #: what the guest posted to openstack/<v>/password (encrypted with its key), or ""
    password: str = ""


def meta_data(content: ConfigDriveContent) -> dict[str, Any]:
    return {
        "uuid": content.uuid,
        "name": content.name,
        "hostname": content.hostname,
        "launch_index": content.launch_index,
        "availability_zone": content.availability_zone,
        "project_id": content.project_id,
        "meta": dict(content.meta),
        "public_keys": dict(content.public_keys),
        "keys": [{"name": n, "type": "ssh", "data": k} for n, k in content.public_keys.items()],
        "devices": [],
    }


def drive_files(content: ConfigDriveContent) -> dict[str, bytes]:
    """Path (relative, '/'-separated) → bytes, for every file on the drive."""
    md = json.dumps(meta_data(content), sort_keys=True).encode()
    nd = json.dumps(content.network_data, sort_keys=True).encode()
    files: dict[str, bytes] = {}
    for version in (*VERSIONS, "latest"):
        base = f"openstack/{version}"
        files[f"{base}/meta_data.json"] = md
        if content.user_data is not None:
            files[f"{base}/user_data"] = content.user_data
        if version == "latest" or version >= _VENDOR_DATA_SINCE:
            files[f"{base}/vendor_data.json"] = b"{}"
        if version == "latest" or version >= _NETWORK_DATA_SINCE:
            files[f"{base}/network_data.json"] = nd
    return files


def _iso_name(name: str, is_dir: bool) -> str:
    """An ISO9660 level-3 stand-in: upper case d-characters, files with a ';1' version."""
    stem, dot, ext = name.partition(".") if not is_dir else (name, "", "")
    clean = re.sub(r"[^A-Z0-9_]", "_", stem.upper())[:30]
    if is_dir:
        return clean
    ext = re.sub(r"[^A-Z0-9_]", "_", ext.upper())[:3]
    return f"{clean}.{ext};1" if dot else f"{clean}.;1"


def build_config_drive(content: ConfigDriveContent) -> bytes:
    import pycdlib  # here: a build needs it, a start does not (a few percent of it)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=VOLUME_LABEL, sys_ident="LINUX",
            app_ident_str="monostack", rock_ridge="1.09", joliet=3)
    try:
        made: set[str] = set()
        for path, data in sorted(drive_files(content).items()):
            parts = path.split("/")
            iso_path = joliet_path = ""
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                iso_path += "/" + _iso_name(part, is_dir=not last)
                joliet_path += "/" + part
                if last:
                    iso.add_fp(io.BytesIO(data), len(data), iso_path=iso_path, rr_name=part,
                               joliet_path=joliet_path)
                elif iso_path not in made:
                    iso.add_directory(iso_path=iso_path, rr_name=part, joliet_path=joliet_path)
                    made.add(iso_path)
        out = io.BytesIO()
        iso.write_fp(out)
        return out.getvalue()
    finally:
        iso.close()


async def write_config_drive(content: ConfigDriveContent, path: str) -> int:
    """Build the ISO and put it at `path` atomically; returns its size in bytes."""
    data = await asyncio.to_thread(build_config_drive, content)
    await write_bytes_atomic_async(path, data, 0o644)  # qemu (libvirt-qemu) must read it
    return len(data)
