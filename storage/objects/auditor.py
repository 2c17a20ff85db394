"""The auditor: re-reads every replica, finds silent corruption and missing replicas,
repairs them from a good copy, and keeps the index in step with the disk.

Swift splits this into an auditor (checksums, quarantine) and a replicator (missing
replicas, handoffs); on one host one pass does both, because the expensive part — reading
the bytes — is shared.  Per object (identified by its hash):

- open every device's replica (primaries and handoffs); a replica whose metadata does not
  verify is quarantined;
- the newest timestamp wins; if it is a tombstone, every primary gets the tombstone
  (so a replica that missed a DELETE cannot come back) and it is reclaimed after
  `reclaim_age`;
- otherwise every replica of the newest version is read in full (rate-limited) and its md5
  compared; bad ones are quarantined; each primary that lacks a good copy (missing,
  stale or just quarantined) gets the .data — and the newest .meta — copied from a good one;
- copies on handoff devices (left by a ring change) are removed once the primaries are good;
- the index row is corrected when it disagrees with the disk (unless a change is in flight).

Progress and findings are a dataclass (`AuditStatus`) the API can serialize; `on_finding`
lets the appliance publish each finding as an event.  Objects the engine saw failing
(`engine.repair_hints`) are audited first, ahead of the full scan.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Callable

import aiofiles

from . import diskfile as df
from .diskfile import CorruptReplica, Replica, ReplicaWriter
from .engine import ObjectEngine, _row
from .index import ObjectRow
from .names import object_hash
from .ring import Device

log = logging.getLogger(__name__)


class FindingKind(StrEnum):
    CORRUPT = "corrupt"  # bytes or metadata do not verify: quarantined
    MISSING = "missing"  # a primary holds nothing for the object
    STALE = "stale"  # a primary holds an older version, or lacks the newest .meta/tombstone
    MISPLACED = "misplaced"  # a copy on a device that is not a primary
    INDEX = "index"  # the index row disagreed with the disk
    LOST = "lost"  # no good replica left: cannot repair
    ERROR = "error"  # the audit of this object failed (I/O error …)


@dataclass(frozen=True, slots=True)
class AuditFinding:
    kind: FindingKind
    object_hash: str
    device: str | None
    account: str | None
    container: str | None
    name: str | None
    detail: str
    repaired: bool
    at: float


@dataclass(slots=True)
class AuditStatus:
    running: bool = False
    passes_completed: int = 0
    pass_started: float | None = None
    last_pass_finished: float | None = None
    objects_checked: int = 0  # in the current (or last) pass
    replicas_verified: int = 0
    bytes_verified: int = 0
    bytes_copied: int = 0
    corrupt: int = 0  # cumulative counters from here down
    missing: int = 0
    stale: int = 0
    misplaced: int = 0
    index_fixed: int = 0
    repaired: int = 0
    lost: int = 0
    errors: int = 0
    findings: list[AuditFinding] = field(default_factory=list)  # the most recent ones


class Auditor:
    """Audit and repair; `run_pass()` once, or `start()` a background loop."""

    def __init__(
        self,
        engine: ObjectEngine,
        *,
        bytes_per_second: float | None = 32 << 20,
        interval: float = 3600.0,
        reclaim_age: float = 7 * 86400,
        max_findings: int = 1000,
        on_finding: Callable[[AuditFinding], None] | None = None,
    ) -> None:
        self.engine = engine
        self.bytes_per_second = bytes_per_second
        self.interval = interval
        self.reclaim_age = reclaim_age
        self.on_finding = on_finding
        self.status = AuditStatus()
        self._findings: deque[AuditFinding] = deque(maxlen=max_findings)
        self._task: asyncio.Task | None = None
        self._t0 = time.monotonic()
        self._throttled = 0

    # ---------------------------------------------------------------- loop

    def start(self) -> asyncio.Task:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="object-auditor")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep auditing; the error is counted and logged
                log.exception("audit pass failed")
                self.status.errors += 1
            # Hints (failed writes/reads) are served between passes without waiting an hour.
            deadline = time.monotonic() + self.interval
            while time.monotonic() < deadline:
                await asyncio.sleep(min(5.0, self.interval))
                await self.run_hints()

    async def run_hints(self) -> int:
        """Audit the objects the engine flagged; returns how many."""
        n = 0
        while self.engine.repair_hints:
            await self.audit_object(self.engine.repair_hints.pop())
            n += 1
        return n

    async def run_pass(self) -> AuditStatus:
        """One full pass over every object on every device."""
        st = self.status
        st.running, st.pass_started = True, time.time()
        st.objects_checked = st.replicas_verified = st.bytes_verified = st.bytes_copied = 0
        self._t0, self._throttled = time.monotonic(), 0
        try:
            await self.run_hints()
            seen: set[str] = set()
            for dev in self.engine.ring.devices:
                hashes = await asyncio.to_thread(lambda d=dev: [h for h, _ in df.iter_hashdirs(d)])
                for h in hashes:
                    if h not in seen:
                        seen.add(h)
                        await self.audit_object(h)
            st.passes_completed += 1
            st.last_pass_finished = time.time()
        finally:
            st.running = False
            st.findings = list(self._findings)
        return st

    # ---------------------------------------------------------------- one object

    async def audit_object(self, ohash: str) -> list[AuditFinding]:
        found: list[AuditFinding] = []
        try:
            await self._audit(ohash, found)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad object must not stop the pass
            log.exception("auditing %s", ohash)
            self._find(found, FindingKind.ERROR, ohash, None, None, str(exc), False)
        self.status.objects_checked += 1
        self.status.findings = list(self._findings)
        return found

    async def _open(self, dev: Device, ohash: str, found: list[AuditFinding]) -> Replica:
        try:
            rep = await asyncio.to_thread(df.open_replica, dev, ohash, None)
            if rep.info is not None and object_hash(rep.info.account, rep.info.container, rep.info.name) != ohash:
                raise CorruptReplica(f"holds {rep.info.name!r}, which does not hash to this directory")
            return rep
        except CorruptReplica as exc:
            st, _ = await asyncio.to_thread(df.scan_hashdir, df.hashdir(dev, ohash))
            if st.data is not None:
                await asyncio.to_thread(df.quarantine, dev, ohash, df.hashdir(dev, ohash) / (st.data + df.DATA))
            self._find(found, FindingKind.CORRUPT, ohash, dev, None, f"metadata: {exc}; quarantined", True)
            st, _ = await asyncio.to_thread(df.scan_hashdir, df.hashdir(dev, ohash))
            return Replica(device=dev, state=st)

    async def _audit(self, ohash: str, found: list[AuditFinding]) -> None:
        eng = self.engine
        ranking = eng.ring.ranking(ohash)
        primaries = ranking[: eng.ring.replicas]
        reps = {d.id: await self._open(d, ohash, found) for d in ranking}
        newest = max((r.timestamp for r in reps.values() if r.timestamp), default=None)
        if newest is None:
            return
        if any(r.state.deleted and r.state.tombstone == newest for r in reps.values()):
            await self._audit_tombstone(ohash, newest, reps, primaries, ranking, found)
            return

        holders = [r for r in reps.values() if r.info is not None and r.state.data == newest]
        good: list[Replica] = []
        quarantined: set[str] = set()
        for rep in holders:
            if await self._verify(rep):
                good.append(rep)
            else:
                await asyncio.to_thread(df.quarantine, rep.device, ohash, rep.data_path)
                quarantined.add(rep.device.id)
                self._find(found, FindingKind.CORRUPT, ohash, rep.device, rep, "md5 mismatch: quarantined", True)
        if not good:
            some = holders[0] if holders else None
            self._find(found, FindingKind.LOST, ohash, None, some, "no replica of the newest version verifies", False)
            return
        src = good[0]
        info = src.info
        assert info is not None and src.data_path is not None
        good_ids = {r.device.id for r in good}
        newest_meta = max((r.state.meta for r in good if r.state.meta and r.state.meta > newest), default=None)
        meta_src = next((r for r in good if r.state.meta == newest_meta), None) if newest_meta else None
        if meta_src is not None and meta_src.info is not None:
            info = meta_src.info

        all_primaries_good = True
        for dev in primaries:
            rep = reps[dev.id]
            try:
                if dev.id not in good_ids:
                    gone = rep.timestamp is None or dev.id in quarantined
                    kind = FindingKind.MISSING if gone else FindingKind.STALE
                    await self._copy(src.data_path, dev, ohash, newest + df.DATA)
                    if meta_src is not None:
                        await self._copy(df.hashdir(meta_src.device, ohash) / (newest_meta + df.META),
                                         dev, ohash, newest_meta + df.META)
                    self._find(found, kind, ohash, dev, src, f"copied version {newest} from {src.device.id}", True)
                elif meta_src is not None and rep.state.meta != newest_meta:
                    await self._copy(df.hashdir(meta_src.device, ohash) / (newest_meta + df.META),
                                     dev, ohash, newest_meta + df.META)
                    self._find(found, FindingKind.STALE, ohash, dev, src, f"copied metadata {newest_meta}", True)
            except Exception as exc:  # noqa: BLE001 - keep going with the other devices
                all_primaries_good = False
                self._find(found, FindingKind.ERROR, ohash, dev, src, f"repair failed: {exc}", False)
        if all_primaries_good:
            await self._remove_handoffs(ohash, reps, ranking[eng.ring.replicas:], src, found)
        await self._check_index(ohash, _row(info), found)

    async def _audit_tombstone(self, ohash, newest, reps, primaries, ranking, found) -> None:
        src = next(r for r in reps.values() if r.state.tombstone == newest)
        ts_path = df.hashdir(src.device, ohash) / (newest + df.TOMBSTONE)
        try:
            meta, _ = await asyncio.to_thread(df.read_file_meta, ts_path)
        except (CorruptReplica, OSError):
            meta = {}
        if float(newest) < time.time() - self.reclaim_age:
            for dev in ranking:
                hd = df.hashdir(dev, ohash)
                for n in await asyncio.to_thread(lambda: os.listdir(hd) if hd.exists() else []):
                    await asyncio.to_thread((hd / n).unlink, True)
            return
        content = await asyncio.to_thread(ts_path.read_bytes)
        for dev in primaries:
            if reps[dev.id].state.tombstone != newest or not reps[dev.id].state.deleted:
                await asyncio.to_thread(df.write_small_file_sync, dev, ohash, newest + df.TOMBSTONE, content)
                self._find(found, FindingKind.STALE, ohash, dev, None,
                           f"copied tombstone {newest} ({meta.get('name')!r})", True)
        await self._remove_handoffs(ohash, reps, ranking[self.engine.ring.replicas:], None, found)
        if meta.get("account") is not None:
            row = ObjectRow(meta["account"], meta["container"], meta["name"], 0, "", "", newest,
                            float(newest), deleted=True)
            await self._check_index(ohash, row, found)

    async def _remove_handoffs(self, ohash, reps, handoffs, src, found) -> None:
        for dev in handoffs:
            if reps[dev.id].timestamp is None:
                continue
            hd = df.hashdir(dev, ohash)
            names = await asyncio.to_thread(lambda: os.listdir(hd) if hd.exists() else [])
            for n in names:
                await asyncio.to_thread((hd / n).unlink, True)
            self._find(found, FindingKind.MISPLACED, ohash, dev, src, "removed copy from a non-primary device", True)

    async def _check_index(self, ohash: str, disk: ObjectRow, found: list[AuditFinding]) -> None:
        idx = self.engine.index
        if any(it.hash == ohash for it in await idx.intents()):
            return  # a change is in flight: its own commit (or reconciliation) settles the row
        row = await idx.get_object_row(disk.account, disk.container, disk.name)
        if disk.deleted:
            if row is None or row.deleted or row.timestamp > disk.timestamp:
                return
        elif row is not None and not row.deleted and row.timestamp == disk.timestamp and \
                row.etag == disk.etag and row.size == disk.size:
            return
        elif row is not None and row.timestamp > disk.timestamp:
            return  # the index knows a newer change (e.g. a DELETE whose tombstones are coming)
        await idx.commit_object(disk, None, force=True)
        self.status.index_fixed += 1
        self._find(found, FindingKind.INDEX, ohash, None, None,
                   f"index row for {disk.name!r} set from disk ({'deleted' if disk.deleted else disk.timestamp})",
                   True, names=(disk.account, disk.container, disk.name))

    # ---------------------------------------------------------------- bytes

    async def _throttle(self, n: int) -> None:
        if not self.bytes_per_second:
            return
        self._throttled += n
        ahead = self._throttled / self.bytes_per_second - (time.monotonic() - self._t0)
        if ahead > 0:
            await asyncio.sleep(ahead)

    async def _verify(self, rep: Replica) -> bool:
        assert rep.info is not None and rep.data_path is not None
        md5 = hashlib.md5()
        try:
            async for b in df.stream_range(rep.data_path, 0, rep.payload_len):
                await self._throttle(len(b))
                md5.update(b)
                self.status.bytes_verified += len(b)
        except (OSError, CorruptReplica):
            return False
        self.status.replicas_verified += 1
        return md5.hexdigest() == rep.info.md5

    async def _copy(self, src: Path, dev: Device, ohash: str, filename: str) -> None:
        """Copy one file byte for byte into a device's hash dir (temp, fsync, rename)."""
        w = ReplicaWriter(dev, ohash)
        await w.open()
        try:
            async with aiofiles.open(src, "rb") as f:
                while b := await f.read(df.READ_CHUNK):
                    await self._throttle(len(b))
                    await w.write(b)
                    self.status.bytes_copied += len(b)
            await w.commit(b"", filename)
        except BaseException:
            await w.abort()
            raise
        await asyncio.to_thread(df.cleanup_hashdir, df.hashdir(dev, ohash))

    # ---------------------------------------------------------------- findings

    def _find(self, found, kind: FindingKind, ohash: str, dev: Device | None, rep: Replica | None,
              detail: str, repaired: bool, names: tuple[str, str, str] | None = None) -> None:
        info = rep.info if rep is not None else None
        if names is None and info is not None:
            names = (info.account, info.container, info.name)
        f = AuditFinding(kind, ohash, dev.id if dev else None, *(names or (None, None, None)),
                         detail=detail, repaired=repaired, at=time.time())
        found.append(f)
        self._findings.append(f)
        st = self.status
        counter = {FindingKind.CORRUPT: "corrupt", FindingKind.MISSING: "missing", FindingKind.STALE: "stale",
                   FindingKind.MISPLACED: "misplaced", FindingKind.LOST: "lost", FindingKind.ERROR: "errors"}
        if kind in counter:
            setattr(st, counter[kind], getattr(st, counter[kind]) + 1)
        if repaired and kind in (FindingKind.MISSING, FindingKind.STALE):
            st.repaired += 1
        log.info("audit %s %s on %s: %s", kind, ohash, f.device, detail)
        if self.on_finding is not None:
            try:
                self.on_finding(f)
            except Exception:  # noqa: BLE001 - a listener must not break the audit
                log.exception("on_finding listener failed")
