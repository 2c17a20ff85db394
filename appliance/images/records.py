"""Image records as Glance v2 describes them, plus members and per-project quotas.

An image's bytes live in the BlobStore under the image id; the record says whether they are
there (`active`), arriving (`saving`), staged for import (`uploading` → `importing`), or not
yet given (`queued`). Only `active` images have data anyone may read.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ImageStatus(enum.StrEnum):
    QUEUED = "queued"  # record only, no data yet
    SAVING = "saving"  # PUT …/file in progress
    UPLOADING = "uploading"  # data staged (PUT …/stage), waiting for import
    IMPORTING = "importing"  # staged data being verified and moved into the store
    ACTIVE = "active"
    KILLED = "killed"
    DELETED = "deleted"
    DEACTIVATED = "deactivated"


class Visibility(enum.StrEnum):
    PRIVATE = "private"
    SHARED = "shared"
    COMMUNITY = "community"
    PUBLIC = "public"


class MemberStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


#: Disk formats accepted on create; the inspector checks the data really is that format.
DISK_FORMATS = ("raw", "qcow2", "vmdk", "vhd", "vhdx", "iso", "aki", "ari", "ami")
CONTAINER_FORMATS = ("bare", "ovf", "ova", "aki", "ari", "ami", "docker", "compressed")

#: Attributes that are fields of the record (everything else a client sends is a property).
CORE_ATTRIBUTES = frozenset({
    "id", "name", "status", "disk_format", "container_format", "size", "virtual_size",
    "checksum", "os_hash_algo", "os_hash_value", "min_disk", "min_ram", "visibility", "owner",
    "protected", "tags", "created_at", "updated_at", "os_hidden",
})
#: Attributes no client may set (Glance answers 403 "Attribute … is read-only").
READ_ONLY = frozenset({
    "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
    "created_at", "updated_at", "self", "file", "schema", "locations", "direct_url",
    "stores", "os_glance_import_task",
})
#: Properties reserved for the service (os_glance_*), refused from clients.
RESERVED_PREFIX = "os_glance"


@dataclass
class Image:
    id: str
    owner: str  # project id
    name: str | None = None
    status: ImageStatus = ImageStatus.QUEUED
    disk_format: str | None = None
    container_format: str | None = None
    size: int | None = None
    virtual_size: int | None = None
    checksum: str | None = None  # md5 hex, as Glance
    os_hash_algo: str | None = None
    os_hash_value: str | None = None
    min_disk: int = 0  # GiB
    min_ram: int = 0  # MiB
    visibility: Visibility = Visibility.SHARED  # Glance's default since Ocata
    protected: bool = False
    os_hidden: bool = False
    #: arbitrary extra properties (owner_specified.openstack.*, hw_*, architecture …), top-level
    #: in the API, strings as Glance's schema requires
    properties: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    #: bytes received so far while `saving` (the TUI shows upload progress from this)
    progress_bytes: int = 0
    #: why the last upload or import failed (shown, then cleared by the next attempt)
    last_error: str | None = None


@dataclass
class ImageMember:
    """One project an image is shared with; id = "<image_id>:<member_project_id>"."""

    id: str
    image_id: str
    member_id: str
    status: MemberStatus = MemberStatus.PENDING
    created_at: str = ""
    updated_at: str = ""

    @staticmethod
    def key(image_id: str, member_id: str) -> str:
        return f"{image_id}:{member_id}"


#: Defaults when a project has no quota record of its own.
DEFAULT_IMAGE_COUNT = 100
DEFAULT_IMAGE_BYTES = 200 << 30
DEFAULT_MAX_VIRTUAL_SIZE = 2 << 40


@dataclass
class ImageQuota:
    """Per-project image limits; id = project id. -1 means unlimited."""

    id: str
    images: int = DEFAULT_IMAGE_COUNT
    bytes: int = DEFAULT_IMAGE_BYTES
    #: largest virtual disk an image may describe (the inspector refuses bigger ones)
    max_virtual_size: int = DEFAULT_MAX_VIRTUAL_SIZE
