"""Account and container listings, indexed in sqlite.

Why sqlite (stdlib ``sqlite3``): listings need ordered range scans over names with
prefix/marker/end_marker/reverse — a B-tree — and they must survive crashes mid-update.
SQLite is a small, exhaustively tested, crash-safe B-tree with atomic transactions; it is
what Swift itself uses for its account and container databases.  WAL mode lets readers
run while the writer commits; ``synchronous=FULL`` makes a commit durable when it returns.

One database file for all accounts.  ``objects`` is a WITHOUT ROWID table clustered on its
primary key (account, container, name), so a listing is one index range scan that starts
at the marker/prefix and stops after `limit` rows: listing the first 10,000 names costs
the same at 1,000 or 1,000,000 objects.  A delimiter listing does not walk the children
of a subdir: on the first name under ``prefix + x + delimiter`` it emits the subdir and
issues a new range query starting past every name with that prefix (`prefix_successor`).

A DELETE keeps the row with ``deleted=1`` and its timestamp, so a slower, older PUT that
finishes later cannot resurrect the object (last writer by timestamp wins, as on disk);
`reap_deleted` drops such rows once they are old.

Ordering against the object files (see engine.py): an *intent* row is committed before
replicas are installed, the object row is committed (and the intent removed in the same
transaction) after a quorum is durable, and only then is the PUT acknowledged.  After a
crash, the only objects whose index row may disagree with the disk are those with an
intent left: startup reconciliation looks at just those, so it is cheap.  `replace_all`
(used by the engine's `rebuild`) re-derives everything from the disk files.

Threads: one writer thread owns the write connection and *group-commits*: it drains every
queued update into one transaction (one fsync for many concurrent PUTs), each update in
its own SAVEPOINT so one failure does not undo the others.  Reads run on a small pool,
one connection per thread.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import ContainerNotEmpty, ContainerNotFound

DEFAULT_LIMIT = 10_000
_BATCH_MAX = 256

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY,
    meta TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS containers (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    object_count INTEGER NOT NULL DEFAULT 0,
    bytes_used INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    last_modified REAL NOT NULL,
    PRIMARY KEY (account, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    content_type TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    last_modified REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    delete_at REAL,
    PRIMARY KEY (account, container, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_delete_at ON objects (delete_at)
    WHERE delete_at IS NOT NULL AND deleted = 0;
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    name TEXT NOT NULL,
    timestamp TEXT NOT NULL
);
"""


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class ObjectRow:
    """One object's index row (deleted=True is a remembered DELETE)."""

    account: str
    container: str
    name: str
    size: int
    etag: str
    content_type: str
    timestamp: str
    last_modified: float
    deleted: bool = False
    delete_at: float | None = None


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    name: str
    bytes: int
    hash: str
    content_type: str
    last_modified: float


@dataclass(frozen=True, slots=True)
class ContainerEntry:
    name: str
    count: int
    bytes: int
    last_modified: float


@dataclass(frozen=True, slots=True)
class Subdir:
    """A delimiter listing's roll-up of every name under `subdir` (ends with the delimiter)."""

    subdir: str

    @property
    def name(self) -> str:
        return self.subdir


@dataclass(slots=True)
class ContainerInfo:
    account: str
    name: str
    object_count: int
    bytes_used: int
    meta: dict[str, str]
    created: float
    last_modified: float


@dataclass(slots=True)
class AccountInfo:
    account: str
    container_count: int
    object_count: int
    bytes_used: int
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Intent:
    id: int
    hash: str
    account: str
    container: str
    name: str
    timestamp: str


# --------------------------------------------------------------------------- listing


def prefix_successor(s: str) -> str | None:
    """The smallest string greater than every string that starts with `s` (None: no bound).

    UTF-8 byte order (sqlite's TEXT order) equals code point order, so this is computed
    on code points; surrogates are skipped because they cannot be encoded.
    """
    chars = list(s)
    while chars:
        c = ord(chars[-1])
        if c < 0x10FFFF:
            c += 1
            if 0xD800 <= c <= 0xDFFF:
                c = 0xE000
            chars[-1] = chr(c)
            return "".join(chars)
        chars.pop()
    return None


def _raise_lo(lo: tuple[str, bool] | None, v: str, inclusive: bool) -> tuple[str, bool]:
    if lo is None or v > lo[0]:
        return (v, inclusive)
    if v == lo[0]:
        return (v, lo[1] and inclusive)
    return lo


