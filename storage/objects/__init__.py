"""Object storage engine: replicated object files on local devices plus a sqlite listing
index — the layer under the Swift API.  Knows nothing of the appliance or of HTTP.

    ring.py      which devices hold an object (rendezvous hashing)
    names.py     name validation and the object hash (names never become paths)
    diskfile.py  one replica on one device: format, durable writes, verified reads
    fanout.py    a streamed body handed to a thread per replica writer and checksum
    index.py     container/account listings in sqlite (range scans, group commit)
    engine.py    ObjectEngine: PUT/GET/HEAD/DELETE/POST/COPY, listings, expiry, recovery
    auditor.py   Auditor: verify every replica, repair from good copies
    errors.py    the exception tree (mapped to HTTP by the API layer)
"""

from .auditor import AuditFinding, Auditor, AuditStatus, FindingKind
from .diskfile import ObjectInfo
from .engine import KEEP, ObjectBody, ObjectEngine, QuotaHold, QuotaHook, QuotaRequest, aiter_bytes, resolve_ranges
from .errors import (
    ContainerNotEmpty,
    ContainerNotFound,
    DiskFull,
    EtagMismatch,
    InsufficientReplicas,
    InvalidName,
    ObjectNotFound,
    ObjectStorageError,
    QuotaExceeded,
    RangeNotSatisfiable,
    TooLarge,
)
from .index import AccountInfo, ContainerEntry, ContainerInfo, ObjectEntry, Subdir
from .ring import Device, Ring

__all__ = [
    "AccountInfo", "AuditFinding", "AuditStatus", "Auditor", "ContainerEntry", "ContainerInfo",
    "ContainerNotEmpty", "ContainerNotFound", "Device", "DiskFull", "EtagMismatch", "FindingKind",
    "InsufficientReplicas", "InvalidName", "KEEP", "ObjectBody", "ObjectEngine", "ObjectEntry",
    "ObjectInfo", "ObjectNotFound", "ObjectStorageError", "QuotaExceeded", "QuotaHold", "QuotaHook", "QuotaRequest",
    "RangeNotSatisfiable", "Ring", "Subdir", "TooLarge", "aiter_bytes", "resolve_ranges",
]
