"""Image blobs on local disk: streamed in, verified, then made visible atomically.

Why the shape: an upload may be interrupted (client killed, request cancelled, disk full) or
turn out hostile. So bytes go to a temp file beside the final name, are hashed as they arrive,
fsynced, handed to the caller's `verify` (format inspection) while still invisible, and only
then linked into place. Any exception or cancellation removes the temp file: no half image is
ever visible under its id. Blob ids must be canonical UUIDs, so no id can name a path outside
the root.

Layout: ROOT/<uuid> for blobs, ROOT/.<uuid>.tmp-<random> while writing (swept at startup by
`remove_stale_temps`).
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect as _inspect
import os
import re
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from storage.atomic import fsync_dir, remove_stale_temps, temp_path_for
from storage.errors import (
    AlreadyExists,
    InvalidId,
    InvalidRange,
    NotFound,
    StorageError,
    TooLarge,
    translate_os_error,
)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_FLUSH_BYTES = 1 << 20  # hash + write in a thread once this much is buffered
READ_CHUNK = 1 << 20
BLOB_MODE = 0o640


def check_id(object_id: str) -> str:
    """Return `object_id` if it is a canonical lower-case UUID, else raise InvalidId."""
    if not isinstance(object_id, str) or not _UUID.match(object_id):
        raise InvalidId(f"invalid id {object_id!r}: must be a UUID")
    return object_id


@dataclass(frozen=True)
class BlobInfo:
    size: int
    md5: str
    sha512: str
    path: Path


ProgressCallback = Callable[[int], Awaitable[None] | None]
VerifyCallback = Callable[[Path, BlobInfo], Awaitable[None]]


class _TempWriter:
    """A temp file written from worker threads; a lock keeps close/unlink from racing a write.

    (A cancelled `await asyncio.to_thread(...)` leaves its thread running; without the lock the
    cleanup could close the fd under it, or unlink while it still writes.)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.fd: int | None = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, BLOB_MODE
        )
        self.size = 0
        self.published: Path | None = None
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()

    def write(self, data: bytes) -> None:
        with self.lock:
            if self.fd is None:
                raise StorageError("write after discard")
            self.md5.update(data)
            self.sha512.update(data)
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            self.size += len(data)

    def finish(self) -> None:
        with self.lock:
            assert self.fd is not None
            os.fsync(self.fd)
            os.fchmod(self.fd, BLOB_MODE)
            os.close(self.fd)
            self.fd = None

    def publish(self, final: Path, blob_id: str) -> None:
        # link() never replaces an existing name, so a racing writer of the same id loses
        # cleanly instead of overwriting; then the temp name goes and the directory is synced.
        with self.lock:
            try:
                os.link(self.path, final)
            except FileExistsError:
                raise AlreadyExists(f"image data {blob_id} already exists") from None
            self.published = final
            os.unlink(self.path)
            fsync_dir(final.parent)

    def discard(self) -> None:
        """Remove every trace: the temp file, and the final name if a cancelled publish made it."""
        with self.lock:
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                self.fd = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            if self.published is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.published)
                self.published = None


async def _call_progress(cb: ProgressCallback | None, size: int) -> None:
    if cb is None:
        return
    result = cb(size)
    if _inspect.isawaitable(result):
        await result


