"""The object-store component (Swift): the engine over the configured devices, the auditor
and the expirer as background tasks, and the Swift v1 routes.

The engine, its index and the auditor live in `storage.objects` and know nothing of the
appliance; this class wires them to the config, the event stream (audit findings become
events) and the quota rules (account and container quotas are Swift metadata).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from typing import Any

from appliance.component import ApplianceContext, CatalogEntry
from appliance.objects import swift
from storage.objects import AuditFinding, Auditor, ObjectEngine, QuotaExceeded, QuotaRequest
from storage.objects.diskfile import format_timestamp

log = logging.getLogger("monostack.objects")

#: Reap remembered DELETE rows every this many expirer runs.
REAP_EVERY = 100


class ObjectComponent:
    name = "object"
    catalog = [CatalogEntry(type="object-store", name="swift", path="/swift/v1/AUTH_{project_id}")]

    def __init__(self, ctx: ApplianceContext, *, auditor_autostart: bool = True) -> None:
        self.ctx = ctx
        cfg = ctx.config.storage
        self.config = cfg
        self.engine = ObjectEngine(list(cfg.object_devices), cfg.object_replicas,
                                   ctx.config.state_dir / "objects.sqlite", quota=self._check_quota)
        self.auditor = Auditor(self.engine, bytes_per_second=cfg.object_auditor_bytes_per_second or None,
                               interval=cfg.object_auditor_interval, on_finding=self._on_finding)
        self.auditor_autostart = auditor_autostart
        self.expired = 0
        self._expirer: asyncio.Task | None = None
        self._pending_events: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.engine.start()
        if self.auditor_autostart:
            self.auditor.start()
        self._expirer = asyncio.create_task(self._expire_forever(), name="object-expirer")

    async def stop(self) -> None:
        if self._expirer is not None:
            self._expirer.cancel()
            try:
                await self._expirer
            except asyncio.CancelledError:
                pass
        await self.auditor.stop()
        if self._pending_events:
            await asyncio.wait(self._pending_events, timeout=5)
        await self.engine.close()

    def health(self) -> str:
        st = self.auditor.status
        state = "auditing" if st.running else "idle"
        text = (f"auditor {state}: {st.passes_completed} passes, {st.objects_checked} checked, "
                f"{st.corrupt} corrupt, {st.missing} missing, {st.repaired} repaired, {st.lost} lost")
        if self.auditor._task is None or self.auditor._task.done():
            text = "auditor stopped; " + text
        return ("degraded: " if st.lost else "ok: ") + text

    # ------------------------------------------------------------------ expirer

    async def _expire_forever(self) -> None:
        runs = 0
        while True:
            await asyncio.sleep(self.config.object_expirer_interval)
            try:
                await self.expire_now()
                runs += 1
                if runs % REAP_EVERY == 0:
                    cutoff = format_timestamp(time.time() - self.config.object_reclaim_age)
                    await self.engine.index.reap_deleted(cutoff)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - expiry retries next round
                log.exception("object expirer failed")

    async def expire_now(self) -> int:
        n = await self.engine.expire_due()
        self.expired += n
        return n

    # ------------------------------------------------------------------ auditor

    def auditor_status(self) -> dict[str, Any]:
        st = asdict(self.auditor.status)
        st["findings"] = st["findings"][-100:]
        st["task_running"] = self.auditor._task is not None and not self.auditor._task.done()
        return st

    def _on_finding(self, f: AuditFinding) -> None:
        project = f.account[len(swift.ACCOUNT_PREFIX):] if f.account and \
            f.account.startswith(swift.ACCOUNT_PREFIX) else None
        name = f"{f.container}/{f.name}" if f.name else f.object_hash
        task = asyncio.get_running_loop().create_task(self.ctx.events.publish(
            f"object.audit.{f.kind}", "object", f.object_hash, project,
            f"{f.kind} {name} on {f.device or '-'}: {f.detail}",
            device=f.device, repaired=f.repaired, container=f.container, name=f.name))
        self._pending_events.add(task)
        task.add_done_callback(self._pending_events.discard)

    # ------------------------------------------------------------------ quotas

    def _check_quota(self, req: QuotaRequest) -> None:
        """Account quota (X-Account-Meta-Quota-Bytes) and container quotas
        (X-Container-Meta-Quota-Bytes / -Count), as Swift's quota middlewares."""
        grow = req.incoming_bytes - req.replaces_bytes
        cmeta = req.container_info.meta
        limit = _int(cmeta.get("x-container-meta-quota-bytes"))
        if limit is not None and req.container_info.bytes_used + grow > limit:
            raise QuotaExceeded(f"container quota of {limit} bytes exceeded")
        count = _int(cmeta.get("x-container-meta-quota-count"))
        if count is not None and req.replaces_bytes == 0 and req.container_info.object_count + 1 > count:
            raise QuotaExceeded(f"container quota of {count} objects exceeded")
        alimit = _int(req.account_info.meta.get("x-account-meta-quota-bytes"))
        if alimit is not None and req.account_info.bytes_used + grow > alimit:
            raise QuotaExceeded(f"account quota of {alimit} bytes exceeded")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
