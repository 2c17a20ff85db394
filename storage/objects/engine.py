"""The object storage engine: what the Swift API calls (and nothing of HTTP).

Write path of a PUT (and, with small files instead of streams, of DELETE and POST):

1. validate names, check the container exists (and the quota hook);
2. start committing an *intent* row in the index — concurrently with step 3;
3. stream the body to a temp file on every primary device at once, computing md5, block
   sums and size (a body over one batch: a thread per replica and per checksum, fed
   batches through a bounded window, see fanout.py); a device that fails is dropped, the
   PUT continues while a quorum lives;
4. compare the ETag (EtagMismatch: temps removed, nothing visible);
5. on each device: append the metadata trailer, fsync, rename into place, fsync the dir;
6. fewer than a quorum installed → remove what was installed, DiskFull (any ENOSPC) or
   InsufficientReplicas; otherwise
7. commit the object row (removing the intent in the same transaction), then return —
   the acknowledgement.  Devices that failed are remembered for the auditor.

A crash between 5 and 7 leaves an intent: `start()` reconciles just those objects from
what is on disk, so restart is cheap; `rebuild()` re-derives the whole index from disk.
Any exception or cancellation before 7 removes temp files (in a shielded cleanup).

Reads look at every primary (one listdir + trailer read each, in threads), take the
newest version, skip and quarantine replicas whose metadata does not verify, and serve
from a replica holding that version.  Objects up to `verify_inline_bytes` are checksummed
*before* the first byte is served, falling back to the next replica; larger ones are
verified while streaming (a read error mid-stream continues from another replica at the
same offset; an md5 mismatch at the end quarantines the replica and raises, so the API
aborts the response and the next read is served from a good copy).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import inspect
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Protocol, Sequence, TypeVar

from . import diskfile as df
from .diskfile import CorruptReplica, ObjectInfo, Replica, ReplicaWriter
from .fanout import Consumer, FanOut
from .errors import (
    ContainerNotFound,
    DiskFull,
    EtagMismatch,
    InsufficientReplicas,
    ObjectNotFound,
    ObjectStorageError,
    RangeNotSatisfiable,
    TooLarge,
)
from .index import (
    AccountInfo,
    ContainerEntry,
    ContainerInfo,
    ObjectEntry,
    ObjectIndex,
    ObjectRow,
    Subdir,
)
from .names import check_account, check_container, check_object, object_hash
from .ring import Device, Ring

log = logging.getLogger(__name__)

#: a streamed PUT hands its body to the replica writers' and checksums' threads in batches
#: of this many bytes (the event loop wakes once per batch) …
BATCH = 4 << 20
#: … with at most this many bytes of it queued or being written and checksummed
WINDOW = 3 * BATCH
#: incoming chunks smaller than this are gathered into one piece (one copy, on the loop);
#: larger ones are passed on as they came
PIECE = 256 << 10
#: streamed PUTs holding fan-out threads at once, per engine; more wait for a slot without
#: reading further (their socket pushes back). Without it a client's connections (256 per
#: address are allowed) would each hold five threads and up to a WINDOW of body in memory.
STREAMS = 16


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()  # post_metadata(delete_at=KEEP): leave delete_at as it is


@dataclass(frozen=True, slots=True)
class QuotaRequest:
    """What the quota hook is asked about: may `incoming_bytes` more go into this container?"""

    account: str
    container: str
    incoming_bytes: int
    replaces_bytes: int
    account_info: AccountInfo
    container_info: ContainerInfo


T = TypeVar("T")


class QuotaHold(Protocol):
    """What a quota hook may hand back: the bytes/objects it holds for this PUT until the
    object is in the index (commit) or the PUT fails (release), so parallel PUTs cannot
    all pass one quota."""

    async def store(self, write: Awaitable[T]) -> T:
        """Await the index write that makes the object count, then end the hold (as one
        step for whoever else checks the quota)."""
        ...

    def release(self) -> None: ...


#: raises QuotaExceeded; may return a hold the engine ends when the PUT does
QuotaHook = Callable[[QuotaRequest], "Awaitable[QuotaHold | None] | QuotaHold | None"]


def resolve_ranges(specs: Sequence[tuple[int | None, int | None]], size: int) -> list[tuple[int, int]]:
    """HTTP byte-range specs → half-open [start, end) ranges within `size`.

    A spec is (first, last) inclusive as in `bytes=first-last`; (None, n) is the suffix
    `bytes=-n`; (first, None) is `bytes=first-`.  Unsatisfiable specs are dropped; if none
    is left, RangeNotSatisfiable (416).
    """
    out: list[tuple[int, int]] = []
    for first, last in specs:
        if first is None:
            if last is None or last <= 0:
                continue
            out.append((max(0, size - last), size))
        else:
            if first >= size or (last is not None and last < first):
                continue
            end = size if last is None else min(last + 1, size)
            out.append((first, end))
    if not out:
        raise RangeNotSatisfiable(size)
    return out


class ObjectBody:
    """The bytes of a GET: iterate it for the whole object (or all ranges back to back),
    or use `parts()` to get each range separately (for multipart/byteranges)."""

    def __init__(self, engine: "ObjectEngine", ohash: str, info: ObjectInfo,
                 candidates: list[Replica], ranges: list[tuple[int, int]] | None,
                 inline: bytes | None) -> None:
        self._engine = engine
        self._ohash = ohash
        self.info = info
        self._candidates = candidates
        self.ranges = ranges  # None: the whole object
        self._inline = inline

    @property
    def content_length(self) -> int:
        if self.ranges is None:
            return self.info.size
        return sum(e - s for s, e in self.ranges)

    def parts(self) -> Iterator[tuple[int, int, AsyncIterator[bytes]]]:
        for s, e in self.ranges or [(0, self.info.size)]:
            yield s, e, self._stream(s, e, verify=self.ranges is None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._all()

    async def _all(self) -> AsyncIterator[bytes]:
        for _, _, it in self.parts():
            async for b in it:
                yield b

    async def read(self) -> bytes:
        return b"".join([b async for b in self])

    async def _stream(self, start: int, end: int, *, verify: bool) -> AsyncIterator[bytes]:
        if self._inline is not None:
            step = df.READ_CHUNK
            for off in range(start, end, step):
                yield self._inline[off:min(off + step, end)]
            return
        sums = self.info.block_crc32
        # block checksums verify every byte (ranges too) before it goes out; an object
        # written before them is verified by its md5 after its last byte
        md5 = hashlib.md5() if verify and sums is None else None
        pos = start
        used: list[Replica] = []
        cands = list(self._candidates)
        while pos < end:
            if not cands:
                raise InsufficientReplicas(f"no readable replica of {self.info.name!r} at offset {pos}")
            rep = cands.pop(0)
            used.append(rep)
            assert rep.data_path is not None
            try:
                if sums is not None:
                    stream = df.stream_blocks(rep.data_path, pos, end, self.info.size, sums)
                else:
                    stream = df.stream_range(rep.data_path, pos, end, md5=md5)
                async for b in stream:
                    pos += len(b)
                    yield b
            except df.BlockMismatch as exc:
                await self._engine._quarantine(self._ohash, rep, f"read at {pos}: {exc}")
                continue
            except (OSError, CorruptReplica) as exc:
                self._engine._note_bad(self._ohash, rep, f"read failed at {pos}: {exc}", quarantine=False)
                continue
        if md5 is not None and md5.hexdigest() != self.info.md5:
            if len(used) == 1:  # we know which replica lied: take it out of service
                await self._engine._quarantine(self._ohash, used[0], "md5 mismatch while streaming")
            else:
                self._engine.repair_hints.add(self._ohash)
            raise CorruptReplica(f"{self.info.name!r}: md5 mismatch after streaming; retry reads another replica")


class ObjectEngine:
    """Objects on local devices with replicas, plus the sqlite listing index.

    Use `await engine.start()` (or `async with`) before anything else, `await close()`
    at the end.  All name arguments are validated (InvalidName).
    """

    def __init__(
        self,
        devices: list[Path] | list[Device],
        replicas: int | None = None,
        index_path: Path | None = None,
        *,
        quota: QuotaHook | None = None,
        verify_inline_bytes: int = 4 << 20,
        clock: Callable[[], float] = time.time,
        streams: int = STREAMS,
    ) -> None:
        self.ring = Ring(devices, replicas)
        self.streams = streams
        self._stream_slots: asyncio.Semaphore | None = None  # made in the engine's loop
        self.index_path = Path(index_path) if index_path else self.ring.devices[0].path / "index.sqlite"
        self.quota = quota
        self.verify_inline_bytes = verify_inline_bytes
        self.clock = clock
        self.index: ObjectIndex = None  # type: ignore[assignment]  # set by start()
        self.repair_hints: set[str] = set()  # object hashes with a replica known bad/missing
        self._last_ts = 0.0
        # containers seen to exist: a PUT without a quota hook skips re-reading the row (a
        # container deleted meanwhile still fails the PUT: commit_object checks it)
        self._containers: set[tuple[str, str]] = set()

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Prepare devices, drop crash leftovers in tmp/, open the index, reconcile intents."""
        for d in self.ring.devices:
            await asyncio.to_thread(df.prepare_device, d)
            await asyncio.to_thread(df.clean_tmp, d)
        self.index = await ObjectIndex.open(self.index_path)
        await self.reconcile()

    async def close(self) -> None:
        if self.index is not None:
            await self.index.close()

    async def __aenter__(self) -> "ObjectEngine":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _timestamp(self) -> str:
        t = max(self.clock(), self._last_ts + 0.00001)
        t = round(t, 5)
        if t <= self._last_ts:
            t = self._last_ts + 0.00001
        self._last_ts = t
        return df.format_timestamp(t)

    # ---------------------------------------------------------------- containers and accounts

    async def create_container(self, account: str, container: str, metadata: dict[str, str] | None = None) -> bool:
        """Create a container (True) or merge metadata into the existing one (False)."""
        account, container = check_account(account), check_container(container)
        created = await self.index.put_container(account, container, dict(metadata or {}), self.clock())
        self._containers.add((account, container))
        return created

    async def delete_container(self, account: str, container: str) -> None:
        """ContainerNotFound, or ContainerNotEmpty (409) unless it holds no objects."""
        account, container = check_account(account), check_container(container)
        self._containers.discard((account, container))
        await self.index.delete_container(account, container)

    async def post_container_metadata(self, account: str, container: str, metadata: dict[str, str]) -> None:
        """Merge metadata; a key with value "" is removed."""
        account, container = check_account(account), check_container(container)
        await self.index.post_container(account, container, dict(metadata))

    async def get_container(self, account: str, container: str) -> ContainerInfo:
        account, container = check_account(account), check_container(container)
        info = await self.index.get_container(account, container)
        if info is None:
            self._containers.discard((account, container))
            raise ContainerNotFound(f"{account}/{container}")
        self._containers.add((account, container))
        return info

    async def account_info(self, account: str) -> AccountInfo:
        return await self.index.account_info(check_account(account))

    async def post_account_metadata(self, account: str, metadata: dict[str, str]) -> None:
        await self.index.post_account(check_account(account), dict(metadata), self.clock())

    async def list_containers(
        self, account: str, *, prefix: str = "", delimiter: str = "", marker: str = "",
        end_marker: str = "", limit: int = 10_000, reverse: bool = False,
    ) -> list[ContainerEntry | Subdir]:
        return await self.index.list_containers(
            check_account(account), prefix=prefix, delimiter=delimiter, marker=marker,
            end_marker=end_marker, limit=limit, reverse=reverse,
        )

    async def list_objects(
        self, account: str, container: str, *, prefix: str = "", delimiter: str = "", marker: str = "",
        end_marker: str = "", limit: int = 10_000, reverse: bool = False,
    ) -> list[ObjectEntry | Subdir]:
        """A page of a container listing (index range scan; ContainerNotFound)."""
        info = await self.get_container(account, container)
        return await self.index.list_objects(
            info.account, info.name, prefix=prefix, delimiter=delimiter, marker=marker,
            end_marker=end_marker, limit=limit, reverse=reverse,
        )

    # ---------------------------------------------------------------- PUT

    async def put_object(
        self,
        account: str,
        container: str,
        name: str,
        chunks: AsyncIterable[bytes],
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        *,
        expected_etag: str | None = None,
        max_bytes: int | None = None,
        content_length: int | None = None,
        delete_at: float | None = None,
        sysmeta: dict[str, str] | None = None,
        etag: str | None = None,
    ) -> ObjectInfo:
        """Store an object from a stream of chunks; returns once a quorum is durable.

        expected_etag: md5 hex the client sent (EtagMismatch otherwise, nothing visible).
        max_bytes: TooLarge once the stream exceeds it.  content_length: lets the quota
        hook refuse before any byte is read.  etag: the ETag to present instead of the
        body's md5 (static large object manifests).  Raises ContainerNotFound, DiskFull,
        InsufficientReplicas, QuotaExceeded (from the hook).
        """
        account, container, name = check_account(account), check_container(container), check_object(name)
        if self.quota is None and (account, container) in self._containers:
            cinfo = None  # the object row's commit checks it again, in its transaction
        else:
            cinfo = await self.get_container(account, container)
        hold: QuotaHold | None = None
        if content_length is not None:
            if max_bytes is not None and content_length > max_bytes:
                raise TooLarge(f"{content_length} bytes > limit {max_bytes}")
            hold = await self._check_quota(account, container, name, content_length, cinfo)
        ohash = object_hash(account, container, name)
        ts = self._timestamp()
        intent_task = asyncio.ensure_future(self.index.add_intent(ohash, account, container, name, ts))
        writers = [ReplicaWriter(d, ohash) for d in self.ring.primaries(ohash)]
        alive: list[ReplicaWriter] = []
        inflight: list[asyncio.Future] = []  # steps still running in threads if we are cancelled

        async def step(coros: list) -> list:
            fut = asyncio.gather(*coros, return_exceptions=True)
            inflight.append(fut)
            return await asyncio.shield(fut)

        # the rename of each replica waits for the intent in its thread (not here), so the
        # intent's commit overlaps the replicas' fsyncs even for a body that is all held
        intent_ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        intent_task.add_done_callback(lambda t: _chain(t, intent_ready))
        fan: FanOut | None = None
        try:
            alive = list(writers)  # temp files are created by the first write or the commit
            md5, sums = hashlib.md5(), df.BlockSums()
            size = 0  # bytes received
            sent = 0  # bytes handed to the fan-out
            pieces: list[bytes | bytearray] = []  # received, not yet handed over (< BATCH)
            acc = bytearray()  # small chunks gathered into one piece

            def quorum_check() -> None:
                """Raise now if the replicas left cannot make a quorum (or a checksum failed)."""
                assert fan is not None
                errs = [c.error for c in fan.consumers[:len(writers)]]
                if sum(e is None for e in errs) < self.ring.quorum:
                    raise self._quorum_error(ohash, [e for e in errs if e is not None], len(writers))
                for c in fan.consumers[len(writers):]:
                    if c.error is not None:
                        raise c.error

            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise TooLarge(f"body exceeds {max_bytes} bytes")
                if len(chunk) >= PIECE:  # kept as it is (bytes do not change): no copy
                    if acc:
                        pieces.append(acc)
                        acc = bytearray()
                    pieces.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
                else:
                    acc += chunk
                    if len(acc) >= PIECE:
                        pieces.append(acc)  # handed over whole: a fresh one gathers the next
                        acc = bytearray()
                if size - sent - len(acc) >= BATCH:
                    if fan is None:
                        if self._stream_slots is None:
                            self._stream_slots = asyncio.Semaphore(self.streams)
                        await self._stream_slots.acquire()
                        slots = self._stream_slots
                        try:
                            fan = self._fan_out(writers, md5, sums)
                        except BaseException:
                            slots.release()
                            raise
                        fan.exited.add_done_callback(lambda _: slots.release())
                        inflight.append(fan.exited)
                    n = size - sent - len(acc)
                    await fan.put(pieces, n, sent)
                    sent += n
                    pieces = []
                    quorum_check()
            if acc:
                pieces.append(acc)
            if fan is not None:
                if pieces:
                    await fan.put(pieces, size - sent, sent)
                await fan.close()
                quorum_check()
                alive = await self._survivors(ohash, alive,
                                              [c.error for c in fan.consumers[:len(writers)]])
            elif pieces:  # the whole body is under one batch: one hop each, no threads
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                data = bytes(data) if not isinstance(data, bytes) else data
                if len(data) <= df.BLOCK // 16:  # small: checksummed here, held until the commit
                    md5.update(data)
                    sums.update(data)
                    coros = [w.write(data) for w in alive]
                else:
                    coros = [asyncio.to_thread(_checksum, md5, sums, data),
                             *(w.write(data) for w in alive)]
                res = await step(coros)
                if len(res) > len(alive):
                    if isinstance(res[0], BaseException):
                        raise res[0]
                    res = res[1:]
                alive = await self._survivors(ohash, alive, res)
            body_md5 = md5.hexdigest()
            if expected_etag is not None and expected_etag.strip('"').lower() != body_md5:
                raise EtagMismatch(expected_etag, body_md5)
            if content_length is None or content_length != size:
                if hold is not None:
                    hold.release()
                    hold = None
                hold = await self._check_quota(account, container, name, size, cinfo)
            info = ObjectInfo(
                account=account, container=container, name=name, size=size,
                etag=etag or body_md5, md5=body_md5,
                content_type=content_type or "application/octet-stream", timestamp=ts,
                metadata=dict(metadata or {}), sysmeta=dict(sysmeta or {}), delete_at=delete_at,
                block_crc32=sums.hexdigest(),
            )
            trailer = df.encode_trailer(info.to_json())
            committed = await step([w.commit(trailer, ts + df.DATA, intent_ready) for w in alive])
            intent_id = await intent_task  # its error, not the replicas' (they waited on it)
            alive = await self._survivors(ohash, alive, committed)
            row = _row(info)
            if hold is not None:
                await hold.store(self.index.commit_object(row, intent_id))
            else:
                await self.index.commit_object(row, intent_id)
        except BaseException:
            if hold is not None:
                hold.release()
            if fan is not None:
                fan.stop()  # its threads skip the rest; the undo waits for them (fan.exited)
            await asyncio.shield(self._undo_put(writers, intent_task, inflight))
            raise
        # older versions go only now that the new one is acknowledged (one hop for all); a
        # hash dir this PUT created held none
        stale = [w for w in alive if not w.created_dir]
        if stale:
            await asyncio.to_thread(lambda: [df.cleanup_hashdir(df.hashdir(w.device, ohash))
                                             for w in stale])
        return info

    async def _check_quota(self, account: str, container: str, name: str, incoming: int,
                           cinfo: ContainerInfo | None) -> QuotaHold | None:
        if self.quota is None:
            return None
        assert cinfo is not None  # read whenever there is a quota hook
        old, ainfo = await asyncio.gather(self.index.get_object_row(account, container, name),
                                          self.index.account_info(account))
        req = QuotaRequest(account, container, incoming,
                           0 if old is None or old.deleted else old.size, ainfo, cinfo)
        res = self.quota(req)
        if inspect.isawaitable(res):
            res = await res
        return res

    async def _survivors(self, ohash: str, writers: list[ReplicaWriter], results: list) -> list[ReplicaWriter]:
        """Writers whose last step succeeded; abort the others; enforce the quorum."""
        alive, errors = [], []
        for w, r in zip(writers, results):
            if isinstance(r, BaseException):
                if isinstance(r, asyncio.CancelledError):
                    raise r
                errors.append(r)
                log.warning("object %s: replica on %s failed: %s", ohash, w.device.id, r)
                self.repair_hints.add(ohash)
                await w.abort()
            else:
                alive.append(w)
        if len(alive) < self.ring.quorum:
            raise self._quorum_error(ohash, errors, len(writers))
        return alive

    def _quorum_error(self, ohash: str, errors: list[BaseException], total: int) -> ObjectStorageError:
        """What a PUT raises when `errors` leave fewer than a quorum of `total` replicas."""
        if any(isinstance(e, DiskFull) for e in errors):
            return DiskFull(f"object {ohash}: no space on {len(errors)} of {total} devices")
        return InsufficientReplicas(
            f"object {ohash}: {total - len(errors)} replicas left, quorum is {self.ring.quorum}: {errors[:1]}"
        )

    def _fan_out(self, writers: list[ReplicaWriter], md5: "hashlib._Hash", sums: df.BlockSums) -> FanOut:
        """Threads for a body larger than one batch: each replica written at its own pace
        (pwritev, then fdatasync), the md5 and the block sums each in one more thread (both
        release the GIL); a writer that fails is logged and noted as soon as it does."""

        def hash_with(h: "hashlib._Hash | df.BlockSums"):
            def consume(pieces: Sequence[bytes | bytearray], _offset: int) -> None:
                for p in pieces:
                    h.update(p)
            return consume

        ohash = writers[0].ohash

        def failed(c: Consumer) -> None:
            if c.name.startswith("replica"):  # the auditor's hint now, whatever the PUT does
                self.repair_hints.add(ohash)

        consumers = [Consumer(f"replica-{w.device.id}", w.write_batch_sync, w.sync_data_sync, w.close_sync)
                     for w in writers]
        consumers += [Consumer("md5", hash_with(md5)), Consumer("blocksums", hash_with(sums))]
        return FanOut(consumers, WINDOW, on_failure=failed)

    async def _undo_put(self, writers: list[ReplicaWriter], intent_task: asyncio.Future,
                        inflight: list[asyncio.Future]) -> None:
        """Remove temps and any replica installed by a PUT that is not acknowledged.

        Waits first for steps still running in threads (a cancelled await does not stop a
        thread), so a rename cannot land after the cleanup.
        """
        pending = [f for f in inflight if not f.done()]
        if pending:
            await asyncio.wait(pending)
        for w in writers:
            await w.abort()
            if w.installed is not None:
                await asyncio.to_thread(w.installed.unlink, True)
        try:
            intent_id = await intent_task
        except BaseException:  # noqa: BLE001 - no intent, nothing to clear
            return
        try:
            await self.index.clear_intent(intent_id)
        except Exception:  # noqa: BLE001 - reconciliation will settle it
            log.exception("could not clear intent %s", intent_id)

    # ---------------------------------------------------------------- reads

    async def _open_all(self, ohash: str, expect: tuple[str, str, str], devices: list[Device]) -> list[Replica]:
        async def one(dev: Device) -> Replica:
            try:
                return await asyncio.to_thread(df.open_replica, dev, ohash, expect)
            except CorruptReplica as exc:
                rep = Replica(device=dev, state=df.HashDirState())
                st, _ = await asyncio.to_thread(df.scan_hashdir, df.hashdir(dev, ohash))
                if st.data is not None:
                    rep.data_path = df.hashdir(dev, ohash) / (st.data + df.DATA)
                    await self._quarantine(ohash, rep, str(exc))
                return Replica(device=dev, state=df.HashDirState())
            except OSError as exc:
                self._note_bad(ohash, Replica(device=dev, state=df.HashDirState()), str(exc), quarantine=False)
                return Replica(device=dev, state=df.HashDirState())

        return list(await asyncio.gather(*(one(d) for d in devices)))

    async def _locate(self, account: str, container: str, name: str, *,
                      allow_expired: bool = False) -> tuple[str, ObjectInfo, list[Replica]]:
        """(hash, info, replicas holding the newest live version) or ObjectNotFound.

        allow_expired: the expirer must find objects whose delete_at has passed (to reads
        they are already gone, but their files and row are still there to delete)."""
        account, container, name = check_account(account), check_container(container), check_object(name)
        ohash = object_hash(account, container, name)
        ranking = self.ring.ranking(ohash)
        reps = await self._open_all(ohash, (account, container, name), ranking[: self.ring.replicas])
        if all(r.timestamp is None for r in reps) and len(ranking) > self.ring.replicas:
            reps += await self._open_all(ohash, (account, container, name), ranking[self.ring.replicas:])
        newest = max((r.timestamp for r in reps if r.timestamp), default=None)
        if newest is None:
            raise ObjectNotFound(f"{account}/{container}/{name}")
        live = [r for r in reps if r.info is not None and r.state.data == newest]
        if len(live) < len(reps[: self.ring.replicas]):
            self.repair_hints.add(ohash)
        if not live:
            raise ObjectNotFound(f"{account}/{container}/{name}")
        info = live[0].info
        assert info is not None
        if not allow_expired and info.delete_at is not None and info.delete_at <= self.clock():
            raise ObjectNotFound(f"{account}/{container}/{name} (expired)")
        return ohash, info, live

    async def head_object(self, account: str, container: str, name: str) -> ObjectInfo:
        return (await self._locate(account, container, name))[1]

    async def get_object(
        self, account: str, container: str, name: str,
        ranges: Sequence[tuple[int | None, int | None]] | None = None,
    ) -> tuple[ObjectInfo, ObjectBody]:
        """Info and body; `ranges` are HTTP specs (see resolve_ranges), RangeNotSatisfiable."""
        ohash, info, live = await self._locate(account, container, name)
        resolved = resolve_ranges(ranges, info.size) if ranges else None
        inline = None
        if info.size <= self.verify_inline_bytes:
            for rep in list(live):
                try:
                    inline = await asyncio.to_thread(df.read_small_verified, rep)
                    break
                except (CorruptReplica, OSError) as exc:
                    live.remove(rep)
                    await self._quarantine(ohash, rep, str(exc))
            if inline is None:
                raise InsufficientReplicas(f"no good replica of {account}/{container}/{name}")
        return info, ObjectBody(self, ohash, info, live, resolved, inline)

    def _note_bad(self, ohash: str, rep: Replica, why: str, *, quarantine: bool) -> None:
        log.warning("object %s on %s: %s", ohash, rep.device.id, why)
        self.repair_hints.add(ohash)

    async def _quarantine(self, ohash: str, rep: Replica, why: str) -> None:
        self._note_bad(ohash, rep, why, quarantine=True)
        if rep.data_path is not None:
            await asyncio.to_thread(df.quarantine, rep.device, ohash, rep.data_path)

    # ---------------------------------------------------------------- DELETE, POST, COPY

    async def delete_object(self, account: str, container: str, name: str, *,
                            if_delete_at: float | None = None) -> None:
        """Write tombstones on every primary (quorum), then drop the row. ObjectNotFound.

        if_delete_at: only delete if the object still expires at that time (the expirer).
        """
        ohash, info, _ = await self._locate(account, container, name, allow_expired=if_delete_at is not None)
        if if_delete_at is not None and info.delete_at != if_delete_at:
            return
        ts = self._timestamp()
        content = df.encode_trailer({
            "v": 1, "kind": "tombstone", "account": info.account, "container": info.container,
            "name": info.name, "timestamp": ts,
        })
        intent_id = await self.index.add_intent(ohash, info.account, info.container, info.name, ts)
        await self._write_small_everywhere(ohash, ts + df.TOMBSTONE, content, self.ring.primaries(ohash))
        await self.index.commit_object(
            ObjectRow(info.account, info.container, info.name, 0, "", "", ts, float(ts), deleted=True),
            intent_id,
        )

    async def post_metadata(
        self, account: str, container: str, name: str, metadata: dict[str, str], *,
        content_type: str | None = None, delete_at: float | None | _Keep = KEEP,
        sysmeta: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Replace the user metadata (Swift POST); optionally content-type, delete_at, sysmeta."""
        ohash, info, live = await self._locate(account, container, name)
        ts = self._timestamp()
        record: dict = {"v": 1, "kind": "meta", "timestamp": ts, "metadata": dict(metadata),
                        "content_type": content_type, "sysmeta": dict(sysmeta or {})}
        if not isinstance(delete_at, _Keep):
            record["delete_at"] = delete_at
        intent_id = await self.index.add_intent(ohash, info.account, info.container, info.name, ts)
        await self._write_small_everywhere(ohash, ts + df.META, df.encode_trailer(record),
                                           [r.device for r in live], need=min(self.ring.quorum, len(live)))
        df.apply_meta_update(info, record)
        await self.index.update_object_meta(info.account, info.container, info.name, info.timestamp,
                                            info.content_type, info.delete_at, info.last_modified)
        await self.index.clear_intent(intent_id)
        return info

    async def _write_small_everywhere(self, ohash: str, filename: str, content: bytes,
                                      devices: list[Device], need: int | None = None) -> None:
        res = await asyncio.gather(
            *(asyncio.to_thread(df.write_small_file_sync, d, ohash, filename, content) for d in devices),
            return_exceptions=True,
        )
        errors = [r for r in res if isinstance(r, BaseException)]
        if errors:
            self.repair_hints.add(ohash)
        need = self.ring.quorum if need is None else need
        if len(res) - len(errors) < need:
            if any(isinstance(e, DiskFull) for e in errors):
                raise DiskFull(f"object {ohash}: no space for {filename}")
            raise InsufficientReplicas(f"object {ohash}: {filename} written on too few devices: {errors[:1]}")

    async def copy_object(
        self, src_account: str, src_container: str, src_name: str,
        dst_account: str, dst_container: str, dst_name: str, *,
        metadata: dict[str, str] | None = None, fresh_metadata: bool = False,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Server-side copy (Swift COPY / X-Copy-From): metadata merged unless fresh_metadata."""
        info, body = await self.get_object(src_account, src_container, src_name)
        meta = dict(metadata or {}) if fresh_metadata else {**info.metadata, **(metadata or {})}
        return await self.put_object(
            dst_account, dst_container, dst_name, body, content_type or info.content_type, meta,
            sysmeta=info.sysmeta, content_length=info.size,
            etag=info.etag if info.etag != info.md5 else None,
        )

    # ---------------------------------------------------------------- expiry

    async def expire_due(self, now: float | None = None, batch: int = 1000) -> int:
        """Delete every object whose delete_at has passed; returns how many were deleted."""
        now = self.clock() if now is None else now
        done = 0
        while True:
            rows = await self.index.due_for_expiry(now, batch)
            for r in rows:
                try:
                    await self.delete_object(r.account, r.container, r.name, if_delete_at=r.delete_at)
                    done += 1
                except ObjectNotFound:
                    # Already gone (or expired in place): settle the row from the disk.
                    await self._reconcile_one(object_hash(r.account, r.container, r.name),
                                              r.account, r.container, r.name, None)
                    done += 1
            if len(rows) < batch:
                return done

    # ---------------------------------------------------------------- crash recovery

    async def _disk_state(self, ohash: str, expect: tuple[str, str, str]) -> tuple[str | None, ObjectInfo | None]:
        """Newest timestamp on any device and, if that version is live, its info."""
        reps = await self._open_all(ohash, expect, list(self.ring.devices))
        newest = max((r.timestamp for r in reps if r.timestamp), default=None)
        live = [r for r in reps if r.info is not None and r.state.data == newest]
        return newest, (live[0].info if live else None)

    async def _reconcile_one(self, ohash: str, account: str, container: str, name: str,
                             intent_id: int | None) -> None:
        newest, info = await self._disk_state(ohash, (account, container, name))
        if info is not None:
            row = _row(info)
        else:
            ts = newest or df.format_timestamp(0)
            row = ObjectRow(account, container, name, 0, "", "", ts, float(ts), deleted=True)
        await self.index.commit_object(row, intent_id, force=True)

    async def reconcile(self) -> int:
        """Settle objects whose change was in flight at a crash (their intents); cheap."""
        intents = await self.index.intents()
        for it in intents:
            await self._reconcile_one(it.hash, it.account, it.container, it.name, it.id)
        return len(intents)

    async def rebuild(self) -> int:
        """Re-derive every object row from the files on the devices; returns live objects."""
        rows = await asyncio.to_thread(self._scan_disk_rows)
        await self.index.replace_all(rows, self.clock())
        return len(rows)

    def _scan_disk_rows(self) -> list[ObjectRow]:
        newest: dict[str, tuple[str, Device]] = {}
        for dev in self.ring.devices:
            for ohash, path in df.iter_hashdirs(dev):
                st, _ = df.scan_hashdir(path)
                ts = st.timestamp
                if ts is not None and (ohash not in newest or ts > newest[ohash][0]):
                    newest[ohash] = (ts, dev)
        rows = []
        for ohash, (ts, dev) in newest.items():
            candidates = [dev] + [d for d in self.ring.devices if d is not dev]
            for d in candidates:
                try:
                    rep = df.open_replica(d, ohash, None)
                except (CorruptReplica, OSError):
                    continue
                if rep.state.deleted and rep.state.timestamp == ts:
                    break
                if rep.info is not None and rep.state.data == ts:
                    if object_hash(rep.info.account, rep.info.container, rep.info.name) == ohash:
                        rows.append(_row(rep.info))
                    break
        return rows


def _chain(task: asyncio.Future, target: concurrent.futures.Future) -> None:
    """Hand an asyncio result to threads (a cancelled task reads as an error there)."""
    if task.cancelled():
        target.set_exception(RuntimeError("the intent's write was cancelled"))
    elif task.exception() is not None:
        target.set_exception(task.exception())
    else:
        target.set_result(task.result())


def _checksum(md5: "hashlib._Hash", sums: df.BlockSums, data: bytes) -> None:
    md5.update(data)
    sums.update(data)


def _row(info: ObjectInfo) -> ObjectRow:
    return ObjectRow(
        info.account, info.container, info.name, info.size, info.etag, info.content_type,
        info.timestamp, info.last_modified, deleted=False, delete_at=info.delete_at,
    )


async def aiter_bytes(data: bytes, chunk: int = 65536) -> AsyncIterator[bytes]:
    """An async iterator over `data` in chunks (for callers and tests with bytes in hand)."""
    for i in range(0, len(data), chunk):
        yield data[i:i + chunk]