class BlobStore:
    """Image blobs under one root directory. All methods are safe to call from the event loop."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    async def start(self) -> list[Path]:
        """Create the root (0755) and sweep temp files a crash left; return what was removed."""
        def _start() -> list[Path]:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o755)
            return remove_stale_temps(self.root)
        return await asyncio.to_thread(_start)

    def path(self, blob_id: str) -> Path:
        return self.root / check_id(blob_id)

    def exists(self, blob_id: str) -> bool:
        return self.path(blob_id).is_file()

    async def size(self, blob_id: str) -> int:
        path = self.path(blob_id)
        try:
            return (await asyncio.to_thread(os.stat, path)).st_size
        except FileNotFoundError:
            raise NotFound(f"image data {blob_id} not found") from None

    async def write_stream(
        self,
        blob_id: str,
        chunks: AsyncIterable[bytes],
        on_progress: ProgressCallback | None = None,
        max_bytes: int | None = None,
        verify: VerifyCallback | None = None,
    ) -> BlobInfo:
        """Store a stream under `blob_id`; visible only once complete, fsynced and verified.

        on_progress(bytes_so_far) is called (sync or async) about every MiB and at the end.
        verify(temp_path, info) runs before the blob becomes visible; raise to refuse it.
        Raises: AlreadyExists, TooLarge (past max_bytes), DiskFull, whatever `chunks` or
        `verify` raise. In every failure case, including cancellation, nothing remains on disk.
        """
        final = self.path(blob_id)
        if final.exists():
            raise AlreadyExists(f"image data {blob_id} already exists")
        tmp = temp_path_for(final)
        try:
            # Created on the loop (one open(2)) so a cancellation cannot orphan the temp file.
            writer = _TempWriter(tmp)
        except OSError as exc:
            raise translate_os_error(exc, f"image data {blob_id}") from exc
        try:
            buf: list[bytes] = []
            buffered = 0
            received = 0
            async for chunk in chunks:
                if not chunk:
                    continue
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise TooLarge(f"image data is larger than {max_bytes} bytes", max_bytes)
                buf.append(bytes(chunk))
                buffered += len(chunk)
                if buffered >= _FLUSH_BYTES:
                    data, buf, buffered = b"".join(buf), [], 0
                    await asyncio.to_thread(writer.write, data)
                    await _call_progress(on_progress, writer.size)
            if buf:
                await asyncio.to_thread(writer.write, b"".join(buf))
            await asyncio.to_thread(writer.finish)
            await _call_progress(on_progress, writer.size)
            info = BlobInfo(
                size=writer.size,
                md5=writer.md5.hexdigest(),
                sha512=writer.sha512.hexdigest(),
                path=final,
            )
            if verify is not None:
                await verify(tmp, info)
            await asyncio.to_thread(writer.publish, final, blob_id)
            return info
        except OSError as exc:
            writer.discard()
            translated = translate_os_error(exc, f"image data {blob_id}")
            if translated is exc:
                raise
            raise translated from exc
        except BaseException:
            writer.discard()
            raise

    async def open_range(
        self, blob_id: str, start: int = 0, end: int | None = None, chunk_size: int = READ_CHUNK
    ) -> BlobReader:
        """Open the blob now and return an async iterator over bytes [start, end) (end exclusive).

        Opening first means NotFound/InvalidRange are raised here, before a response starts;
        the open descriptor keeps the data readable even if the blob is deleted meanwhile.
        HTTP `Range: bytes=a-b` (inclusive) is open_range(id, a, b + 1). Use `async with` or
        read to the end (or call aclose()) so the descriptor is closed promptly.
        """
        path = self.path(blob_id)
        try:
            fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"image data {blob_id} not found") from None
        try:
            size = os.fstat(fd).st_size
            stop = size if end is None else end
            if start < 0 or stop < start or stop > size or (start >= size and size > 0):
                raise InvalidRange(f"range {start}-{stop} outside 0-{size}", size)
        except BaseException:
            os.close(fd)
            raise
        return BlobReader(fd, start, stop, size, chunk_size)

    async def delete(self, blob_id: str, missing_ok: bool = True) -> bool:
        """Remove a blob; True if it existed. Open readers keep their data until they finish."""
        path = self.path(blob_id)

        def _delete() -> bool:
            try:
                os.unlink(path)
            except FileNotFoundError:
                if missing_ok:
                    return False
                raise NotFound(f"image data {blob_id} not found") from None
            fsync_dir(self.root)
            return True

        return await asyncio.to_thread(_delete)


class BlobReader:
    """Async iterator over one byte range of an open blob; closes its descriptor when done."""

    def __init__(self, fd: int, start: int, stop: int, size: int, chunk_size: int) -> None:
        self._fd: int | None = fd
        self._pos = start
        self.start = start
        self.stop = stop
        self.size = size  # whole blob, for Content-Range
        self._chunk = chunk_size

    @property
    def length(self) -> int:
        return self.stop - self.start

    def __aiter__(self) -> BlobReader:
        return self

    async def __anext__(self) -> bytes:
        if self._fd is None or self._pos >= self.stop:
            self._close()
            raise StopAsyncIteration
        n = min(self._chunk, self.stop - self._pos)
        data = await asyncio.to_thread(os.pread, self._fd, n, self._pos)
        if not data:  # the file shrank under us; end early rather than loop
            self._close()
            raise StopAsyncIteration
        self._pos += len(data)
        return data

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def aclose(self) -> None:
        self._close()

    async def __aenter__(self) -> BlobReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._close()

    def __del__(self) -> None:
        self._close()


async def iter_file(path: str | os.PathLike[str], chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
    """Read any local file as an async byte stream (e.g. a volume exported for upload)."""
    fd = await asyncio.to_thread(os.open, os.fspath(path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        pos = 0
        while True:
            data = await asyncio.to_thread(os.pread, fd, chunk_size, pos)
            if not data:
                return
            pos += len(data)
            yield data
    finally:
        os.close(fd)
