"""Object files on one device: layout, on-disk format, durable writes, verified reads.

Layout of a device directory (Swift's, minus partitions)::

    <device>/objects/<hash[:3]>/<hash>/<timestamp>.data   bytes + metadata trailer
                                       <timestamp>.meta   POSTed metadata (newer than .data)
                                       <timestamp>.ts     tombstone (a DELETE)
    <device>/tmp/                      temp files, same filesystem, so rename is atomic
    <device>/quarantined/objects/<hash>/<file>           corrupt replicas, kept for forensics

`hash` is sha256 of (account, container, name) (see names.py): a name never becomes a path.
Timestamped files make every change a *new* file installed by one atomic rename, and
make concurrent writers converge: the newest .data/.ts wins, a .meta applies only when it
is newer than the .data, and older files are removed by `cleanup_hashdir`.  A DELETE
writes a tombstone rather than unlinking, so a replica that missed the delete cannot be
resurrected by the auditor or by `rebuild`.

File format — data first, metadata last, so a PUT streams straight to disk and learns
size and md5 only at the end, and the whole thing still lands with *one* rename::

    payload (size bytes) | metadata JSON | u64 json_len | u32 crc32(json) | b"MSO1"

The metadata records the full name (compared on read), size, the client-visible ETag,
the md5 of the stored bytes (the checksum the auditor verifies), the crc32 of every 1 MiB
block of them (what reads verify: see `BlockSums`), content-type, timestamp, user metadata,
system metadata and delete_at.  The crc32 catches a torn or
corrupt trailer; `file size == size + json_len + 16` catches truncation without reading.

Durability: temp file in <device>/tmp → write → fsync → rename → fsync the hash dir (and
the parents it had to create).  Blocking calls run in threads (the I/O pool below, or a
streamed PUT's own writer thread per replica, see fanout.py), never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import hashlib
import itertools
import json
import os
import struct
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable

import aiofiles

from .errors import DiskFull
from .ring import Device

MAGIC = b"MSO1"
#: payload bytes per block checksum (a read verifies whole blocks; a range read rounds out)
BLOCK = 1 << 20
#: bytes a streamed read asks for at once (whole blocks, verified in the same thread hop)
STREAM_READ = 4 * BLOCK
FOOTER = struct.Struct(">QI4s")  # json_len, crc32(json), magic
READ_CHUNK = 1 << 20
DATA, META, TOMBSTONE = ".data", ".meta", ".ts"


class CorruptReplica(Exception):
    """A replica's trailer or bytes do not verify; the caller quarantines it."""


class BlockMismatch(CorruptReplica):
    """Bytes read do not match their block checksum: this replica is bad (not the disk
    path to it), so it is quarantined and the read goes on from another one."""


def format_timestamp(t: float) -> str:
    """Fixed width, so string order is time order (Swift's normalized timestamp)."""
    return f"{t:016.5f}"


@dataclass(slots=True)
class ObjectInfo:
    """What is known about one object version (its .data trailer merged with a newer .meta)."""

    account: str
    container: str
    name: str
    size: int
    etag: str  # what clients see; md5 of the body unless a manifest says otherwise
    md5: str  # md5 of the stored bytes: the checksum reads and the auditor verify
    content_type: str
    timestamp: str  # format_timestamp() of the PUT
    metadata: dict[str, str] = field(default_factory=dict)  # X-Object-Meta-* (no prefix)
    sysmeta: dict[str, str] = field(default_factory=dict)  # Content-Disposition, manifests …
    delete_at: float | None = None
    meta_timestamp: str | None = None  # of the .meta applied, if any
    #: crc32 of each BLOCK of the stored bytes, 8 hex digits each (None: written before
    #: blocks were summed; reads then verify the md5)
    block_crc32: str | None = None

    @property
    def last_modified(self) -> float:
        return float(self.meta_timestamp or self.timestamp)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("meta_timestamp")
        d["v"] = 1
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ObjectInfo":
        return cls(
            account=d["account"], container=d["container"], name=d["name"], size=int(d["size"]),
            etag=d["etag"], md5=d["md5"], content_type=d["content_type"],
            timestamp=d["timestamp"], metadata=dict(d.get("metadata") or {}),
            sysmeta=dict(d.get("sysmeta") or {}), delete_at=d.get("delete_at"),
            block_crc32=d.get("block_crc32"),
        )


