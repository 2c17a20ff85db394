"""Volume service: Cinder's status machine over VolumeFiles.

Why asynchronous: building a volume from an image converts the image once (minutes for a big
one), and extends, snapshots and reverts run qemu-img. Like Cinder, the API answers 202 with
the volume `creating` (or `extending` …) and a task finishes the work, setting `available` or
`error` (with `last_error`). A daemon that stops mid-task finds the transient status at startup
and settles it from what is on disk (`recover`).

Every status change of one volume happens under that volume's lock, so two requests racing
(delete vs attach, extend vs snapshot) see each other's result instead of overwriting it.
Compute reaches volumes only through the seam at the bottom (volume_for_attach, mark_attached,
mark_detached …), never through the records.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from appliance.component import ApplianceContext
from appliance.background import BackgroundTasks
from appliance.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    MonostackError,
    NotFound,
    QuotaExceeded,
    ServiceUnavailable,
)
from appliance.identity.policy import AuthContext, owns
from appliance.images.service import now_iso
from appliance.quota import QuotaSource, Reservation
from appliance.seams import AttachableVolume, ImageSeam
from appliance.state import Repository
from appliance.volumes.records import (
    DEFAULT_TYPE_ID,
    DEFAULT_TYPE_NAME,
    DELETABLE,
    GiB,
    Snapshot,
    SnapshotStatus,
    Volume,
    VolumeQuota,
    VolumeStatus,
)
from storage import errors as serr
from storage.atomic import temp_path_for
from storage.volumes import VolumeFiles

log = logging.getLogger("monostack.volumes")

MAX_SIZE_GB = 16 * 1024
UPLOAD_FORMATS = ("raw", "qcow2")
_TYPE_NAMES = {None, "", DEFAULT_TYPE_NAME, DEFAULT_TYPE_ID, "__DEFAULT__"}


def _size(value: Any, what: str = "size") -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIZE_GB:
        raise BadRequest(f"Invalid input received: {what} must be an integer between 1 and "
                         f"{MAX_SIZE_GB} (GiB), not {value!r}")
    return value


def _text(value: Any, what: str, limit: int = 255) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"Invalid input received: {what} must be a string of at most "
                         f"{limit} characters")
    return value


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and 0 < len(k) <= 255 and isinstance(v, str) and len(v) <= 255
            for k, v in value.items()):
        raise BadRequest("Invalid input received: metadata must map strings to strings "
                         "(at most 255 characters)")
    return dict(value)


def _storage_error(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class VolumeService:
    def __init__(self, ctx: ApplianceContext, volumes_dir: Path, *,
                 images: ImageSeam | None = None) -> None:
        """images: the image component (volumes from images, upload to image); None when it
        does not run."""
        self.ctx = ctx
        self.images = images
        self.volumes: Repository[Volume] = Repository(ctx.store, "volumes", Volume)
        self.snapshots: Repository[Snapshot] = Repository(ctx.store, "volume_snapshots",
                                                          Snapshot, kind="snapshot")
        self.quotas: Repository[VolumeQuota] = Repository(ctx.store, "volume_quotas", VolumeQuota)
        self.files = VolumeFiles(volumes_dir)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._background = BackgroundTasks()
        ctx.quotas.register(QuotaSource(VOLUME_RESOURCES, self.quota_limits, self.usage,
                                        _over_quota))

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.files.start()
        await self.recover()

    async def stop(self) -> None:
        await self._background.cancel_all()

    async def recover(self) -> None:
        """Settle statuses a stopped daemon left half-way, from what the files say."""
        settled: list[Volume] = []
        for vol in self.volumes.list():
            status = vol.status
            has_file = await asyncio.to_thread(self.files.exists, vol.id)
            if status == VolumeStatus.CREATING:
                vol.status = VolumeStatus.AVAILABLE if has_file else VolumeStatus.ERROR
                vol.last_error = None if has_file else "creation interrupted (daemon restarted)"
            elif status == VolumeStatus.DELETING:
                self._spawn(self._finish_delete(vol.id))
                continue
            elif status in (VolumeStatus.EXTENDING, VolumeStatus.UPLOADING,
                            VolumeStatus.REVERTING, VolumeStatus.ATTACHING,
                            VolumeStatus.DETACHING, VolumeStatus.RESERVED):
                vol.status = VolumeStatus.IN_USE if vol.attachments else VolumeStatus.AVAILABLE
                if has_file and status == VolumeStatus.EXTENDING:
                    info = await self.files.info(vol.id)
                    vol.size = max(1, info.virtual_size // GiB)
            else:
                continue
            settled.append(vol)
        for snap in self.snapshots.list():
            if snap.status == SnapshotStatus.DELETING:
                self._spawn(self._finish_snapshot_delete(snap.id))
            elif snap.status in (SnapshotStatus.CREATING, SnapshotStatus.RESTORING):
                names: tuple[str, ...] = ()
                with contextlib.suppress(Exception):
                    names = await self.files.snapshots(snap.volume_id)
                snap.status = (SnapshotStatus.AVAILABLE if snap.id in names
                               else SnapshotStatus.ERROR)
                await self.snapshots.save(snap)
        if settled:
            await self.volumes.save_all(settled)
            log.warning("settled interrupted volumes", extra={"volumes": [v.id for v in settled]})

    def _spawn(self, coro):
        return self._background.spawn(coro)

    # ------------------------------------------------------------------ reading
    def get(self, auth: AuthContext, volume_id: str) -> Volume:
        vol = self.volumes.get(volume_id)
        if vol is None or not owns(auth, vol.project_id):
            raise NotFound(f"Volume {volume_id} could not be found.")
        return vol

    def list(self, auth: AuthContext, project_id: str, all_projects: bool = False) -> list[Volume]:
        if auth.is_admin and all_projects:
            return self.volumes.list()
        return self.volumes.list(lambda v: v.project_id == project_id)

    def get_snapshot(self, auth: AuthContext, snapshot_id: str) -> Snapshot:
        snap = self.snapshots.get(snapshot_id)
        if snap is None or not owns(auth, snap.project_id):
            raise NotFound(f"Snapshot {snapshot_id} could not be found.")
        return snap

    def list_snapshots(self, auth: AuthContext, project_id: str,
                       all_projects: bool = False) -> list[Snapshot]:
        if auth.is_admin and all_projects:
            return self.snapshots.list()
        return self.snapshots.list(lambda s: s.project_id == project_id)

    def snapshots_of(self, volume_id: str) -> list[Snapshot]:
        return sorted(self.snapshots.list(lambda s: s.volume_id == volume_id),
                      key=lambda s: s.created_at)

    # ------------------------------------------------------------------ quotas
    def quota_for(self, project_id: str) -> VolumeQuota:
        return self.quotas.get(project_id) or VolumeQuota(id=project_id)

    def usage(self, project_id: str) -> dict[str, int]:
        vols = self.volumes.list(lambda v: v.project_id == project_id)
        snaps = self.snapshots.list(lambda s: s.project_id == project_id)
        return {"volumes": len(vols), "snapshots": len(snaps),
                "gigabytes": sum(v.size for v in vols) + sum(s.size for s in snaps)}

    def quota_limits(self, project_id: str) -> dict[str, int]:
        quota = self.quota_for(project_id)
        return {key: getattr(quota, key) for key in VOLUME_RESOURCES}

    def _reserve(self, project_id: str, **deltas: int) -> Reservation:
        return self.ctx.quotas.reserve(project_id, deltas)

    async def set_quota(self, project_id: str, **limits: Any) -> VolumeQuota:
        quota = self.quota_for(project_id)
        for key, value in limits.items():
            if key not in ("volumes", "gigabytes", "snapshots"):
                continue  # Cinder has more keys (backups, groups …); they have no effect here
            if isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < -1:
                raise BadRequest(f"Quota {key} must be an integer ≥ -1")
            setattr(quota, key, value)
        return await self.quotas.save(quota)

    async def reset_quota(self, project_id: str) -> None:
        if self.quotas.get(project_id) is not None:
            await self.quotas.delete(project_id)

    # ------------------------------------------------------------------ create / delete
    async def create(self, auth: AuthContext, body: dict[str, Any]) -> Volume:
        """Validate and record a new volume (status creating); a task builds its file."""
        if auth.project_id is None:
            raise Forbidden("A project-scoped token is required to create volumes.")
        if body.get("volume_type") not in _TYPE_NAMES:
            raise NotFound(f"Volume type {body.get('volume_type')} could not be found.")
        sources = [k for k in ("imageRef", "snapshot_id", "source_volid", "backup_id")
                   if body.get(k)]
        if len(sources) > 1:
            raise BadRequest("Invalid input received: only one of imageRef, snapshot_id and "
                             "source_volid may be given.")
        if body.get("backup_id"):
            raise BadRequest("Volume backups are not supported.")
        size = body.get("size")
        vol = Volume(id=str(uuid.uuid4()), project_id=auth.project_id, size=0,
                     user_id=auth.user_id or None,
                     name=_text(body.get("name"), "name"),
                     description=_text(body.get("description"), "description", 65535),
                     metadata=_metadata(body.get("metadata")),
                     created_at=now_iso())
        build: Callable[[], Awaitable[Any]]
        if body.get("imageRef"):
            boot = await self._image_for_volume(str(body["imageRef"]), auth.project_id)
            needed = max(boot.min_disk, math.ceil((boot.virtual_size or 0) / GiB), 1)
            vol.size = _size(size) if size is not None else needed
            if vol.size < needed:
                raise BadRequest(f"Invalid input received: image {body['imageRef']} needs a "
                                 f"volume of at least {needed} GiB (asked for {vol.size}).")
            vol.source_image_id = str(body["imageRef"])
            vol.bootable = True
            vol.image_metadata = {"image_id": vol.source_image_id, "image_name": boot.name,
                                  "disk_format": _glance_format(boot.disk_format),
                                  "min_disk": str(boot.min_disk), "min_ram": str(boot.min_ram),
                                  **{k: str(v) for k, v in boot.properties.items()
                                     if not k.startswith("owner_specified")}}
            image_id, volume_id = vol.source_image_id, vol.id
            build = lambda: self.files.create_from_image(  # noqa: E731
                volume_id, image_id, boot.path, boot.disk_format, vol.size * GiB)
        elif body.get("snapshot_id"):
            snap = self.get_snapshot(auth, str(body["snapshot_id"]))
            if snap.status != SnapshotStatus.AVAILABLE:
                raise Invalid(f"Invalid snapshot: snapshot {snap.id} is {snap.status}, "
                              "not available.")
            vol.size = _size(size) if size is not None else snap.size
            if vol.size < snap.size:
                raise BadRequest(f"Invalid input received: volume size {vol.size} GiB is "
                                 f"smaller than the snapshot ({snap.size} GiB).")
            source = self.volumes.require(snap.volume_id)
            vol.source_snapshot_id, vol.bootable = snap.id, source.bootable
            vol.image_metadata = dict(source.image_metadata)
            volume_id, size_bytes = vol.id, vol.size * GiB
            build = lambda: self.files.create_from_snapshot(  # noqa: E731
                volume_id, snap.volume_id, snap.id, size_bytes)
        elif body.get("source_volid"):
            source = self.get(auth, str(body["source_volid"]))
            if source.status != VolumeStatus.AVAILABLE:
                raise Invalid(f"Invalid volume: source volume {source.id} must be available "
                              f"to clone (it is {source.status}).")
            vol.size = _size(size) if size is not None else source.size
            if vol.size < source.size:
                raise BadRequest(f"Invalid input received: volume size {vol.size} GiB is "
                                 f"smaller than the source volume ({source.size} GiB).")
            vol.source_volume_id, vol.bootable = source.id, source.bootable
            vol.image_metadata = dict(source.image_metadata)
            volume_id, source_id, size_bytes = vol.id, source.id, vol.size * GiB
            build = lambda: self.files.clone(volume_id, source_id, size_bytes)  # noqa: E731
        else:
            if size is None:
                raise BadRequest("Invalid input received: size is required for an empty volume.")
            vol.size = _size(size)
            volume_id, size_bytes = vol.id, vol.size * GiB
            build = lambda: self.files.create_empty(volume_id, size_bytes)  # noqa: E731
        vol.updated_at = vol.created_at
        async with self._reserve(vol.project_id, volumes=1, gigabytes=vol.size) as held:
            await held.store(self.volumes.save(vol))
        await self._event("volume.creating", vol, f"volume {vol.name or vol.id} creating")
        self._spawn(self._run(vol.id, build, VolumeStatus.CREATING, VolumeStatus.AVAILABLE,
                              VolumeStatus.ERROR, "created"))
        return vol

    async def _image_for_volume(self, image_id: str, project_id: str):
        images = self.images
        if images is None:
            raise BadRequest("The image service is not running: cannot create a volume "
                             "from an image.")
        try:
            return await images.boot_source(image_id, project_id)
        except (NotFound, Conflict) as exc:
            raise BadRequest(f"Invalid image identifier or unable to access requested "
                             f"image: {exc}") from exc

    async def _run(self, volume_id: str, work: Callable[[], Awaitable[Any]],
                   during: VolumeStatus, done: VolumeStatus, failed: VolumeStatus,
                   verb: str, on_success: Callable[[Volume], None] | None = None,
                   held: Reservation | None = None) -> None:
        """Run one asynchronous step; settle the status to `done` or `failed`."""
        try:
            await work()
        except asyncio.CancelledError:
            raise  # recover() settles it at the next start
        except Exception as exc:
            log.warning("volume step failed", extra={"volume": volume_id, "step": verb,
                                                     "error": str(exc)})
            await self._settle(volume_id, during, failed, _storage_error(exc))
            return
        await self._settle(volume_id, during, done, None, on_success, verb, held)

    async def _settle(self, volume_id: str, during: VolumeStatus, to: VolumeStatus,
                      error: str | None, on_success: Callable[[Volume], None] | None = None,
                      verb: str = "", held: Reservation | None = None) -> None:
        """`held`: quota the stored change makes count (committed with the save)."""
        async with self._locks[volume_id]:
            vol = self.volumes.get(volume_id)
            if vol is None or vol.status != during:
                return
            vol.status = to
            if to == VolumeStatus.AVAILABLE and vol.attachments:
                vol.status = VolumeStatus.IN_USE
            vol.last_error = error
            if error is None and on_success is not None:
                on_success(vol)
            vol.updated_at = now_iso()
            await (held.store(self.volumes.save(vol)) if held else self.volumes.save(vol))
        if error:
            await self._event("volume.error", vol, f"volume {vol.name or vol.id}: {error}")
        else:
            await self._event("volume.state", vol, f"volume {vol.name or vol.id} {verb}")

    async def _event(self, kind: str, vol: Volume, message: str) -> None:
        await self.ctx.events.publish(kind, "volume", vol.id, vol.project_id, message,
                                      status=str(vol.status))

    async def _transition(self, auth: AuthContext | None, volume_id: str,
                          allowed: set[VolumeStatus], to: VolumeStatus, what: str,
                          change: Callable[[Volume], None] | None = None) -> Volume:
        """Under the lock: check the status is one of `allowed`, then move to `to`."""
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id) if auth else self.volumes.require(volume_id)
            if vol.status not in allowed:
                raise Invalid(f"Invalid volume: cannot {what} volume {volume_id} in status "
                              f"{vol.status} (must be {' or '.join(sorted(allowed))}).")
            if change is not None:
                change(vol)
            vol.status = to
            vol.updated_at = now_iso()
            await self.volumes.save(vol)
        return vol

    async def update(self, auth: AuthContext, volume_id: str, body: dict[str, Any]) -> Volume:
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id)
            if "name" in body:
                vol.name = _text(body["name"], "name")
            if "description" in body:
                vol.description = _text(body["description"], "description", 65535)
            if "metadata" in body:
                vol.metadata = _metadata(body["metadata"])
            vol.updated_at = now_iso()
            await self.volumes.save(vol)
        return vol

    async def set_metadata(self, auth: AuthContext, volume_id: str, metadata: Any,
                           replace: bool) -> Volume:
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id)
            new = _metadata(metadata)
            vol.metadata = new if replace else {**vol.metadata, **new}
            vol.updated_at = now_iso()
            await self.volumes.save(vol)
        return vol

    async def delete_metadata_key(self, auth: AuthContext, volume_id: str, key: str) -> None:
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id)
            if key not in vol.metadata:
                raise NotFound(f"Volume {volume_id} has no metadata with key {key}.")
            del vol.metadata[key]
            await self.volumes.save(vol)

    async def delete(self, auth: AuthContext, volume_id: str) -> None:
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id)
            if vol.attachments or vol.status not in DELETABLE:
                raise Invalid(f"Invalid volume: Volume status must be available or error or "
                              f"error_restoring or error_extending, and must not be attached "
                              f"(volume {volume_id} is {vol.status}).")
            snaps = self.snapshots_of(volume_id)
            if snaps:
                raise Invalid(f"Invalid volume: Volume {volume_id} still has {len(snaps)} "
                              f"dependent snapshots.")
            vol.status = VolumeStatus.DELETING
            vol.updated_at = now_iso()
            await self.volumes.save(vol)
        await self._event("volume.deleting", vol, f"volume {vol.name or vol.id} deleting")
        self._spawn(self._finish_delete(volume_id))

    async def _finish_delete(self, volume_id: str) -> None:
        try:
            await self.files.delete(volume_id)
        except Exception as exc:
            await self._settle(volume_id, VolumeStatus.DELETING, VolumeStatus.ERROR_DELETING,
                               _storage_error(exc))
            return
        async with self._locks[volume_id]:
            vol = self.volumes.get(volume_id)
            if vol is not None:
                await self.volumes.delete(volume_id)
        self._locks.pop(volume_id, None)
        if vol is not None:
            await self._event("volume.deleted", vol, f"volume {vol.name or vol.id} deleted")
            images = self.images
            if vol.source_image_id and images is not None:
                with contextlib.suppress(Exception):
                    await self.files.prune_bases()

    # ------------------------------------------------------------------ actions
    async def extend(self, auth: AuthContext, volume_id: str, new_size: Any) -> Volume:
        new = _size(new_size, "new_size")
        vol = self.get(auth, volume_id)
        if new <= vol.size:
            raise Invalid(f"Invalid input received: New size for extend must be greater than "
                          f"current size. (current: {vol.size}, extended: {new}).")
        # held until the task records the new size (or fails)
        held = await self._reserve(vol.project_id, gigabytes=new - vol.size)
        try:
            vol = await self._transition(auth, volume_id, {VolumeStatus.AVAILABLE},
                                         VolumeStatus.EXTENDING, "extend")
        except BaseException:
            held.release()
            raise

        def grown(v: Volume) -> None:
            v.size = new

        async def extend_then_settle() -> None:
            try:
                await self._run(volume_id, lambda: self.files.extend(volume_id, new * GiB),
                                VolumeStatus.EXTENDING, VolumeStatus.AVAILABLE,
                                VolumeStatus.ERROR_EXTENDING, "extended", grown, held)
            finally:
                held.release()  # the extend failed (a stored size committed it already)
        self._spawn(extend_then_settle())
        return vol

    async def set_bootable(self, auth: AuthContext, volume_id: str, bootable: Any) -> Volume:
        if isinstance(bootable, str):
            bootable = bootable.lower() in ("true", "1", "yes", "on")
        if not isinstance(bootable, bool):
            raise BadRequest("Invalid input received: bootable must be a boolean.")
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id)
            vol.bootable = bootable
            await self.volumes.save(vol)
        return vol

    async def reserve(self, auth: AuthContext, volume_id: str) -> Volume:
        return await self._transition(auth, volume_id, {VolumeStatus.AVAILABLE},
                                      VolumeStatus.ATTACHING, "reserve")

    async def unreserve(self, auth: AuthContext, volume_id: str) -> Volume:
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id)
            if vol.status == VolumeStatus.ATTACHING:
                vol.status = VolumeStatus.IN_USE if vol.attachments else VolumeStatus.AVAILABLE
                await self.volumes.save(vol)
        return vol

    async def begin_detaching(self, auth: AuthContext | None, volume_id: str) -> Volume:
        return await self._transition(auth, volume_id, {VolumeStatus.IN_USE},
                                      VolumeStatus.DETACHING, "begin detaching")

    async def roll_detaching(self, auth: AuthContext, volume_id: str) -> Volume:
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id)
            if vol.status == VolumeStatus.DETACHING:
                vol.status = VolumeStatus.IN_USE
                await self.volumes.save(vol)
        return vol

    async def attach(self, auth: AuthContext | None, volume_id: str, server_id: str,
                     device: str | None, host_name: str | None = None) -> Volume:
        """Record an attachment (os-attach / compute's mark_attached): → in-use."""
        if not server_id and not host_name:
            raise BadRequest("Invalid input received: instance_uuid or host_name is required.")

        def add(vol: Volume) -> None:
            if any(a["server_id"] == server_id for a in vol.attachments if server_id):
                return
            attachment_id = str(uuid.uuid4())
            vol.attachments.append({"id": volume_id, "attachment_id": attachment_id,
                                    "volume_id": volume_id, "server_id": server_id,
                                    "host_name": host_name, "device": device,
                                    "attached_at": now_iso()})
        vol = await self._transition(auth, volume_id,
                                     {VolumeStatus.AVAILABLE, VolumeStatus.ATTACHING,
                                      VolumeStatus.RESERVED},
                                     VolumeStatus.IN_USE, "attach", add)
        await self._event("volume.attached", vol,
                          f"volume {vol.name or vol.id} attached to {server_id} at {device}")
        return vol

    async def detach(self, auth: AuthContext | None, volume_id: str,
                     server_id: str | None = None, attachment_id: str | None = None) -> Volume:
        """Drop attachments (of one server / attachment, or all): → available when none left.
        Also the rollback of a failed attach (attaching → available)."""
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id) if auth else self.volumes.require(volume_id)
            if vol.status not in (VolumeStatus.IN_USE, VolumeStatus.DETACHING,
                                  VolumeStatus.ATTACHING, VolumeStatus.RESERVED):
                raise Invalid(f"Invalid volume: volume {volume_id} is {vol.status}, "
                              "not attached.")
            keep = [a for a in vol.attachments
                    if (server_id and a["server_id"] != server_id)
                    or (attachment_id and a["attachment_id"] != attachment_id)]
            vol.attachments = keep
            vol.status = VolumeStatus.IN_USE if keep else VolumeStatus.AVAILABLE
            vol.updated_at = now_iso()
            await self.volumes.save(vol)
        await self._event("volume.detached", vol, f"volume {vol.name or vol.id} detached")
        return vol

    def connection_info(self, auth: AuthContext, volume_id: str) -> dict[str, Any]:
        vol = self.get(auth, volume_id)
        try:
            target = self.files.disk_target(volume_id)
        except serr.NotFound as exc:
            raise Conflict(f"Volume {volume_id} has no data yet ({vol.status}).") from exc
        return {"driver_volume_type": "local", "data": {
            "device_path": str(target.path), "format": target.format,
            "volume_id": volume_id, "access_mode": "rw", "name": f"volume-{volume_id}"}}

    async def reset_status(self, auth: AuthContext, volume_id: str, status: Any) -> Volume:
        try:
            wanted = VolumeStatus(status)
        except ValueError:
            raise BadRequest(f"Invalid input received: unknown status {status!r}") from None
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id)
            vol.status = wanted
            await self.volumes.save(vol)
        return vol

    async def revert(self, auth: AuthContext, volume_id: str, snapshot_id: Any) -> Volume:
        if not isinstance(snapshot_id, str):
            raise BadRequest("Invalid input received: snapshot_id is required.")
        vol = self.get(auth, volume_id)
        snap = self.get_snapshot(auth, snapshot_id)
        if snap.volume_id != volume_id:
            raise BadRequest(f"Invalid input received: snapshot {snapshot_id} is not a "
                             f"snapshot of volume {volume_id}.")
        latest = self.snapshots_of(volume_id)[-1]
        if latest.id != snap.id:
            raise BadRequest(f"Invalid input received: only the latest snapshot "
                             f"({latest.id}) can be reverted to.")
        if snap.status != SnapshotStatus.AVAILABLE:
            raise Invalid(f"Invalid snapshot: snapshot {snapshot_id} is {snap.status}.")
        if snap.size != vol.size:
            raise BadRequest(f"Invalid input received: volume size ({vol.size} GiB) must be "
                             f"the snapshot's ({snap.size} GiB) to revert.")
        vol = await self._transition(auth, volume_id, {VolumeStatus.AVAILABLE},
                                     VolumeStatus.REVERTING, "revert")
        self._spawn(self._run(volume_id, lambda: self.files.snapshot_revert(volume_id, snap.id),
                              VolumeStatus.REVERTING, VolumeStatus.AVAILABLE,
                              VolumeStatus.ERROR_RESTORING, f"reverted to snapshot {snap.id}"))
        return vol

    async def upload_to_image(self, auth: AuthContext, volume_id: str,
                              body: dict[str, Any]) -> tuple[Volume, Any]:
        """os-volume_upload_image: a new image (id returned at once) filled by a task."""
        images = self.images
        if images is None:
            raise BadRequest("The image service is not running.")
        disk_format = body.get("disk_format") or "raw"
        if disk_format not in UPLOAD_FORMATS:
            raise BadRequest(f"Invalid input received: disk_format must be one of "
                             f"{', '.join(UPLOAD_FORMATS)}.")
        name = _text(body.get("image_name"), "image_name")
        if not name:
            raise BadRequest("Invalid input received: image_name is required.")
        vol = self.get(auth, volume_id)
        if vol.status != VolumeStatus.AVAILABLE:
            raise Invalid(f"Invalid volume: volume {volume_id} must be available to upload "
                          f"(it is {vol.status}); detach it first.")
        image = await images.reserve_image(
            name=name, project_id=vol.project_id, disk_format=disk_format,
            container_format=body.get("container_format") or "bare",
            visibility=body.get("visibility") or "private",
            protected=bool(body.get("protected", False)),
            properties={k: v for k, v in vol.image_metadata.items()
                        if k not in ("image_id", "image_name", "disk_format", "min_disk",
                                     "min_ram", "size", "checksum", "container_format")})
        vol = await self._transition(auth, volume_id, {VolumeStatus.AVAILABLE},
                                     VolumeStatus.UPLOADING, "upload")

        async def export_and_upload() -> None:
            tmp = temp_path_for(self.files.root / f"{image.id}.export")
            try:
                await self.files.export(volume_id, tmp, disk_format)
                await images.upload_from_file(image.id, tmp)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(os.unlink, tmp)

        self._spawn(self._run(volume_id, export_and_upload, VolumeStatus.UPLOADING,
                              VolumeStatus.AVAILABLE, VolumeStatus.AVAILABLE,
                              f"uploaded to image {image.id}"))
        return vol, image

    # ------------------------------------------------------------------ snapshots
    async def create_snapshot(self, auth: AuthContext, body: dict[str, Any]) -> Snapshot:
        volume_id = body.get("volume_id")
        if not isinstance(volume_id, str):
            raise BadRequest("Invalid input received: volume_id is required.")
        async with self._locks[volume_id]:
            vol = self.get(auth, volume_id)
            if vol.status != VolumeStatus.AVAILABLE:
                hint = (" Snapshots of attached volumes are not supported here: detach it "
                        "first." if vol.status == VolumeStatus.IN_USE else "")
                raise Invalid(f"Invalid volume: volume {volume_id} must be available to "
                              f"snapshot (it is {vol.status}).{hint}")
            stamp = now_iso()
            snap = Snapshot(id=str(uuid.uuid4()), volume_id=volume_id,
                            project_id=vol.project_id, size=vol.size,
                            name=_text(body.get("name"), "name"),
                            description=_text(body.get("description"), "description", 65535),
                            metadata=_metadata(body.get("metadata")),
                            created_at=stamp, updated_at=stamp)
            async with self._reserve(vol.project_id, snapshots=1, gigabytes=vol.size) as held:
                await held.store(self.snapshots.save(snap))
        self._spawn(self._snapshot_step(snap.id, self.files.snapshot_create(volume_id, snap.id),
                                        SnapshotStatus.CREATING, SnapshotStatus.AVAILABLE,
                                        SnapshotStatus.ERROR))
        return snap

    async def _snapshot_step(self, snapshot_id: str, work: Awaitable[Any],
                             during: SnapshotStatus, done: SnapshotStatus,
                             failed: SnapshotStatus) -> None:
        error = None
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = _storage_error(exc)
        snap = self.snapshots.get(snapshot_id)
        if snap is None or snap.status != during:
            return
        snap.status = failed if error else done
        snap.last_error = error
        snap.updated_at = now_iso()
        await self.snapshots.save(snap)
        await self.ctx.events.publish("snapshot.state", "snapshot", snap.id, snap.project_id,
                                      f"snapshot {snap.name or snap.id} {snap.status}"
                                      + (f": {error}" if error else ""))

    async def update_snapshot(self, auth: AuthContext, snapshot_id: str,
                              body: dict[str, Any]) -> Snapshot:
        snap = self.get_snapshot(auth, snapshot_id)
        if "name" in body:
            snap.name = _text(body["name"], "name")
        if "description" in body:
            snap.description = _text(body["description"], "description", 65535)
        snap.updated_at = now_iso()
        return await self.snapshots.save(snap)

    async def delete_snapshot(self, auth: AuthContext, snapshot_id: str) -> None:
        snap = self.get_snapshot(auth, snapshot_id)
        async with self._locks[snap.volume_id]:
            snap = self.get_snapshot(auth, snapshot_id)
            if snap.status not in (SnapshotStatus.AVAILABLE, SnapshotStatus.ERROR,
                                   SnapshotStatus.ERROR_DELETING):
                raise Invalid(f"Invalid snapshot: snapshot {snapshot_id} is {snap.status}; "
                              "it must be available or error to be deleted.")
            vol = self.volumes.get(snap.volume_id)
            if vol is not None and vol.status not in DELETABLE | {VolumeStatus.AVAILABLE}:
                raise Invalid(f"Invalid volume: volume {vol.id} is {vol.status}; its "
                              "snapshots can be deleted when it is available.")
            snap.status = SnapshotStatus.DELETING
            await self.snapshots.save(snap)
        self._spawn(self._finish_snapshot_delete(snapshot_id))

    async def _finish_snapshot_delete(self, snapshot_id: str) -> None:
        snap = self.snapshots.get(snapshot_id)
        if snap is None:
            return
        try:
            await self.files.snapshot_delete(snap.volume_id, snapshot_id, missing_ok=True)
        except Exception as exc:
            snap.status, snap.last_error = SnapshotStatus.ERROR_DELETING, _storage_error(exc)
            await self.snapshots.save(snap)
            return
        await self.snapshots.delete(snapshot_id)
        await self.ctx.events.publish("snapshot.deleted", "snapshot", snap.id, snap.project_id,
                                      f"snapshot {snap.name or snap.id} deleted")

    # ------------------------------------------------------------------ the compute seam
    async def volume_for_attach(self, volume_id: str, project_id: str) -> AttachableVolume:
        """Reserve a volume for attaching (available → attaching) and say where its file is.

        Raises NotFound (no such volume in the project) or Conflict (not available). Compute
        then calls mark_attached, or mark_detached to roll back a failed attach.
        """
        async with self._locks[volume_id]:
            vol = self.volumes.get(volume_id)
            if vol is None or vol.project_id != project_id:
                raise NotFound(f"Volume {volume_id} could not be found.")
            if vol.status not in (VolumeStatus.AVAILABLE, VolumeStatus.RESERVED):
                raise Conflict(f"Volume {volume_id} is {vol.status}; only an available volume "
                               "can be attached.")
            target = self.files.disk_target(volume_id)
            vol.status = VolumeStatus.ATTACHING
            vol.updated_at = now_iso()
            await self.volumes.save(vol)
        return AttachableVolume(path=target.path, format=target.format, size_gb=vol.size)

    async def root_volume_for_boot(self, volume_id: str, project_id: str) -> AttachableVolume:
        """Boot from volume: the same reservation as an attach (compute marks it attached)."""
        return await self.volume_for_attach(volume_id, project_id)

    async def mark_attached(self, volume_id: str, instance_id: str, device: str,
                            host_name: str | None = None) -> None:
        await self.attach(None, volume_id, instance_id, device, host_name)

    async def mark_detached(self, volume_id: str, instance_id: str | None = None) -> None:
        """Drop the instance's attachment (all, when None); also rolls back a reservation."""
        try:
            await self.detach(None, volume_id, server_id=instance_id)
        except (NotFound, Invalid):
            pass  # already detached or gone: detaching is idempotent

    async def create_boot_volume(self, *, image_id: str, project_id: str, size_gb: int | None,
                                 name: str = "", timeout: float = 3600.0) -> str:
        """Boot-from-volume with source image: create the volume and wait until available.
        Raises BadRequest (image unusable, size), QuotaExceeded, or MonostackError (build failed)."""
        volume_id = await self.begin_boot_volume(image_id=image_id, project_id=project_id,
                                                 size_gb=size_gb, name=name)
        await self.wait_available(volume_id, timeout)
        return volume_id

    async def begin_boot_volume(self, *, image_id: str, project_id: str, size_gb: int | None,
                                name: str = "") -> str:
        """Record a volume built from an image (status creating) and return its id at once, so
        the caller can record the id durably before waiting (wait_available)."""
        vol = await self.create(service_caller(project_id), {"name": name or None,
                                                             "size": size_gb,
                                                             "imageRef": image_id})
        return vol.id

    async def wait_available(self, volume_id: str, timeout: float = 3600.0) -> None:
        """Wait until a volume being built is available. Raises NotFound (gone),
        MonostackError (its build failed) or ServiceUnavailable (timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            current = self.volumes.get(volume_id)
            if current is None:
                raise NotFound(f"Volume {volume_id} could not be found.")
            if current.status == VolumeStatus.ERROR:
                raise MonostackError(f"volume {volume_id} could not be built: "
                                     f"{current.last_error}")
            if current.status != VolumeStatus.CREATING:
                return
            await asyncio.sleep(0.1)
        raise ServiceUnavailable(f"volume {volume_id} was not built within {timeout} s")

    async def delete_for_project(self, volume_id: str, project_id: str) -> None:
        """Delete a detached volume of the project (a root volume with delete_on_termination).
        Idempotent: a volume already gone is fine."""
        try:
            await self.delete(service_caller(project_id), volume_id)
        except NotFound:
            pass


VOLUME_RESOURCES = ("volumes", "gigabytes", "snapshots")


def _over_quota(resource: str, asked: int, used: int, limit: int) -> QuotaExceeded:
    """Cinder's VolumeLimitExceeded / VolumeSizeExceedsAvailableQuota (413)."""
    return QuotaExceeded(f"Requested {resource} ({asked}) exceeds the quota: {used} of "
                         f"{limit} already used for quota '{resource}'.")


def service_caller(project_id: str) -> AuthContext:
    """The identity a seam call acts as: a member of `project_id`, never admin."""
    return AuthContext(user_id="", user_name="monostack", project_id=project_id,
                       project_name=None, roles=frozenset({"member"}), token_id="")


def _glance_format(qemu_driver: str) -> str:
    return {"vpc": "vhd"}.get(qemu_driver, qemu_driver)