def _lower_hi(hi: tuple[str, bool] | None, v: str, inclusive: bool) -> tuple[str, bool]:
    if hi is None or v < hi[0]:
        return (v, inclusive)
    if v == hi[0]:
        return (v, hi[1] and inclusive)
    return hi


def list_range(
    fetch: Callable[[tuple[str, bool] | None, tuple[str, bool] | None, bool, int], list[tuple]],
    row_to_entry: Callable[[tuple], Any],
    *,
    prefix: str = "",
    delimiter: str = "",
    marker: str = "",
    end_marker: str = "",
    limit: int = DEFAULT_LIMIT,
    reverse: bool = False,
) -> list[Any]:
    """Swift listing semantics over an ordered key space (rows' first column is the name).

    `fetch(lo, hi, reverse, n)` returns (lazily: a cursor) up to n rows with lo < / <= name < / <= hi, in
    order.  Forward: marker and end_marker are exclusive lower and upper bounds; reverse:
    marker is the exclusive upper bound and end_marker the exclusive lower one.  With a
    delimiter, names containing it after the prefix roll up into a Subdir (not repeated
    when it equals the marker), and the scan jumps past the subdir instead of reading it.
    """
    if limit <= 0:
        return []
    lo: tuple[str, bool] | None = None
    hi: tuple[str, bool] | None = None
    if prefix:
        lo = (prefix, True)
        succ = prefix_successor(prefix)
        if succ is not None:
            hi = (succ, False)
    if marker:
        lo, hi = (lo, _lower_hi(hi, marker, False)) if reverse else (_raise_lo(lo, marker, False), hi)
    if end_marker:
        lo, hi = (_raise_lo(lo, end_marker, False), hi) if reverse else (lo, _lower_hi(hi, end_marker, False))
    out: list[Any] = []
    while len(out) < limit:
        if lo is not None and hi is not None and (lo[0] > hi[0] or (lo[0] == hi[0] and not (lo[1] and hi[1]))):
            break
        want = limit - len(out)
        rows = fetch(lo, hi, reverse, want)  # a lazy cursor: rows after a jump are never read
        jumped = False
        seen = 0
        for row in rows:
            seen += 1
            name = row[0]
            if delimiter:
                i = name.find(delimiter, len(prefix))
                if i >= 0:
                    sub = name[: i + len(delimiter)]
                    if sub != marker:
                        out.append(Subdir(sub))
                    if reverse:
                        hi = (sub, False)
                    else:
                        succ = prefix_successor(sub)
                        if succ is None:
                            return out
                        lo = (succ, True)
                    jumped = True
                    break
            out.append(row_to_entry(row))
            if reverse:
                hi = (name, False)
            else:
                lo = (name, False)
            if len(out) >= limit:
                break
        if not jumped and seen < want:
            break
    return out


def _bounds_sql(lo: tuple[str, bool] | None, hi: tuple[str, bool] | None, col: str = "name") -> tuple[str, list[str]]:
    sql, args = "", []
    if lo is not None:
        sql += f" AND {col} {'>=' if lo[1] else '>'} ?"
        args.append(lo[0])
    if hi is not None:
        sql += f" AND {col} {'<=' if hi[1] else '<'} ?"
        args.append(hi[0])
    return sql, args


# --------------------------------------------------------------------------- the index


