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
from collections.abc import Awaitable
from typing import Any, TypeVar

from appliance.component import ApplianceContext, CatalogEntry
from appliance.objects import metrics as object_metrics, swift
from appliance.quota import QuotaSource, Reservation
from storage.objects import AuditFinding, Auditor, ObjectEngine, QuotaExceeded, QuotaRequest
from storage.objects.diskfile import format_timestamp

log = logging.getLogger("monostack.objects")
T = TypeVar("T")

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
                                   ctx.config.state_dir / "objects.sqlite", quota=self._reserve_quota)
        self.auditor = Auditor(self.engine, bytes_per_second=cfg.object_auditor_bytes_per_second or None,
                               interval=cfg.object_auditor_interval, on_finding=self._on_finding)
        self.auditor_autostart = auditor_autostart
        self.expired = 0
        self._expirer: asyncio.Task | None = None
        self._pending_events: set[asyncio.Task] = set()
        # Swift's quotas are account and container metadata; the shared ledger holds what
        # PUTs in flight will add, keyed by account and by "account/container"
        ctx.quotas.register(QuotaSource(("swift_account_bytes",), self._account_limits,
                                        self._account_usage, _over_quota))
        ctx.quotas.register(QuotaSource(CONTAINER_RESOURCES, self._container_limits,
                                        self._container_usage, _over_quota))
        object_metrics.register(ctx.metrics, self)

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

    async def bootstrap(self, admin_project: Any) -> None:
        """Nothing: an account comes into being with its first container."""

    async def settled(self) -> None:
        """Nothing runs on after start()."""

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

    async def _reserve_quota(self, req: QuotaRequest) -> "_Held | None":
        """Account quota (X-Account-Meta-Quota-Bytes) and container quotas
        (X-Container-Meta-Quota-Bytes / -Count), as Swift's quota middlewares, held for the
        PUT until the engine has indexed the object (or given up).

        Where neither the container nor its account has a quota (read from the rows the
        engine hands over) there is nothing to hold: the PUT takes no ledger lock, and its
        listing row joins the index's group commit with every other PUT's. Under the
        ledger's lock, PUTs into one container committed their rows one fsync at a time
        (~200/s at 32 clients). PUTs already in flight when a quota is set are not counted
        against it (as in Swift, whose quota middlewares check at the start of a PUT)."""
        if (_limit(req.account_info.meta.get("x-account-meta-quota-bytes")) < 0
                and _limit(req.container_info.meta.get("x-container-meta-quota-bytes")) < 0
                and _limit(req.container_info.meta.get("x-container-meta-quota-count")) < 0):
            return None
        grow = max(0, req.incoming_bytes - req.replaces_bytes)
        new_object = 1 if req.replaces_bytes == 0 else 0
        key = f"{req.account}/{req.container}"
        container = await self.ctx.quotas.reserve(key, {"swift_container_bytes": grow,
                                                        "swift_container_objects": new_object})
        try:
            account = await self.ctx.quotas.reserve(req.account, {"swift_account_bytes": grow})
        except BaseException:
            container.release()
            raise
        return _Held((container, account))

    async def _account_limits(self, account: str) -> dict[str, int]:
        info = await self.engine.account_info(account)
        return {"swift_account_bytes": _limit(info.meta.get("x-account-meta-quota-bytes"))}

    async def _account_usage(self, account: str) -> dict[str, int]:
        return {"swift_account_bytes": (await self.engine.account_info(account)).bytes_used}

    async def _container_limits(self, key: str) -> dict[str, int]:
        account, container = key.split("/", 1)
        meta = (await self.engine.get_container(account, container)).meta
        return {"swift_container_bytes": _limit(meta.get("x-container-meta-quota-bytes")),
                "swift_container_objects": _limit(meta.get("x-container-meta-quota-count"))}

    async def _container_usage(self, key: str) -> dict[str, int]:
        account, container = key.split("/", 1)
        info = await self.engine.get_container(account, container)
        return {"swift_container_bytes": info.bytes_used,
                "swift_container_objects": info.object_count}


CONTAINER_RESOURCES = ("swift_container_bytes", "swift_container_objects")


def _over_quota(resource: str, asked: int, used: int, limit: int) -> QuotaExceeded:
    what = {"swift_account_bytes": f"account quota of {limit} bytes",
            "swift_container_bytes": f"container quota of {limit} bytes",
            "swift_container_objects": f"container quota of {limit} objects"}[resource]
    return QuotaExceeded(f"{what} exceeded")


class _Held:
    """The engine's QuotaHold over the container's and the account's reservations."""

    def __init__(self, reservations: tuple[Reservation, ...]) -> None:
        self.reservations = reservations

    async def store(self, write: Awaitable[T]) -> T:
        """Under the container's then the account's lock (always that order)."""
        container, account = self.reservations
        return await container.store(account.store(write))

    def release(self) -> None:
        for r in self.reservations:
            r.release()


def _limit(value: str | None) -> int:
    """A quota header's limit; absent or not a number is unlimited (-1)."""
    parsed = _int(value)
    return -1 if parsed is None or parsed < 0 else parsed


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
