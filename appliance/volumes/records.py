"""Volume and snapshot records, following Cinder's status machine.

    creating → available → attaching → in-use → detaching → available
    available → extending / uploading / reverting → available
    available | error → deleting → (gone)
    any step that fails → error (error_extending … where Cinder has one)

A volume's data is one qcow2 file (storage.volumes.VolumeFiles, named by the volume id);
snapshots are internal qcow2 snapshots of that file named by the snapshot id.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

GiB = 1 << 30
DEFAULT_TYPE_ID = "8c0a5c3a-5c5e-4d7b-9d1a-6d0f3b7a0001"
DEFAULT_TYPE_NAME = "default"


class VolumeStatus(enum.StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    RESERVED = "reserved"
    ATTACHING = "attaching"
    IN_USE = "in-use"
    DETACHING = "detaching"
    EXTENDING = "extending"
    UPLOADING = "uploading"
    REVERTING = "reverting"
    MAINTENANCE = "maintenance"
    DELETING = "deleting"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"
    ERROR_EXTENDING = "error_extending"
    ERROR_RESTORING = "error_restoring"


class SnapshotStatus(enum.StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    DELETING = "deleting"
    RESTORING = "restoring"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"


#: Statuses a volume may be deleted from (Cinder's list).
DELETABLE = frozenset({VolumeStatus.AVAILABLE, VolumeStatus.ERROR, VolumeStatus.ERROR_RESTORING,
                       VolumeStatus.ERROR_EXTENDING})


@dataclass
class Volume:
    id: str
    project_id: str
    size: int  # GiB
    name: str | None = None
    description: str | None = None
    status: VolumeStatus = VolumeStatus.CREATING
    user_id: str | None = None
    bootable: bool = False
    volume_type: str = DEFAULT_TYPE_NAME
    availability_zone: str = "nova"
    source_image_id: str | None = None
    source_snapshot_id: str | None = None
    source_volume_id: str | None = None
    #: [{id, attachment_id, volume_id, server_id, host_name, device, attached_at}] (Cinder's shape)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    #: image properties copied at creation (Cinder's volume_image_metadata)
    image_metadata: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    #: why the last asynchronous step failed
    last_error: str | None = None


@dataclass
class Snapshot:
    id: str
    volume_id: str
    project_id: str
    size: int  # GiB, the volume's size when taken
    name: str | None = None
    description: str | None = None
    status: SnapshotStatus = SnapshotStatus.CREATING
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    last_error: str | None = None


DEFAULT_QUOTA = {"volumes": 10, "gigabytes": 1000, "snapshots": 10}


@dataclass
class VolumeQuota:
    """Per-project limits; id = project id; -1 = unlimited."""

    id: str
    volumes: int = DEFAULT_QUOTA["volumes"]
    gigabytes: int = DEFAULT_QUOTA["gigabytes"]
    snapshots: int = DEFAULT_QUOTA["snapshots"]
