"""Errors of the object storage engine (storage/ knows nothing of the appliance).

    ObjectStorageError
    ├── InvalidName            → 400 (bad UTF-8, NUL, too long, empty, '/' in a container)
    ├── ObjectNotFound         → 404
    ├── ContainerNotFound      → 404
    ├── ContainerNotEmpty      → 409
    ├── EtagMismatch           → 422 (nothing written is visible)
    ├── RangeNotSatisfiable    → 416
    ├── TooLarge               → 413 (a request's max_bytes exceeded)
    ├── QuotaExceeded          → 413 (raised by the quota hook)
    ├── DiskFull               → 507 (ENOSPC on too many replicas; temps removed)
    └── InsufficientReplicas   → 503 (fewer than a quorum of replicas written or readable)

The Swift API layer translates these to HTTP in one place.
"""

from __future__ import annotations


class ObjectStorageError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidName(ObjectStorageError, ValueError):
    pass


class ObjectNotFound(ObjectStorageError):
    pass


class ContainerNotFound(ObjectStorageError):
    pass


class ContainerNotEmpty(ObjectStorageError):
    pass


class EtagMismatch(ObjectStorageError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"ETag mismatch: client sent {expected}, body has {actual}")
        self.expected = expected
        self.actual = actual


class RangeNotSatisfiable(ObjectStorageError):
    def __init__(self, size: int) -> None:
        super().__init__(f"no requested range is satisfiable for an object of {size} bytes")
        self.size = size


class TooLarge(ObjectStorageError):
    pass


class QuotaExceeded(ObjectStorageError):
    pass


class DiskFull(ObjectStorageError):
    pass


class InsufficientReplicas(ObjectStorageError):
    pass
