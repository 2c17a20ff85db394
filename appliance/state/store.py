"""The durable state store: TinyDB in memory, a snapshot plus an append-only journal on disk.

Why not TinyDB's JSONStorage: it rewrites the whole file on every write, so a write costs O(size
of the store) and a crash mid-write leaves half a file. Here TinyDB keeps its query machinery
(`Query`, `search`), but its storage is `MemoryBackedStorage` (the live dict of tables) and its
table class is `JournaledTable`, whose only mutators are `put`/`delete` of one document by id.

On disk, in the state directory:

    snapshot.json          {"schema_version", "seq", "tables": {...}}, replaced atomically
    journal.<first-seq>    lines "<crc32 hex8> <json>" — one line is one transaction:
                           {"seq": n, "ops": [["put", table, id, doc] | ["del", table, id], ...]}

A commit appends one line and fsyncs before it is acknowledged, so a write costs one small
append whatever the store holds. Concurrent commits share one fsync (group commit). Opening
loads the snapshot and replays every journal line with a larger seq; a torn or corrupt last
line (a crash mid-append) fails its CRC, is cut off, and was never acknowledged. Compaction
runs when the journal outgrows the snapshot: new commits go to a fresh journal segment, the
snapshot of everything before it is written to a temp file, fsynced and renamed, and only then
are the older segments removed — at every instant the files on disk open to a complete state.
Memory is changed only after the journal line is durable, so a failed write (disk full)
changes nothing.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from tinydb import Query, TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from appliance.errors import InsufficientStorage, MonostackError
from storage.atomic import fsync_dir, remove_stale_temps, write_bytes_atomic

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: Migrations from version N to N+1, each mutating the tables dict in place.
MIGRATIONS: dict[int, Callable[[dict[str, dict[str, Any]]], None]] = {}


@dataclass(frozen=True)
class Put:
    table: str
    id: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class Delete:
    table: str
    id: str


Op = Put | Delete


class MemoryBackedStorage(Storage):
    """TinyDB storage that is the live dict of tables; durability is the journal's job."""

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self.tables = tables

    def read(self) -> dict[str, dict[str, Any]]:
        return self.tables

    def write(self, data: dict[str, dict[str, Any]]) -> None:  # pragma: no cover - guarded
        raise MonostackError("state tables change only through Store.commit")


class JournaledTable(Table):
    """A TinyDB table keyed by our string ids, with whole-table rewrites forbidden."""

    document_id_class = str  # type: ignore[assignment]

    def _update_table(self, updater):  # noqa: D401 - TinyDB hook
        raise MonostackError("state tables change only through Store.commit")


class StoreCorrupt(MonostackError):
    pass