class _Job:
    __slots__ = ("fn", "future", "loop")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class ObjectIndex:
    """The listing index. Open with `await ObjectIndex.open(path)`; `await close()` at the end."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="objindex-read")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.commits = 0  # transactions committed (group commit makes this < updates)

    @classmethod
    async def open(cls, path: Path) -> "ObjectIndex":
        self = cls(path)
        await asyncio.to_thread(self._init_schema)
        self._writer = threading.Thread(target=self._writer_main, name="objindex-write", daemon=True)
        self._writer.start()
        return self

    def _init_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        try:
            conn.executescript(SCHEMA)
        finally:
            conn.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        self._readers.shutdown(wait=True)
        with self._lock:
            for c in self._reader_conns:
                c.close()
            self._reader_conns.clear()

    # ---------------------------------------------------------------- plumbing

    def _writer_main(self) -> None:
        conn = _connect(self.path)
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                batch = [job]
                stop = False
                while len(batch) < _BATCH_MAX:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                self._run_batch(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    results.append((True, job.fn(conn)))
                    conn.execute("RELEASE job")
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((False, exc))
            conn.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:  # noqa: BLE001
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            results = [(False, exc)] * len(batch)
        for job, (ok, value) in zip(batch, results):
            job.loop.call_soon_threadsafe(_settle, job.future, ok, value)

    async def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._writer is None:
            raise RuntimeError("index is closed")
        job = _Job(fn, asyncio.get_running_loop())
        self._queue.put(job)
        # Shield: a cancelled caller must not lose track of a commit that may still land.
        return await asyncio.shield(job.future)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))

    # ---------------------------------------------------------------- containers / accounts

    async def put_container(self, account: str, name: str, meta: dict[str, str], now: float) -> bool:
        """Create (True) or update the metadata of (False) a container."""

        def op(c: sqlite3.Connection) -> bool:
            _ensure_account(c, account, now)
            row = c.execute("SELECT meta FROM containers WHERE account=? AND name=?", (account, name)).fetchone()
            if row is None:
                c.execute(
                    "INSERT INTO containers (account, name, meta, created, last_modified) VALUES (?,?,?,?,?)",
                    (account, name, json.dumps(meta), now, now),
                )
                return True
            merged = {**json.loads(row[0]), **meta}
            c.execute("UPDATE containers SET meta=? WHERE account=? AND name=?", (json.dumps(merged), account, name))
            return False

        return await self._write(op)

    async def post_container(self, account: str, name: str, meta: dict[str, str], replace: bool = False) -> None:
        """Merge (or replace) container metadata; keys with value "" are removed (Swift)."""

        def op(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT meta FROM containers WHERE account=? AND name=?", (account, name)).fetchone()
            if row is None:
                raise ContainerNotFound(f"{account}/{name}")
            merged = dict(meta) if replace else {**json.loads(row[0]), **meta}
            merged = {k: v for k, v in merged.items() if v != ""}
            c.execute("UPDATE containers SET meta=? WHERE account=? AND name=?", (json.dumps(merged), account, name))

        await self._write(op)

    async def delete_container(self, account: str, name: str) -> None:
        def op(c: sqlite3.Connection) -> None:
            row = c.execute(
                "SELECT object_count FROM containers WHERE account=? AND name=?", (account, name)
            ).fetchone()
            if row is None:
                raise ContainerNotFound(f"{account}/{name}")
            live = c.execute(
                "SELECT 1 FROM objects WHERE account=? AND container=? AND deleted=0 LIMIT 1", (account, name)
            ).fetchone()
            if row[0] or live:
                raise ContainerNotEmpty(f"{account}/{name} holds {row[0]} objects")
            c.execute("DELETE FROM objects WHERE account=? AND container=?", (account, name))
            c.execute("DELETE FROM containers WHERE account=? AND name=?", (account, name))

        await self._write(op)

    async def get_container(self, account: str, name: str) -> ContainerInfo | None:
        def op(c: sqlite3.Connection) -> ContainerInfo | None:
            r = c.execute(
                "SELECT object_count, bytes_used, meta, created, last_modified FROM containers"
                " WHERE account=? AND name=?",
                (account, name),
            ).fetchone()
            if r is None:
                return None
            return ContainerInfo(account, name, r[0], r[1], json.loads(r[2]), r[3], r[4])

        return await self._read(op)

    async def post_account(self, account: str, meta: dict[str, str], now: float) -> None:
        def op(c: sqlite3.Connection) -> None:
            _ensure_account(c, account, now)
            (old,) = c.execute("SELECT meta FROM accounts WHERE account=?", (account,)).fetchone()
            merged = {k: v for k, v in {**json.loads(old), **meta}.items() if v != ""}
            c.execute("UPDATE accounts SET meta=? WHERE account=?", (json.dumps(merged), account))

        await self._write(op)

    async def totals(self) -> dict[str, int]:
        """Containers, objects and bytes over every account (for the appliance's metrics)."""
        def op(c: sqlite3.Connection) -> dict[str, int]:
            n, objs, used = c.execute(
                "SELECT count(*), coalesce(sum(object_count),0), coalesce(sum(bytes_used),0)"
                " FROM containers").fetchone()
            return {"containers": n, "objects": objs, "bytes": used}

        return await self._read(op)

    async def account_info(self, account: str) -> AccountInfo:
        def op(c: sqlite3.Connection) -> AccountInfo:
            n, objs, used = c.execute(
                "SELECT count(*), coalesce(sum(object_count),0), coalesce(sum(bytes_used),0)"
                " FROM containers WHERE account=?",
                (account,),
            ).fetchone()
            m = c.execute("SELECT meta FROM accounts WHERE account=?", (account,)).fetchone()
            return AccountInfo(account, n, objs, used, json.loads(m[0]) if m else {})

        return await self._read(op)

    async def list_containers(self, account: str, **kw: Any) -> list[ContainerEntry | Subdir]:
        def op(c: sqlite3.Connection) -> list:
            def fetch(lo, hi, reverse, n):
                where, args = _bounds_sql(lo, hi)
                return c.execute(
                    "SELECT name, object_count, bytes_used, last_modified FROM containers"
                    f" WHERE account=?{where} ORDER BY name {'DESC' if reverse else 'ASC'} LIMIT ?",
                    [account, *args, n],
                )

            return _in_read_txn(c, lambda: list_range(fetch, lambda r: ContainerEntry(*r), **kw))

        return await self._read(op)

    # ---------------------------------------------------------------- objects

    async def list_objects(self, account: str, container: str, **kw: Any) -> list[ObjectEntry | Subdir]:
        def op(c: sqlite3.Connection) -> list:
            def fetch(lo, hi, reverse, n):
                where, args = _bounds_sql(lo, hi)
                return c.execute(
                    "SELECT name, size, etag, content_type, last_modified FROM objects"
                    f" WHERE account=? AND container=? AND deleted=0{where}"
                    f" ORDER BY name {'DESC' if reverse else 'ASC'} LIMIT ?",
                    [account, container, *args, n],
                )

            return _in_read_txn(c, lambda: list_range(fetch, lambda r: ObjectEntry(*r), **kw))

        return await self._read(op)

    async def get_object_row(self, account: str, container: str, name: str) -> ObjectRow | None:
        def op(c: sqlite3.Connection) -> ObjectRow | None:
            r = c.execute(
                "SELECT size, etag, content_type, timestamp, last_modified, deleted, delete_at FROM objects"
                " WHERE account=? AND container=? AND name=?",
                (account, container, name),
            ).fetchone()
            if r is None:
                return None
            return ObjectRow(account, container, name, r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6])

        return await self._read(op)

    async def add_intent(self, ohash: str, account: str, container: str, name: str, timestamp: str) -> int:
        """Durably note that replicas of this object are about to change (see module doc)."""

        def op(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "INSERT INTO intents (hash, account, container, name, timestamp) VALUES (?,?,?,?,?)",
                (ohash, account, container, name, timestamp),
            )
            return int(cur.lastrowid)

        return await self._write(op)

    async def clear_intent(self, intent_id: int) -> None:
        await self._write(lambda c: c.execute("DELETE FROM intents WHERE id=?", (intent_id,)))

    async def intents(self) -> list[Intent]:
        return await self._read(
            lambda c: [Intent(*r) for r in c.execute("SELECT id, hash, account, container, name, timestamp FROM intents ORDER BY id")]
        )

    async def commit_object(self, row: ObjectRow, intent_id: int | None = None, *, force: bool = False) -> bool:
        """Record a PUT or DELETE; the intent goes in the same transaction.

        Applied only when newer than the row present (returns False otherwise).  The
        container must exist (ContainerNotFound) unless `force` (reconciliation from disk,
        which re-creates it and replaces the row whatever its timestamp).
        """

        def op(c: sqlite3.Connection) -> bool:
            applied = _upsert_object(c, row, force=force)
            if intent_id is not None:
                c.execute("DELETE FROM intents WHERE id=?", (intent_id,))
            return applied

        return await self._write(op)

    async def update_object_meta(
        self, account: str, container: str, name: str, timestamp: str,
        content_type: str, delete_at: float | None, last_modified: float,
    ) -> bool:
        """Reflect a POST in the row of the version it applied to."""

        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE objects SET content_type=?, delete_at=?, last_modified=?"
                " WHERE account=? AND container=? AND name=? AND timestamp=? AND deleted=0",
                (content_type, delete_at, last_modified, account, container, name, timestamp),
            )
            return cur.rowcount > 0

        return await self._write(op)

    async def due_for_expiry(self, now: float, limit: int = 1000) -> list[ObjectRow]:
        def op(c: sqlite3.Connection) -> list[ObjectRow]:
            rows = c.execute(
                "SELECT account, container, name, size, etag, content_type, timestamp, last_modified, deleted,"
                " delete_at FROM objects WHERE delete_at IS NOT NULL AND deleted=0 AND delete_at <= ?"
                " ORDER BY delete_at LIMIT ?",
                (now, limit),
            ).fetchall()
            return [ObjectRow(*r[:8], bool(r[8]), r[9]) for r in rows]

        return await self._read(op)

    async def reap_deleted(self, before_timestamp: str) -> int:
        """Forget DELETE rows older than `before_timestamp` (their ordering job is done)."""
        return await self._write(
            lambda c: c.execute("DELETE FROM objects WHERE deleted=1 AND timestamp < ?", (before_timestamp,)).rowcount
        )

    async def replace_all(self, rows: Iterable[ObjectRow], now: float) -> None:
        """Replace every object row with `rows` (live ones), recount containers, drop intents.

        Containers and their metadata are kept; a container that has objects on disk but
        no row is re-created.  One transaction: the index is never half rebuilt.
        """
        rows = list(rows)

        def op(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM objects")
            c.execute("DELETE FROM intents")
            for r in rows:
                _ensure_container(c, r.account, r.container, now)
            c.executemany(
                "INSERT OR REPLACE INTO objects (account, container, name, size, etag, content_type, timestamp,"
                " last_modified, deleted, delete_at) VALUES (?,?,?,?,?,?,?,?,0,?)",
                [(r.account, r.container, r.name, r.size, r.etag, r.content_type, r.timestamp, r.last_modified,
                  r.delete_at) for r in rows if not r.deleted],
            )
            c.execute(
                "UPDATE containers SET"
                " object_count = (SELECT count(*) FROM objects o WHERE o.account=containers.account"
                "   AND o.container=containers.name AND o.deleted=0),"
                " bytes_used = (SELECT coalesce(sum(size),0) FROM objects o WHERE o.account=containers.account"
                "   AND o.container=containers.name AND o.deleted=0)"
            )

        await self._write(op)

    async def dump_objects(self) -> list[ObjectRow]:
        """Every live row (for tests and for checking a rebuild)."""

        def op(c: sqlite3.Connection) -> list[ObjectRow]:
            rows = c.execute(
                "SELECT account, container, name, size, etag, content_type, timestamp, last_modified, deleted,"
                " delete_at FROM objects WHERE deleted=0 ORDER BY account, container, name"
            ).fetchall()
            return [ObjectRow(*r[:8], bool(r[8]), r[9]) for r in rows]

        return await self._read(op)


def _settle(fut: asyncio.Future, ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _in_read_txn(c: sqlite3.Connection, fn: Callable[[], Any]) -> Any:
    """Run several SELECTs against one snapshot (a delimiter listing issues many)."""
    c.execute("BEGIN")
    try:
        return fn()
    finally:
        c.execute("COMMIT")


def _ensure_account(c: sqlite3.Connection, account: str, now: float) -> None:
    c.execute("INSERT OR IGNORE INTO accounts (account, meta, created) VALUES (?, '{}', ?)", (account, now))


def _ensure_container(c: sqlite3.Connection, account: str, name: str, now: float) -> None:
    _ensure_account(c, account, now)
    c.execute(
        "INSERT OR IGNORE INTO containers (account, name, meta, created, last_modified) VALUES (?,?,'{}',?,?)",
        (account, name, now, now),
    )


def _upsert_object(c: sqlite3.Connection, row: ObjectRow, *, force: bool) -> bool:
    if force:
        _ensure_container(c, row.account, row.container, row.last_modified)
    elif c.execute(
        "SELECT 1 FROM containers WHERE account=? AND name=?", (row.account, row.container)
    ).fetchone() is None:
        raise ContainerNotFound(f"{row.account}/{row.container}")
    old = c.execute(
        "SELECT size, timestamp, deleted FROM objects WHERE account=? AND container=? AND name=?",
        (row.account, row.container, row.name),
    ).fetchone()
    if old is not None and not force and old[1] >= row.timestamp:
        return False
    d_count = d_bytes = 0
    if old is not None and not old[2]:
        d_count -= 1
        d_bytes -= old[0]
    if not row.deleted:
        d_count += 1
        d_bytes += row.size
    c.execute(
        "INSERT OR REPLACE INTO objects (account, container, name, size, etag, content_type, timestamp,"
        " last_modified, deleted, delete_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (row.account, row.container, row.name, row.size, row.etag, row.content_type, row.timestamp,
         row.last_modified, int(row.deleted), row.delete_at),
    )
    c.execute(
        "UPDATE containers SET object_count=object_count+?, bytes_used=bytes_used+?,"
        " last_modified=max(last_modified, ?) WHERE account=? AND name=?",
        (d_count, d_bytes, row.last_modified, row.account, row.container),
    )
    return True
