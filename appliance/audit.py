"""The audit trail: who changed what, when, and how it ended — CADF-shaped, as Keystone's and
the other services' audit middleware emit it, so log tooling that reads those reads ours.

Every mutating API call (and every login) becomes one event: initiator (user, project,
roles, source address or "local socket"), action, target (service, resource, id), outcome
and HTTP status, request id. Never a body: no password, secret or token reaches the trail.

Events are appended to one JSON-lines file per UTC day under `<state_dir>/audit/`, by a
writer that batches what arrives within FLUSH_INTERVAL into one write (the request does not
wait for it), so a killed daemon loses at most that last batch; the files are fsynced at most
every FSYNC_INTERVAL, so the trail's fsyncs do not queue behind (and slow) the state store's,
which every write request waits for: a host power loss may lose that last second. Files older
than `[audit] retention_days` are removed at start and daily. Queries read the files newest
first, in a thread.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("monostack.audit")

CADF_EVENT = "http://schemas.dmtf.org/cloud/audit/1.0/event"
#: Events waiting for the writer; beyond this the oldest are dropped (and counted) rather
#: than letting a stalled disk grow the daemon without bound.
MAX_PENDING = 50_000
FLUSH_INTERVAL = 0.05
FSYNC_INTERVAL = 1.0
MAX_QUERY = 1000


def cadf_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def event(*, action: str, outcome: str, status: int, request_id: str, user_id: str | None,
          user_name: str | None, project_id: str | None, roles: list[str], source: str,
          service: str, target_type: str, target_id: str | None, method: str,
          path: str, now: float | None = None) -> dict[str, Any]:
    ts = time.time() if now is None else now
    return {
        "typeURI": CADF_EVENT, "id": str(uuid.uuid4()), "eventType": "activity",
        "eventTime": cadf_time(ts), "action": action, "outcome": outcome,
        "initiator": {
            "typeURI": "service/security/account/user", "id": user_id or "unknown",
            "name": user_name, "project_id": project_id, "roles": roles,
            "host": {"address": source},
            "credential": {"identity_status": "Confirmed" if user_id else "Invalid"}},
        "target": {"typeURI": target_type, "id": target_id or "unknown"},
        "observer": {"typeURI": f"service/{service}", "id": "monostack"},
        "reason": {"reasonType": "HTTP", "reasonCode": str(status)},
        "requestPath": path, "method": method,
        "tags": [f"correlation_id?value={request_id}"], "request_id": request_id,
    }


class AuditLog:
    def __init__(self, directory: Path, retention_days: int = 90) -> None:
        self.directory = Path(directory)
        self.retention_days = retention_days
        self._pending: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self.written = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_fsync = 0.0

    async def start(self) -> None:
        await asyncio.to_thread(self.directory.mkdir, mode=0o700, parents=True, exist_ok=True)
        await asyncio.to_thread(self.expire)
        self._writer = asyncio.create_task(self._write_forever(), name="audit-writer")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        await self._flush(sync=True)

    def record(self, ev: dict[str, Any]) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(ev)
        self._wake.set()

    async def _write_forever(self) -> None:
        last_expiry = time.time()
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(FLUSH_INTERVAL)  # gather what arrives meanwhile: one fsync
            try:
                await self._flush()
            except OSError:
                log.exception("audit trail write failed")
            if time.time() - last_expiry > 86400:
                last_expiry = time.time()
                await asyncio.to_thread(self.expire)

    async def _flush(self, sync: bool = False) -> None:
        if not self._pending:
            return
        now = time.monotonic()
        sync = sync or now - self._last_fsync >= FSYNC_INTERVAL
        if sync:
            self._last_fsync = now
        batch = list(self._pending)
        self._pending.clear()
        by_day: dict[str, list[bytes]] = {}
        for ev in batch:
            by_day.setdefault(ev["eventTime"][:10], []).append(
                (json.dumps(ev, separators=(",", ":")) + "\n").encode())
        await asyncio.to_thread(self._append, by_day, sync)
        self.written += len(batch)

    def _append(self, by_day: dict[str, list[bytes]], sync: bool) -> None:
        for day, lines in by_day.items():
            fd = os.open(self.directory / f"audit-{day}.jsonl",
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                data = memoryview(b"".join(lines))
                while data:
                    data = data[os.write(fd, data):]
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("audit-*.jsonl"), reverse=True)

    def expire(self) -> int:
        if self.retention_days <= 0:
            return 0
        cutoff = (datetime.now(timezone.utc) - timedelta(days=self.retention_days)).strftime(
            "%Y-%m-%d")
        gone = 0
        for path in self._files():
            if path.name[len("audit-"):-len(".jsonl")] < cutoff:
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    async def query(self, *, since: str | None = None, until: str | None = None,
                    user_id: str | None = None, project_id: str | None = None,
                    outcome: str | None = None, action: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        """Newest first. Times compare as CADF strings (same format, UTC)."""
        await self._flush()
        limit = max(1, min(limit, MAX_QUERY))

        def match(ev: dict[str, Any]) -> bool:
            init = ev.get("initiator", {})
            return ((since is None or ev["eventTime"] >= since)
                    and (until is None or ev["eventTime"] < until)
                    and (user_id is None or init.get("id") == user_id)
                    and (project_id is None or init.get("project_id") == project_id)
                    and (outcome is None or ev.get("outcome") == outcome)
                    and (action is None or ev.get("action") == action))

        def scan() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for path in self._files():
                if since is not None and path.name[len("audit-"):-len(".jsonl")] < since[:10]:
                    break
                with open(path, "rb") as f:
                    lines = f.read().splitlines()
                for line in reversed(lines):
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue  # a torn last line after a crash
                    if match(ev):
                        out.append(ev)
                        if len(out) >= limit:
                            return out
            return out

        return await asyncio.to_thread(scan)
