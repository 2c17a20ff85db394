"""Errors raised by `storage/`.

storage/ knows nothing of the appliance, so it has its own small tree; the appliance
translates these into its HTTP-shaped errors in one place (NotFound → 404, UnsafeImage → 400,
DiskFull → 507 …).

    StorageError
    ├── NotFound          the blob, volume, snapshot or base does not exist
    ├── AlreadyExists     refusing to overwrite an existing object
    ├── InvalidId         an id is not a canonical UUID (so it cannot escape the root)
    ├── InvalidRange      a byte range outside the object
    ├── TooLarge          a stream went past the caller's max_bytes
    ├── Corrupt           on-disk data is not what it should be
    ├── DiskFull          ENOSPC / EDQUOT while writing (temp files are already removed)
    ├── UnsafeImage       an uploaded image failed inspection; `.reason` says why
    └── QemuImgError      qemu-img failed (or hit its resource limits)
"""
from __future__ import annotations

import errno


class StorageError(Exception):
    """Base of every error storage/ raises on purpose."""


class NotFound(StorageError):
    pass


class AlreadyExists(StorageError):
    pass


class InvalidId(StorageError, ValueError):
    pass


class InvalidRange(StorageError, ValueError):
    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class TooLarge(StorageError):
    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class Corrupt(StorageError):
    pass


class DiskFull(StorageError):
    pass


class UnsafeImage(StorageError):
    """The image must not be trusted; `reason` is a sentence fit for a 400 answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class QemuImgError(StorageError):
    def __init__(self, args: list[str], returncode: int | None, stderr: str) -> None:
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        detail = "; ".join(lines)[:500] if lines else f"exit status {returncode}"
        super().__init__(f"qemu-img {args[0] if args else ''} failed: {detail}")
        self.args_ = args
        self.returncode = returncode
        self.stderr = stderr


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def translate_os_error(exc: OSError, what: str) -> StorageError | OSError:
    """Map an OSError to the storage error a caller can act on, or return it unchanged."""
    if exc.errno in _DISK_FULL_ERRNOS:
        return DiskFull(f"no space left on device while writing {what}")
    if exc.errno == errno.ENOENT:
        return NotFound(f"{what} not found")
    return exc