def _frame(body: bytes) -> bytes:
    """A journal line: the body's crc32, then the body (what _decode_line checks)."""
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _decode_line(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        return json.loads(body)
    except ValueError:
        return None



class Store:
    """Crash-safe TinyDB-backed store. Create, `await open()`, then read and commit."""

    def __init__(self, directory: Path, *, compact_min_bytes: int = 4 << 20) -> None:
        self.directory = Path(directory)
        self.compact_min_bytes = compact_min_bytes
        self._tables: dict[str, dict[str, Any]] = {}
        #: table → callbacks told of every change applied to it (see `watch`)
        self._watchers: dict[str, list[Callable[[str, Any, Any], None]]] = {}
        self._db: TinyDB | None = None
        self._seq = 0
        self._schema_version = SCHEMA_VERSION
        self._journal: Any = None
        self._journal_path: Path | None = None
        self._journal_size = 0
        #: called (from the writer thread) with each journal append+fsync's seconds
        self.on_fsync: Callable[[float], None] | None = None
        self._snapshot_size = 0
        self._pending: list[tuple[list[Op], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._compactor: asyncio.Task[None] | None = None
        self._io_lock = asyncio.Lock()

    # -- opening and closing ---------------------------------------------------------------

    async def open(self) -> None:
        fold = await asyncio.to_thread(self._open_sync)
        self._db = TinyDB(storage=MemoryBackedStorage, tables=self._tables)
        self._db.table_class = JournaledTable
        self._db.default_table_name = "_default"
        if fold is not None:
            # Folding what was replayed into a fresh snapshot (1,000 instances: a few MB of
            # JSON and an fsync) is off the daemon's way to answering: until it is durable
            # the old snapshot and segments stay, and a crash meanwhile replays them again.
            self._compactor = asyncio.create_task(self._fold_replayed(*fold))

    def _open_sync(self) -> tuple[dict[str, dict[str, Any]], int] | None:
        """Load snapshot and journal; the tables and seq still to fold into a new snapshot
        (None when the snapshot on disk already holds everything)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        remove_stale_temps(self.directory)  # a snapshot a crash cut short
        snap = self.directory / "snapshot.json"
        if snap.exists():
            data = json.loads(snap.read_bytes())
            self._tables = data["tables"]
            self._seq = data["seq"]
            self._schema_version = data.get("schema_version", 1)
            self._snapshot_size = snap.stat().st_size
        snapshot_seq, snapshot_version = self._seq, self._schema_version
        segments = self._segments()
        for i, seg in enumerate(segments):
            self._replay(seg, last=(i == len(segments) - 1))
        self._migrate()
        # Every open starts a fresh segment: appends never follow a cut-off tail.
        self._start_segment_sync()
        if self._schema_version != snapshot_version or not snap.exists():
            # A migration is made durable before anything is appended in the new schema (a
            # crash must never replay new-schema records through an old migration).
            self._write_snapshot_sync(self._copy_tables(), self._seq)
            self._drop_segments_before(self._journal_path)
            return None
        if self._seq == snapshot_seq:
            # Nothing replayed: the old segments hold only what the snapshot has.
            self._drop_segments_before(self._journal_path)
            return None
        # Fold what was replayed into a fresh snapshot so restarts never pile up segments.
        return self._copy_tables(), self._seq

    async def _fold_replayed(self, tables: dict[str, dict[str, Any]], seq: int) -> None:
        try:
            await asyncio.to_thread(self._write_snapshot_sync, tables, seq)
            async with self._io_lock:
                await asyncio.to_thread(self._drop_segments_before, self._journal_path)
        except OSError:
            log.exception("folding the replayed journal into a snapshot failed; the journal "
                          "keeps it (replayed again at the next start)")

    def _segments(self) -> list[Path]:
        segs = [p for p in self.directory.glob("journal.*") if p.suffix[1:].isdigit()]
        return sorted(segs, key=lambda p: int(p.suffix[1:]))

    def _replay(self, path: Path, *, last: bool) -> None:
        good = 0
        with open(path, "rb") as f:
            for line in f:
                record = _decode_line(line)
                if record is None:
                    break
                good += len(line)
                if record["seq"] <= self._seq:
                    continue
                # the documents were just decoded from the line: nobody else holds them
                self._apply(self._ops_from_record(record))
                self._seq = record["seq"]
        size = path.stat().st_size
        if good != size:
            if not last:
                raise StoreCorrupt(f"journal segment {path.name} is damaged before its end")
            log.warning("state journal %s: cutting a torn tail of %d bytes", path.name, size - good)
            with open(path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())

    def _migrate(self) -> None:
        while self._schema_version < SCHEMA_VERSION:
            MIGRATIONS[self._schema_version](self._tables)
            self._schema_version += 1

    async def close(self) -> None:
        if self._flusher:
            await asyncio.shield(self._flusher)
        if self._compactor:
            await asyncio.shield(self._compactor)
        if self._journal:
            self._journal.close()
            self._journal = None

    # -- reading ----------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return self._schema_version

    def table(self, name: str) -> Table:
        """A TinyDB table for queries (`search(Query().status == 'ACTIVE')`)."""
        assert self._db is not None, "store not open"
        return self._db.table(name, cache_size=0)

    def get(self, table: str, id: str) -> dict[str, Any] | None:
        return self._tables.get(table, {}).get(id)

    def all(self, table: str) -> list[dict[str, Any]]:
        return list(self._tables.get(table, {}).values())

    def ids(self, table: str) -> list[str]:
        return list(self._tables.get(table, {}))

    def table_names(self) -> list[str]:
        return sorted(name for name in self._tables if not name.startswith("_"))

    def count(self, table: str) -> int:
        return len(self._tables.get(table, {}))

    def watch(self, table: str, callback: Callable[[str, Any, Any], None]) -> None:
        """Call `callback(id, old_doc, new_doc)` (None for absent) after every change applied
        to `table` from now on, so a reader can keep an in-memory index of the table current
        at O(1) per change. Callbacks run inside the commit: they must be quick and not raise."""
        self._watchers.setdefault(table, []).append(callback)

    def search(self, table: str, cond: Any) -> list[dict[str, Any]]:
        return [dict(d) for d in self.table(table).search(cond)]

    # -- writing ----------------------------------------------------------------------------

    async def put(self, table: str, id: str, doc: dict[str, Any]) -> None:
        await self.commit([Put(table, id, doc)])

    async def delete(self, table: str, id: str) -> None:
        await self.commit([Delete(table, id)])

    async def commit(self, ops: Iterable[Op]) -> None:
        """Make ops durable as one transaction, then visible. Returns once fsynced."""
        ops = list(ops)
        if not ops:
            return
        # Each op is encoded once, here: a value that cannot be stored fails the caller, not
        # the group it would have been flushed with; the journal line is joined from these
        # texts and the visible copy decoded from them (this was three encodings per
        # document, ~40 µs of loop time for an instance record).
        encoded = [self._op_text(op) for op in ops]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((ops, encoded, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            lines = []
            seq = self._seq
            for _, encoded, _ in batch:
                seq += 1
                lines.append(_frame(b'{"ops":[%s],"seq":%d}' % (",".join(encoded).encode(), seq)))
            try:
                async with self._io_lock:
                    await asyncio.to_thread(self._append_sync, b"".join(lines))
            except OSError as exc:
                err: Exception = exc
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    err = InsufficientStorage("state store: disk full, write not saved")
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for ops, encoded, fut in batch:
                self._apply_encoded(ops, encoded)
                if not fut.done():
                    fut.set_result(None)
            self._seq = seq
            self._journal_size += sum(len(line) for line in lines)
        self._maybe_compact()

    @property
    def journal_size(self) -> int:
        """Bytes in the journal since the last snapshot (compaction resets it)."""
        return self._journal_size

    def _append_sync(self, data: bytes) -> None:
        # Unbuffered writes on the raw fd: a buffered file kept the unwritten rest of a failed
        # (disk full) line in its buffer and wrote it ahead of the next commit, under the same
        # seq — replay then resurrected the refused write and dropped the acknowledged one.
        fd = self._journal.fileno()
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            began = time.perf_counter()
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            if self.on_fsync is not None:
                self.on_fsync(time.perf_counter() - began)
        except OSError:
            # Leave no partial line behind a failed append (O_APPEND: the next write lands
            # at the truncated end).
            try:
                os.ftruncate(fd, start)
                os.fsync(fd)
            except OSError:
                pass
            raise

    @staticmethod
    def _op_text(op: Op) -> str:
        """One op as its journal JSON; the document keeps its key order (replay then gives
        back the order the writer used, as the in-memory copy always had)."""
        if isinstance(op, Put):
            return '["put",%s,%s,%s]' % (json.dumps(op.table), json.dumps(op.id),
                                          json.dumps(op.doc, separators=(",", ":")))
        return '["del",%s,%s]' % (json.dumps(op.table), json.dumps(op.id))

    def _apply_encoded(self, ops: list[Op], encoded: list[str]) -> None:
        """Apply committed ops with documents decoded from their journal text: a fresh copy
        no caller holds, exactly what replay will read back."""
        fresh: list[Op] = []
        for op, text in zip(ops, encoded):
            if isinstance(op, Put):
                fresh.append(Put(op.table, op.id, json.loads(text)[3]))
            else:
                fresh.append(op)
        self._apply(fresh)

    @staticmethod
    def _ops_from_record(record: dict[str, Any]) -> list[Op]:
        ops: list[Op] = []
        for item in record["ops"]:
            if item[0] == "put":
                ops.append(Put(item[1], item[2], item[3]))
            else:
                ops.append(Delete(item[1], item[2]))
        return ops

    def _apply(self, ops: list[Op]) -> None:
        """Make ops visible. Their documents were decoded from journal text (a commit's or a
        replayed one), so no caller holds them: kept as they are, no copy — readers and the
        compactor never see a document change in place."""
        for op in ops:
            table = self._tables.setdefault(op.table, {})
            if isinstance(op, Put):
                new = op.doc
                old = table.get(op.id)
                table[op.id] = new
            else:
                new, old = None, table.pop(op.id, None)
            for callback in self._watchers.get(op.table, ()):
                callback(op.id, old, new)

    # -- compaction -------------------------------------------------------------------------

    def _maybe_compact(self) -> None:
        threshold = max(self.compact_min_bytes, 2 * self._snapshot_size)
        if self._journal_size < threshold:
            return
        if self._compactor and not self._compactor.done():
            return
        self._compactor = asyncio.create_task(self.compact())

    async def compact(self) -> None:
        """Fold the journal into a new snapshot without blocking commits for long."""
        async with self._io_lock:
            seq = self._seq
            tables = self._copy_tables()
            await asyncio.to_thread(self._start_segment_sync)
        await asyncio.to_thread(self._write_snapshot_sync, tables, seq)
        async with self._io_lock:
            await asyncio.to_thread(self._drop_segments_before, self._journal_path)

    def _copy_tables(self) -> dict[str, dict[str, Any]]:
        return {name: dict(docs) for name, docs in self._tables.items()}

    def _start_segment_sync(self) -> None:
        if self._journal:
            self._journal.close()
        path = self.directory / f"journal.{self._seq + 1:012d}"
        self._journal = open(path, "ab", buffering=0)
        self._journal_path = path
        self._journal_size = 0
        fsync_dir(self.directory)

    def _write_snapshot_sync(self, tables: dict[str, Any], seq: int) -> None:
        data = json.dumps(
            {"schema_version": self._schema_version, "seq": seq, "tables": tables},
            separators=(",", ":"),
        ).encode()
        write_bytes_atomic(self.directory / "snapshot.json", data, 0o600)
        self._snapshot_size = len(data)

    def _drop_segments_before(self, current: Path | None) -> None:
        for seg in self._segments():
            if seg != current:
                seg.unlink(missing_ok=True)
        fsync_dir(self.directory)


__all__ = ["Store", "Put", "Delete", "Query", "Document", "SCHEMA_VERSION", "MIGRATIONS"]
