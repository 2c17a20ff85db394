"""The one atomic-write helper.

A reader must see either the old file or the complete new one, never a torn mix, even across a
power cut: write to a temp file in the *same directory* (so rename stays on one filesystem),
fsync the data, rename over the target, then fsync the directory so the rename itself is
durable. Any exception before the rename removes the temp file and leaves the old file alone.

The async variants run the blocking work in a thread so the daemon's event loop never waits
on a disk.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from storage.errors import translate_os_error

TEMP_MARKER = ".tmp-"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that entries created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path_for(target: Path) -> Path:
    """A fresh, unpredictable temp name beside `target` (same directory, same filesystem)."""
    return target.with_name(f".{target.name}{TEMP_MARKER}{secrets.token_hex(6)}")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TEMP_MARKER in name


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file; on clean exit its content replaces `path` atomically and durably.

    On any exception (including KeyboardInterrupt) the temp file is removed and `path` is
    untouched. ENOSPC/EDQUOT surface as storage.errors.DiskFull.
    """
    target = Path(path)
    tmp = temp_path_for(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise translate_os_error(exc, str(target)) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # O_CREAT's mode is filtered by the umask; be exact
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            translated = translate_os_error(exc, str(target))
            if translated is not exc:
                raise translated from exc
        raise
    fsync_dir(target.parent)


def install_temp(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Make a temp file another writer filled (qemu-img, a libvirt backup job) the content of
    `path`, as atomic_writer does: fsync its data, rename it over `path`, fsync the directory.
    `tmp` must be in `path`'s directory (temp_path_for); on failure it is left to the caller."""
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise translate_os_error(exc, str(path)) from exc
    fsync_dir(Path(path).parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    with atomic_writer(path, mode) as f:
        f.write(data)


def write_text_atomic(
    path: str | os.PathLike[str], text: str, mode: int = 0o644, encoding: str = "utf-8"
) -> None:
    write_bytes_atomic(path, text.encode(encoding), mode)


async def write_bytes_atomic_async(
    path: str | os.PathLike[str], data: bytes, mode: int = 0o644
) -> None:
    await asyncio.to_thread(write_bytes_atomic, path, data, mode)


async def write_text_atomic_async(
    path: str | os.PathLike[str], text: str, mode: int = 0o644, encoding: str = "utf-8"
) -> None:
    await asyncio.to_thread(write_text_atomic, path, text, mode, encoding)


async def fsync_dir_async(path: str | os.PathLike[str]) -> None:
    await asyncio.to_thread(fsync_dir, path)


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files a crash left behind in `directory`; return what was removed.

    Call at startup, before anything writes into the directory.
    """
    removed = []
    for entry in os.scandir(directory):
        if entry.is_file(follow_symlinks=False) and is_temp_name(entry.name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    if removed:
        fsync_dir(directory)
    return removed