class BlockSums:
    """crc32 of each BLOCK of a stream, fed in pieces of any size.

    Why a second checksum beside the md5: the md5 (Swift's ETag) runs at ~230-560 MiB/s on
    this class of CPU, one core, so a GET that verifies it can never reach half a raw read
    (~1,200 MiB/s cold). zlib's crc32 runs at ~1,500 MiB/s and releases the GIL, and per
    block it lets a read verify bytes *before* it sends them (a bad block fails over to
    another replica instead of ending a response short) and lets range reads be verified
    too. The md5 is still the object's checksum: computed at PUT, compared by the auditor
    over every replica."""

    __slots__ = ("_crcs", "_crc", "_fill")

    def __init__(self) -> None:
        self._crcs: list[int] = []
        self._crc = 0
        self._fill = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = min(BLOCK - self._fill, len(view))
            self._crc = zlib.crc32(view[:take], self._crc)
            self._fill += take
            view = view[take:]
            if self._fill == BLOCK:
                self._crcs.append(self._crc)
                self._crc, self._fill = 0, 0

    def hexdigest(self) -> str:
        crcs = self._crcs + ([self._crc] if self._fill else [])
        return "".join(f"{c:08x}" for c in crcs)


def check_blocks(sums: str, offset: int, data: bytes | memoryview, path: Any = "") -> None:
    """CorruptReplica unless `data` (whole blocks from payload `offset`, the last possibly
    short at the object's end) matches its block checksums."""
    view = memoryview(data)
    first = offset // BLOCK
    for k in range(0, (len(view) + BLOCK - 1) // BLOCK):
        want = sums[(first + k) * 8:(first + k + 1) * 8]
        got = zlib.crc32(view[k * BLOCK:(k + 1) * BLOCK])
        if len(want) != 8 or int(want, 16) != got:
            raise BlockMismatch(f"{path}: block {first + k} checksum mismatch")


# --------------------------------------------------------------------------- paths


def hashdir(device: Device, ohash: str) -> Path:
    return device.path / "objects" / ohash[:3] / ohash


def tmpdir(device: Device) -> Path:
    return device.path / "tmp"


def prepare_device(device: Device) -> None:
    """Create the device's top directories (idempotent)."""
    for sub in ("objects", "tmp", "quarantined/objects"):
        (device.path / sub).mkdir(parents=True, exist_ok=True)


def clean_tmp(device: Device) -> int:
    """Remove temp files left by a crash (call at startup, before any write)."""
    n = 0
    for p in tmpdir(device).glob("*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: Path) -> bool:
    """mkdir -p, fsyncing the parent of every directory created (so the entry survives);
    True if `path` itself was created here."""
    try:  # the usual case: only the hash dir itself is new
        os.mkdir(path)
    except FileExistsError:
        return False
    except FileNotFoundError:
        pass
    else:
        fsync_dir(path.parent)
        return True
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    created = False
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            created = False
            continue
        fsync_dir(d.parent)
        created = True
    return created and bool(missing) and missing[0] == path


# --------------------------------------------------------------------------- format


def encode_trailer(meta: dict[str, Any]) -> bytes:
    body = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return body + FOOTER.pack(len(body), zlib.crc32(body), MAGIC)


def read_trailer(fd: int) -> tuple[dict[str, Any], int]:
    """(metadata, payload length) of an open file; CorruptReplica if it does not verify."""
    size = os.fstat(fd).st_size
    if size < FOOTER.size:
        raise CorruptReplica(f"file of {size} bytes has no footer")
    json_len, crc, magic = FOOTER.unpack(os.pread(fd, FOOTER.size, size - FOOTER.size))
    if magic != MAGIC or json_len > size - FOOTER.size:
        raise CorruptReplica("bad footer")
    start = size - FOOTER.size - json_len
    body = os.pread(fd, json_len, start)
    if len(body) != json_len or zlib.crc32(body) != crc:
        raise CorruptReplica("metadata checksum mismatch")
    try:
        meta = json.loads(body)
    except ValueError as exc:
        raise CorruptReplica(f"metadata is not JSON: {exc}") from None
    return meta, start


def read_file_meta(path: Path) -> tuple[dict[str, Any], int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_trailer(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- hash dirs


@dataclass(slots=True)
class HashDirState:
    """The newest files in one replica's hash directory (timestamps, or None)."""

    data: str | None = None
    tombstone: str | None = None
    meta: str | None = None

    @property
    def timestamp(self) -> str | None:
        """Timestamp of the version this replica holds (data or tombstone)."""
        return max(filter(None, (self.data, self.tombstone)), default=None)

    @property
    def deleted(self) -> bool:
        return self.tombstone is not None and (self.data is None or self.tombstone > self.data)


def scan_hashdir(path: Path) -> tuple[HashDirState, list[str]]:
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return HashDirState(), []
    st = HashDirState()
    for n in names:
        ts, ext = os.path.splitext(n)
        if ext == DATA:
            st.data = max(st.data or "", ts)
        elif ext == TOMBSTONE:
            st.tombstone = max(st.tombstone or "", ts)
        elif ext == META:
            st.meta = max(st.meta or "", ts)
    return st, names


def cleanup_hashdir(path: Path) -> None:
    """Remove files made obsolete by newer ones (idempotent, safe to race)."""
    st, names = scan_hashdir(path)
    newest = st.timestamp
    for n in names:
        ts, ext = os.path.splitext(n)
        obsolete = (
            (ext in (DATA, TOMBSTONE) and newest is not None and ts < newest)
            or (ext == DATA and st.deleted)
            or (ext == META and (st.deleted or st.data is None or ts <= st.data or ts < (st.meta or "")))
            or ext not in (DATA, TOMBSTONE, META)
        )
        if obsolete:
            try:
                os.unlink(path / n)
            except FileNotFoundError:
                pass
    # Empty hash dirs stay: removing one could race a writer between mkdir and rename.


@dataclass(slots=True)
class Replica:
    """One device's view of an object: live (info set), deleted, or absent."""

    device: Device
    state: HashDirState
    info: ObjectInfo | None = None
    data_path: Path | None = None
    payload_len: int = 0

    @property
    def timestamp(self) -> str | None:
        return self.state.timestamp


def open_replica(device: Device, ohash: str, expect: tuple[str, str, str] | None) -> Replica:
    """Read one replica's metadata (blocking; run in a thread).

    Raises CorruptReplica when the .data trailer does not verify, its size disagrees with
    the file length, or its name is not `expect` (a hash collision would be caught here).
    A corrupt .meta is ignored and removed: it only carries metadata, the .data stands.
    """
    hd = hashdir(device, ohash)
    st, _ = scan_hashdir(hd)
    rep = Replica(device=device, state=st)
    if st.data is None or st.deleted:
        return rep
    path = hd / (st.data + DATA)
    try:
        meta, payload_len = read_file_meta(path)
    except FileNotFoundError:  # raced with a cleanup: treat as absent, the caller retries
        return Replica(device=device, state=HashDirState())
    info = ObjectInfo.from_json(meta)
    if payload_len != info.size:
        raise CorruptReplica(f"{path}: payload is {payload_len} bytes, metadata says {info.size}")
    if expect is not None and (info.account, info.container, info.name) != expect:
        raise CorruptReplica(f"{path}: holds {info.name!r}, not {expect[2]!r}")
    if st.meta is not None and st.meta > st.data:
        try:
            m, _ = read_file_meta(hd / (st.meta + META))
            apply_meta_update(info, m)
        except (CorruptReplica, FileNotFoundError, KeyError):
            (hd / (st.meta + META)).unlink(missing_ok=True)
    rep.info, rep.data_path, rep.payload_len = info, path, payload_len
    return rep


def apply_meta_update(info: ObjectInfo, m: dict[str, Any]) -> None:
    """Merge a .meta record (a POST) into `info`: user metadata is replaced (Swift)."""
    info.metadata = dict(m["metadata"])
    if m.get("content_type") is not None:
        info.content_type = m["content_type"]
    if "delete_at" in m:
        info.delete_at = m["delete_at"]
    info.sysmeta.update(m.get("sysmeta") or {})
    info.meta_timestamp = m["timestamp"]


def quarantine(device: Device, ohash: str, path: Path) -> Path | None:
    """Move a corrupt file out of the way (same filesystem: a rename), keep it for forensics."""
    dest_dir = device.path / "quarantined" / "objects" / ohash
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{path.name}.{uuid.uuid4().hex[:8]}"
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    fsync_dir(path.parent)
    return dest


def verify_replica_sync(rep: Replica, limit_chunk: int = READ_CHUNK) -> None:
    """Read the whole payload and compare its md5 (blocking). CorruptReplica on mismatch."""
    assert rep.data_path is not None and rep.info is not None
    h = hashlib.md5()
    with open(rep.data_path, "rb") as f:
        left = rep.payload_len
        while left:
            b = f.read(min(limit_chunk, left))
            if not b:
                raise CorruptReplica(f"{rep.data_path}: short read")
            h.update(b)
            left -= len(b)
    if h.hexdigest() != rep.info.md5:
        raise CorruptReplica(f"{rep.data_path}: md5 {h.hexdigest()} != {rep.info.md5}")


def read_small_verified(rep: Replica) -> bytes:
    """Whole payload of a small object, verified before it is served (blocking): by its
    block checksums, or its md5 when written before those existed."""
    assert rep.data_path is not None and rep.info is not None
    with open(rep.data_path, "rb") as f:
        b = f.read(rep.payload_len)
    if len(b) != rep.payload_len:
        raise CorruptReplica(f"{rep.data_path}: short read")
    if rep.info.block_crc32 is not None:
        check_blocks(rep.info.block_crc32, 0, b, rep.data_path)
    elif hashlib.md5(b).hexdigest() != rep.info.md5:
        raise CorruptReplica(f"{rep.data_path}: checksum mismatch")
    return b


async def stream_blocks(path: Path, start: int, end: int, size: int, sums: str,
                        depth: int = 2) -> AsyncIterator[bytes]:
    """Bytes [start, end) of a payload of `size` bytes, every byte verified against its
    block checksum before it is yielded (BlockMismatch otherwise).

    Reads whole blocks (a range is rounded out to them), STREAM_READ at a time; each read
    and its check are one thread hop (pread and crc32 release the GIL), `depth` of them in
    flight, so the disk, the checksum and whoever sends the bytes overlap."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    lo = start // BLOCK * BLOCK
    hi = min(size, -(-end // BLOCK) * BLOCK)
    loop = asyncio.get_running_loop()

    def read(off: int, n: int) -> bytes:
        b = os.pread(fd, n, off)
        if len(b) != n:
            raise CorruptReplica(f"{path}: short read at {off}")
        check_blocks(sums, off, b, path)
        return b

    offsets = iter(range(lo, hi, STREAM_READ))
    pending: list[asyncio.Future[bytes]] = []

    def submit() -> None:
        off = next(offsets, None)
        if off is not None:
            pending.append(loop.run_in_executor(_IO, read, off, min(STREAM_READ, hi - off)))

    try:
        await asyncio.to_thread(os.posix_fadvise, fd, lo, hi - lo, os.POSIX_FADV_SEQUENTIAL)
        for _ in range(depth):
            submit()
        pos = lo
        while pending:
            b = await asyncio.shield(pending[0])
            pending.pop(0)
            submit()
            a, z = max(start - pos, 0), min(end - pos, len(b))
            pos += len(b)
            yield b if (a, z) == (0, len(b)) else b[a:z]
    finally:
        left = [f for f in pending if not f.done()]
        if left:
            # reads in flight still use fd: close it only once they are over (a closed,
            # reused descriptor would be read otherwise)
            remaining = [len(left)]

            def close_after(_: object) -> None:
                remaining[0] -= 1
                if not remaining[0]:
                    os.close(fd)
            for f in left:
                f.add_done_callback(close_after)
        else:
            os.close(fd)
        for f in pending:
            if f.done() and not f.cancelled():
                f.exception()  # retrieved: a reader that stopped early has no use for it


async def stream_range(path: Path, start: int, end: int, chunk: int = READ_CHUNK,
                       md5: Any = None) -> AsyncIterator[bytes]:
    """Bytes [start, end) of a file, in chunks, each added to `md5` (if given) before it is
    yielded.

    Reading and hashing both run in threads (pread and md5 of a large buffer release the GIL)
    and overlap: the next chunk is read while this one is hashed and while the caller sends
    it. Read through aiofiles with the md5 on the event loop, a 1 GiB GET ran at a tenth of a
    raw read."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    pending: asyncio.Future[bytes] | None = None
    try:
        await asyncio.to_thread(os.posix_fadvise, fd, start, end - start,
                                os.POSIX_FADV_SEQUENTIAL)
        pos = start
        if pos < end:
            pending = asyncio.ensure_future(asyncio.to_thread(os.pread, fd, min(chunk, end - pos),
                                                              pos))
        while pending is not None:
            # shielded: a cancelled reader leaves the pread running, and fd open until it ends
            b = await asyncio.shield(pending)
            pending = None
            if not b:
                raise CorruptReplica(f"{path}: short read at {pos - start}")
            pos += len(b)
            if pos < end:
                pending = asyncio.ensure_future(
                    asyncio.to_thread(os.pread, fd, min(chunk, end - pos), pos))
            if md5 is not None:
                await asyncio.to_thread(md5.update, b)
            yield b
    finally:
        if pending is not None and not pending.done():
            # a reader that stopped early: the pread in flight still uses fd, which is closed
            # only when it is over (a closed, reused descriptor would be read otherwise)
            pending.add_done_callback(lambda f: (f.cancelled() or f.exception(), os.close(fd)))
        else:
            if pending is not None and not pending.cancelled():
                pending.exception()  # retrieved: a reader that stopped early has no use for it
            os.close(fd)


# --------------------------------------------------------------------------- writes


def _is_enospc(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


#: Replica files are written and fsynced here, not in the event loop's default executor: that
#: one has cpu_count + 4 threads (6 on a 2-core host). A small PUT's replica spends its whole
#: hop waiting on the disk (fsync, the index's intent, fsync of the directory), so 32
#: concurrent PUTs hold 96 of these threads at once; fewer, and PUTs queue behind each other's
#: fsyncs while the disk idles (the journal commits concurrent fsyncs together: measured,
#: 96 threads create replicas 2.5× faster than 32).
_IO = ThreadPoolExecutor(max_workers=128, thread_name_prefix="objects-io")
#: a body chunk this small is held until the commit and written with it: one thread hop per
#: replica for a small object instead of one per step
_HOLD_BYTES = 64 << 10
#: a streamed replica starts the writeback of what it wrote every this many bytes
WRITEBACK_BYTES = 8 << 20
#: how long an install waits for the index's intent before it gives up (the index writer
#: settles it in milliseconds; this only bounds a wedged index)
_INTENT_WAIT_S = 60.0


#: temp names: this process's random prefix and a counter. A uuid4 per replica cost a
#: getrandom call each on the event loop, and every call that lets go of the GIL there waits
#: to get it back from the I/O threads (~0.1 ms each, measured under 32 clients)
_TMP_PREFIX = uuid.uuid4().hex
_tmp_seq = itertools.count()


def _tmp_name() -> str:
    return f"{_TMP_PREFIX}{next(_tmp_seq):x}.tmp"


async def _in_io(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_IO, fn, *args)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _writev_all(fd: int, pieces: "list[bytes | bytearray]", offset: int) -> None:
    n = os.pwritev(fd, pieces, offset)
    if n == sum(map(len, pieces)):
        return
    for p in pieces:  # a short write (rare on a regular file): the rest piece by piece
        if n >= len(p):
            n -= len(p)
            offset += len(p)
            continue
        _write_all(fd, memoryview(p)[n:], offset + n)
        offset += len(p)
        n = 0


async def _nothing() -> None:
    return None


class ReplicaWriter:
    """Streams one replica into <device>/tmp, then installs it durably with one rename.

    The temp file is created by the first write that is not held back, or by the commit:
    a small object's replica is created, written, fsynced and installed in one thread hop.
    Every failure path removes the temp file; ENOSPC/EDQUOT surface as DiskFull.
    """

    def __init__(self, device: Device, ohash: str) -> None:
        self.device = device
        self.ohash = ohash
        self.tmp_path = tmpdir(device) / _tmp_name()
        self._fd: int | None = None
        self._held = b""
        self._pos = 0  # where the next write goes (taken when it is issued: writes may overlap)
        self._flushed = 0  # streamed bytes whose writeback was started
        self._opening = threading.Lock()
        self.error: BaseException | None = None
        self.installed: Path | None = None
        self.created_dir = False  # the install made the hash dir: no older version to clean

    def _open_sync(self) -> None:
        with self._opening:  # two overlapping first writes create the file once
            if self._fd is None:
                self._fd = os.open(self.tmp_path,
                                   os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

    async def open(self) -> None:
        """Create the temp file now (a caller that streams a body learns early whether the
        device takes writes); optional: the first write or the commit creates it otherwise."""
        try:
            await _in_io(self._open_sync)
        except OSError as exc:
            raise self._translate(exc) from exc

    def write(self, data: bytes) -> Awaitable[None]:
        """Write `data` after what was written before. Its place in the file is taken now,
        so a caller may issue the next write before this one is over (a streamed PUT keeps
        one chunk's writes running while it takes the next); commit only after all are."""
        if not self._held and len(data) <= _HOLD_BYTES:
            self._held = data  # written by commit (or the next write), same durability
            return _nothing()
        data, self._held = self._held + data if self._held else data, b""
        offset, self._pos = self._pos, self._pos + len(data)
        return self._write_at(data, offset)

    async def _write_at(self, data: bytes, offset: int) -> None:
        try:
            await _in_io(self._write_sync, data, offset)
        except OSError as exc:
            raise self._translate(exc) from exc

    def _write_sync(self, data: bytes, offset: int) -> None:
        self._open_sync()
        assert self._fd is not None
        _write_all(self._fd, data, offset)

    # -- streamed in a thread of its own (fanout.py): batches at their offsets, then a sync

    def write_batch_sync(self, pieces: "list[bytes | bytearray]", offset: int) -> None:
        """Write `pieces` back to back at `offset` (blocking; one pwritev)."""
        try:
            self._open_sync()
            assert self._fd is not None
            end = offset + sum(map(len, pieces))
            _writev_all(self._fd, pieces, offset)
            if end - self._flushed >= WRITEBACK_BYTES:
                # start the writeback of what is written so far (Linux starts it for dirty
                # pages and does not wait): the final fsync then has little left to do
                os.posix_fadvise(self._fd, self._flushed, end - self._flushed, os.POSIX_FADV_DONTNEED)
                self._flushed = end
        except OSError as exc:
            raise self._translate(exc) from exc
        self._pos = max(self._pos, end)

    def sync_data_sync(self) -> None:
        """fdatasync what was streamed (blocking): the body's writeback runs while the md5
        of its last batches is still being taken, leaving the commit's fsync the trailer."""
        try:
            if self._fd is not None:
                os.fdatasync(self._fd)
        except OSError as exc:
            raise self._translate(exc) from exc

    def close_sync(self, _exc: BaseException | None = None) -> None:
        """Close the temp file after a failed streamed write (its thread, before it returns:
        no write of this replica can follow); abort() removes the file."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    async def commit(self, trailer: bytes, filename: str,
                     before_install: "concurrent.futures.Future[Any] | None" = None) -> Path:
        """Append what is held and the trailer, fsync, rename into the hash dir, fsync the
        dir: one thread hop. `before_install`: a future the rename waits for once the bytes
        are durable (the engine's intent row), so the two disk barriers overlap."""
        tail, self._held = self._held + trailer, b""
        try:
            self.installed = await _in_io(self._commit_sync, tail, filename, before_install)
            return self.installed
        except OSError as exc:
            raise self._translate(exc) from exc

    def _commit_sync(self, tail: bytes, filename: str,
                     before_install: "concurrent.futures.Future[Any] | None" = None) -> Path:
        self._open_sync()
        fd = self._fd
        assert fd is not None
        if tail:
            _write_all(fd, tail, self._pos)
            self._pos += len(tail)
        os.fsync(fd)
        self._fd = None
        os.close(fd)
        if before_install is not None:
            before_install.result(timeout=_INTENT_WAIT_S)  # raises what the intent raised
        return self._install(filename)

    def _install(self, filename: str) -> Path:
        hd = hashdir(self.device, self.ohash)
        self.created_dir = _makedirs_durable(hd)
        dest = hd / filename
        os.rename(self.tmp_path, dest)
        self.installed = dest  # visible now: an undo must remove it even if the fsync fails
        fsync_dir(hd)
        return dest  # no cleanup yet: the older version stays until the PUT is acknowledged

    async def abort(self) -> None:
        """Close and remove the temp file (never raises)."""
        fd, self._fd = self._fd, None
        self._held = b""
        try:
            if fd is not None:
                os.close(fd)
        except Exception:
            pass
        try:
            await _in_io(self.tmp_path.unlink, True)
        except Exception:
            pass

    def _translate(self, exc: OSError) -> BaseException:
        self.error = DiskFull(f"{self.device.id}: {exc}") if _is_enospc(exc) else exc
        return self.error


def write_small_file_sync(device: Device, ohash: str, filename: str, content: bytes) -> Path:
    """Durably install a small file (.meta, .ts) into a hash dir (blocking)."""
    tmp = tmpdir(device) / _tmp_name()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        hd = hashdir(device, ohash)
        _makedirs_durable(hd)
        dest = hd / filename
        os.rename(tmp, dest)
        fsync_dir(hd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if _is_enospc(exc):
            raise DiskFull(f"{device.id}: {exc}") from exc
        raise
    cleanup_hashdir(hd)
    return dest


def iter_hashdirs(device: Device):
    """Yield (hash, path) of every hash dir on a device (blocking generator)."""
    root = device.path / "objects"
    try:
        suffixes = sorted(os.listdir(root))
    except FileNotFoundError:
        return
    for s in suffixes:
        try:
            hashes = sorted(os.listdir(root / s))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for h in hashes:
            yield h, root / s / h


def now() -> float:
    return time.time()
