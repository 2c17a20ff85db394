"""Image service: Glance v2 semantics over the BlobStore.

Why the upload path looks like this: an upload is untrusted twice over — the client may vanish
mid-stream, and the bytes may be a hostile image (a qcow2 whose backing file names a host file,
data that is not the declared format …). So the record goes `queued` → `saving`, the bytes
stream into `BlobStore.write_stream` (hashed on the way, invisible until verified by
`storage.inspect.verify_async` against the declared disk_format and the project's size limit),
and only a blob that is complete, fsynced and verified turns the record `active`. Any failure —
a refused image, quota, disk full, a disconnect, a cancelled task — leaves no data and puts the
record back to `queued` (upload again) with `last_error` saying why. A daemon that died while
an upload ran finds the record `saving` at startup and puts it back the same way.

Every change to one image happens under that image's lock, so a progress update, a PATCH and
the end of an upload cannot overwrite each other's fields.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterable, Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from appliance.component import ApplianceContext
from appliance.background import BackgroundTasks
from appliance.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientStorage,
    Invalid,
    NotFound,
    QuotaExceeded,
)
from appliance.identity.policy import AuthContext, allowed
from appliance.images import visibility as vis
from appliance.images.records import (
    CONTAINER_FORMATS,
    CORE_ATTRIBUTES,
    DISK_FORMATS,
    READ_ONLY,
    RESERVED_PREFIX,
    Image,
    ImageMember,
    ImageQuota,
    ImageStatus,
    MemberStatus,
    Visibility,
)
from appliance.quota import QuotaSource, Reservation
from appliance.seams import BootImage
from appliance.state import Repository
from storage import errors as serr
from storage.blobs import BlobInfo, BlobStore, iter_file
from storage.inspect import ImageInfo, qemu_format, verify_async

log = logging.getLogger("monostack.images")

#: Progress is written to the record at most this often (bytes / seconds), not per chunk.
PROGRESS_BYTES = 8 << 20
PROGRESS_SECONDS = 1.0
MAX_NAME = 255
MAX_TAGS = 128
IMPORT_METHODS = ("glance-direct",)


def now_iso() -> str:
    """UTC with microseconds, so listings sorted by time are stable (the API shows seconds)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_id(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise BadRequest(f"{value!r} is not a valid image id (a UUID is required)") from exc


def service_caller(project_id: str) -> AuthContext:
    """The identity a seam call acts as: a member of `project_id`, never admin."""
    return AuthContext(user_id="", user_name="monostack", project_id=project_id,
                       project_name=None, roles=frozenset({"member"}), token_id="")


class ImageService:
    def __init__(self, ctx: ApplianceContext, images_dir: Path) -> None:
        self.ctx = ctx
        self.images: Repository[Image] = Repository(ctx.store, "images", Image)
        self.members: Repository[ImageMember] = Repository(ctx.store, "image_members",
                                                           ImageMember, kind="image member")
        self.quotas: Repository[ImageQuota] = Repository(ctx.store, "image_quotas", ImageQuota)
        self.blobs = BlobStore(images_dir)
        self.staging = BlobStore(Path(images_dir) / "staging")
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._background = BackgroundTasks()
        ctx.quotas.register(QuotaSource(IMAGE_RESOURCES, self.quota_limits, self.quota_usage,
                                        _over_quota))

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.blobs.start()
        await self.staging.start()
        await self.recover()

    async def stop(self) -> None:
        await self._background.cancel_all()

    async def recover(self) -> None:
        """Undo what a crash interrupted: uploads and imports in flight never finished."""
        changed = []
        for img in self.images.list():
            if img.status == ImageStatus.SAVING:
                await self.blobs.delete(img.id)  # published but never recorded active
                await self.staging.delete(img.id)  # (a stage that never recorded `uploading`)
                changed.append(replace(img, status=ImageStatus.QUEUED, progress_bytes=0,
                                       last_error="upload interrupted (daemon restarted)"))
            elif img.status == ImageStatus.IMPORTING:
                await self.blobs.delete(img.id)
                staged = await asyncio.to_thread(self.staging.exists, img.id)
                changed.append(replace(img, status=ImageStatus.UPLOADING if staged
                                       else ImageStatus.QUEUED,
                                       last_error="import interrupted (daemon restarted)"))
            elif img.status == ImageStatus.ACTIVE and not await asyncio.to_thread(
                    self.blobs.exists, img.id):
                changed.append(replace(img, status=ImageStatus.KILLED,
                                       last_error="image data is missing from the store"))
        if changed:
            await self.images.save_all(changed)
            log.warning("recovered interrupted images", extra={"images": [i.id for i in changed]})
        known = {i.id for i in self.images.list()}
        for store in (self.blobs, self.staging):
            for name in await asyncio.to_thread(_blob_names, store.root):
                if name not in known:  # data whose record never became durable
                    await store.delete(name)

    def _spawn(self, coro):
        return self._background.spawn(coro)

    # ------------------------------------------------------------------ reading
    def member_of(self, image_id: str, project_id: str | None) -> ImageMember | None:
        if project_id is None:
            return None
        return self.members.get(ImageMember.key(image_id, project_id))

    def get(self, auth: AuthContext, image_id: str) -> Image:
        """The image if the caller may see it; NotFound otherwise (never reveal existence)."""
        img = self.images.get(image_id)
        if img is None or img.status == ImageStatus.DELETED or not vis.can_see(
                img, auth.project_id, auth.is_admin, self.member_of(image_id, auth.project_id)):
            raise NotFound(f"No image found with ID {image_id}")
        return img

    def visible(self, auth: AuthContext, visibility: str | None,
                member_status: str = "accepted") -> list[Image]:
        """Images in the caller's listing (before filters, sort and paging)."""
        memberships = {m.image_id: m for m in self.members.list(
            lambda m: m.member_id == auth.project_id)}
        return [img for img in self.images.list()
                if img.status != ImageStatus.DELETED
                and vis.listed(img, auth.project_id, auth.is_admin, memberships.get(img.id),
                               visibility, member_status)]

    def _modifiable(self, auth: AuthContext, image_id: str) -> Image:
        img = self.get(auth, image_id)
        if not vis.can_modify(img, auth.project_id, auth.is_admin):
            raise Forbidden(f"You are not permitted to modify image {image_id}.")
        return img

    # ------------------------------------------------------------------ quotas
    def quota_for(self, project_id: str) -> ImageQuota:
        return self.quotas.get(project_id) or ImageQuota(id=project_id)

    def usage(self, project_id: str) -> tuple[int, int]:
        """(image count, bytes stored) of a project."""
        owned = self.images.list(lambda i: i.owner == project_id
                                 and i.status != ImageStatus.DELETED)
        return len(owned), sum(i.size or 0 for i in owned if i.status == ImageStatus.ACTIVE)

    def quota_limits(self, project_id: str) -> dict[str, int]:
        quota = self.quota_for(project_id)
        return {"image_count_total": quota.images, "image_size_total": quota.bytes}

    def quota_usage(self, project_id: str) -> dict[str, int]:
        count, size = self.usage(project_id)
        return {"image_count_total": count, "image_size_total": size}

    async def set_quota(self, project_id: str, **limits: Any) -> ImageQuota:
        quota = self.quota_for(project_id)
        for key, value in limits.items():
            if key not in ("images", "bytes", "max_virtual_size"):
                raise BadRequest(f"unknown image quota {key!r}")
            if not isinstance(value, int) or isinstance(value, bool) or value < -1:
                raise BadRequest(f"image quota {key} must be an integer ≥ -1")
            setattr(quota, key, value)
        return await self.quotas.save(quota)

    async def _bytes_left(self, project_id: str) -> int | None:
        """Bytes the project may still store, uploads in flight deducted (None: unlimited)."""
        return await self.ctx.quotas.headroom(project_id, "image_size_total")

    # ------------------------------------------------------------------ create / change
    async def create(self, auth: AuthContext, body: dict[str, Any]) -> Image:
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        owner = auth.project_id
        if "owner" in body and body["owner"] not in (None, owner):
            if not auth.is_admin:
                raise Forbidden("Only the admin may create images for another project.")
            owner = str(body["owner"])
        if owner is None:
            raise Forbidden("A project-scoped token is required to create images.")
        image_id = _canonical_id(body["id"]) if body.get("id") is not None else str(uuid.uuid4())
        if self.images.get(image_id) is not None:
            raise Conflict(f"Image with identifier {image_id} already exists!")
        stamp = now_iso()
        img = Image(id=image_id, owner=owner, created_at=stamp, updated_at=stamp)
        for key, value in body.items():
            if key in ("id", "owner"):
                continue
            self._set_attribute(auth, img, key, value, creating=True)
        async with self._locks[image_id], self.ctx.quotas.reserve(
                owner, {"image_count_total": 1}) as held:
            await held.store(self.images.save(img))
        await self.ctx.events.publish("image.created", "image", img.id, img.owner,
                                      f"image {img.name or img.id} created")
        return img

    def _set_attribute(self, auth: AuthContext, img: Image, key: str, value: Any,
                       creating: bool = False) -> None:
        """Set one attribute or property on `img` (in memory), refusing what Glance refuses."""
        if key in READ_ONLY or key == "id" or key.startswith(RESERVED_PREFIX):
            raise Forbidden(f"Attribute '{key}' is read-only.")
        if key == "name":
            if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME):
                raise BadRequest(f"Invalid name: must be a string of at most {MAX_NAME} characters")
            img.name = value
        elif key in ("disk_format", "container_format"):
            allowed_values = DISK_FORMATS if key == "disk_format" else CONTAINER_FORMATS
            if value is not None and value not in allowed_values:
                raise BadRequest(f"Invalid value '{value}' for {key}: expected one of "
                                 + ", ".join(allowed_values))
            if not creating and img.status != ImageStatus.QUEUED:
                raise Forbidden(f"Attribute {key} can be only replaced for a queued image.")
            setattr(img, key, value)
        elif key in ("min_disk", "min_ram"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise BadRequest(f"Invalid value for {key}: must be an integer ≥ 0")
            setattr(img, key, value)
        elif key == "visibility":
            try:
                wanted = Visibility(value)
            except ValueError:
                raise BadRequest(f"Invalid visibility value: {value}") from None
            if wanted == Visibility.PUBLIC and not allowed(auth, "image:publicize_image"):
                raise Forbidden("Only the admin may make an image public.")
            if wanted == Visibility.COMMUNITY and not allowed(auth, "image:communitize_image"):
                raise Forbidden("You are not permitted to make an image community.")
            img.visibility = wanted
        elif key in ("protected", "os_hidden"):
            if not isinstance(value, bool):
                raise BadRequest(f"Invalid value for {key}: must be true or false")
            setattr(img, key, value)
        elif key == "tags":
            img.tags = _check_tags(value)
        elif key == "owner":
            if not auth.is_admin:
                raise Forbidden("Attribute 'owner' is reserved for the admin.")
            if not isinstance(value, str) or not value:
                raise BadRequest("owner must be a project id")
            img.owner = value
        else:
            _check_property(key, value)
            img.properties[key] = value

    async def patch(self, auth: AuthContext, image_id: str, ops: Any) -> Image:
        """Apply a JSON patch (openstack-images-v2.1-json-patch, or the 2.0 form) atomically."""
        if not isinstance(ops, list):
            raise BadRequest("A JSON patch must be a list of operations.")
        async with self._locks[image_id]:
            img = self._modifiable(auth, image_id)
            new = replace(img, properties=dict(img.properties), tags=list(img.tags))
            for raw in ops:
                op, key, value = _parse_patch_op(raw)
                self._apply_op(auth, new, op, key, value)
            new.updated_at = now_iso()
            await self.images.save(new)
        return new

    def _apply_op(self, auth: AuthContext, img: Image, op: str, key: str, value: Any) -> None:
        if key in CORE_ATTRIBUTES or key in READ_ONLY:
            if op == "remove":
                raise Forbidden(f"Properties '{key}' cannot be removed.")
            self._set_attribute(auth, img, key, value)
            return
        if op == "replace" and key not in img.properties:
            raise Conflict(f"Property {key} does not exist.")
        if op == "remove":
            if key not in img.properties:
                raise Conflict(f"Property {key} does not exist.")
            if key.startswith(RESERVED_PREFIX):
                raise Forbidden(f"Attribute '{key}' is read-only.")
            del img.properties[key]
            return
        self._set_attribute(auth, img, key, value)

    async def add_tag(self, auth: AuthContext, image_id: str, tag: str) -> None:
        async with self._locks[image_id]:
            img = self._modifiable(auth, image_id)
            if tag not in img.tags:
                img.tags = _check_tags([*img.tags, tag])
                img.updated_at = now_iso()
                await self.images.save(img)

    async def remove_tag(self, auth: AuthContext, image_id: str, tag: str) -> None:
        async with self._locks[image_id]:
            img = self._modifiable(auth, image_id)
            if tag not in img.tags:
                raise NotFound(f"Tag {tag} not found on image {image_id}")
            img.tags.remove(tag)
            img.updated_at = now_iso()
            await self.images.save(img)

    async def delete(self, auth: AuthContext, image_id: str) -> None:
        async with self._locks[image_id]:
            img = self._modifiable(auth, image_id)
            if img.protected:
                raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
            ops = [self.images.delete_op(image_id)]
            ops += [self.members.delete_op(m.id)
                    for m in self.members.list(lambda m: m.image_id == image_id)]
            await self.ctx.store.commit(ops)
        await self.blobs.delete(image_id)
        await self.staging.delete(image_id)
        self._locks.pop(image_id, None)
        await self.ctx.events.publish("image.deleted", "image", image_id, img.owner,
                                      f"image {img.name or image_id} deleted")

    # ------------------------------------------------------------------ data in
    async def upload(self, auth: AuthContext, image_id: str, chunks: AsyncIterable[bytes],
                     expected_size: int | None = None) -> Image:
        """PUT …/file: stream, verify, publish. Raises BadRequest (refused image), Conflict
        (not queued), QuotaExceeded, InsufficientStorage; the image is then `queued` again."""
        async with self._locks[image_id]:
            img = self._modifiable(auth, image_id)
            self._begin_receiving(img, ImageStatus.SAVING, expected_size)
            await self.images.save(img)
        return await self._receive(image_id, chunks, self.blobs, ImageStatus.SAVING,
                                   expected_size)

    def _begin_receiving(self, img: Image, status: ImageStatus, expected_size: int | None) -> None:
        if img.status != ImageStatus.QUEUED:
            raise Conflict(f"Image status transition from {img.status} to {status} "
                           "is not allowed (upload data only to a queued image).")
        if not img.disk_format or not img.container_format:
            raise BadRequest("Properties disk_format, container_format must be set prior "
                             "to saving data.")
        img.status = status
        img.progress_bytes = 0
        img.last_error = None
        img.updated_at = now_iso()

    async def _receive(self, image_id: str, chunks: AsyncIterable[bytes], store: BlobStore,
                       receiving: ImageStatus, expected_size: int | None = None) -> Image:
        """Stream into `store`; the image record must already be in status `receiving`."""
        img = self.images.require(image_id)
        owner, disk_format = img.owner, img.disk_format or ""
        quota = self.quota_for(owner)
        max_virtual = quota.max_virtual_size if quota.max_virtual_size >= 0 else None
        checked: dict[str, ImageInfo] = {}

        async def verify(path: Path, info: BlobInfo) -> None:
            checked["info"] = await verify_async(path, disk_format, max_virtual)

        # Stored bytes are held as they arrive (the whole size at once when it is known), so
        # parallel uploads cannot pass the project's byte quota together; staged data does
        # not count until it is imported.
        held = self.ctx.quotas.reserve(
            owner, {"image_size_total": expected_size or 0} if store is self.blobs else {})
        progress = self._progress_writer(image_id, receiving)

        async def on_progress(size: int) -> None:
            have = held.deltas.get("image_size_total", 0)
            if store is self.blobs and size > have:  # called about every MiB
                await held.grow({"image_size_total": size - have})
            await progress(size)

        try:
            await held
            info = await store.write_stream(
                image_id, chunks, on_progress=on_progress,
                max_bytes=await self._bytes_left(owner) if store is self.staging else None,
                verify=verify if store is self.blobs else None)
            if store is self.blobs and info.size > held.deltas.get("image_size_total", 0):
                await held.grow({"image_size_total": info.size
                                 - held.deltas.get("image_size_total", 0)})
        except BaseException as exc:
            held.release()
            error = _translate_upload_error(exc)
            # Shielded: a cancelled request must still put the record back.
            await asyncio.shield(self._receive_failed(image_id, receiving, str(error)))
            if error is exc:
                raise
            raise error from exc
        try:
            return await self._receive_done(image_id, store, receiving, info,
                                            checked.get("info"), held)
        finally:
            held.release()  # refused (an active image's size committed it already)

    async def _receive_done(self, image_id: str, store: BlobStore, receiving: ImageStatus,
                            info: BlobInfo, checked: ImageInfo | None,
                            held: Reservation) -> Image:
        async with self._locks[image_id]:
            img = self.images.get(image_id)
            if img is None or img.status != receiving:  # deleted while the data arrived
                await store.delete(image_id)
                raise Conflict(f"Image {image_id} was deleted during the upload.")
            img.size = info.size
            img.progress_bytes = info.size
            img.updated_at = now_iso()
            if store is self.blobs:
                assert checked is not None
                img.status = ImageStatus.ACTIVE
                img.checksum = info.md5
                img.os_hash_algo = "sha512"
                img.os_hash_value = info.sha512
                img.virtual_size = checked.virtual_size
            else:
                img.status = ImageStatus.UPLOADING  # staged, waiting for import
            await held.store(self.images.save(img))  # the stored size counts from now
        if img.status == ImageStatus.ACTIVE:
            await self.ctx.events.publish("image.active", "image", image_id, img.owner,
                                          f"image {img.name or image_id} is active",
                                          size=img.size)
        return img

    async def _receive_failed(self, image_id: str, receiving: ImageStatus, why: str,
                              final: ImageStatus = ImageStatus.QUEUED) -> None:
        async with self._locks[image_id]:
            img = self.images.get(image_id)
            if img is None or img.status != receiving:
                return
            img.status = final
            img.progress_bytes = 0
            img.last_error = why
            img.updated_at = now_iso()
            await self.images.save(img)
        await self.ctx.events.publish("image.upload_failed", "image", image_id, img.owner,
                                      f"upload of image {img.name or image_id} failed: {why}")

    def _progress_writer(self, image_id: str, receiving: ImageStatus) -> Callable:
        last = {"bytes": 0, "time": time.monotonic()}

        async def on_progress(size: int) -> None:
            now = time.monotonic()
            if size - last["bytes"] < PROGRESS_BYTES and now - last["time"] < PROGRESS_SECONDS:
                return
            last.update(bytes=size, time=now)
            async with self._locks[image_id]:
                img = self.images.get(image_id)
                if img is not None and img.status == receiving:
                    img.progress_bytes = size
                    await self.images.save(img)

        return on_progress

    # ------------------------------------------------------------------ interoperable import
    async def stage(self, auth: AuthContext, image_id: str, chunks: AsyncIterable[bytes],
                    expected_size: int | None = None) -> Image:
        """PUT …/stage: data kept aside (unverified, invisible) until …/import."""
        async with self._locks[image_id]:
            img = self._modifiable(auth, image_id)
            self._begin_receiving(img, ImageStatus.UPLOADING, expected_size)
            img.status = ImageStatus.SAVING  # while the bytes arrive
            await self.images.save(img)
        return await self._receive(image_id, chunks, self.staging, ImageStatus.SAVING,
                                   expected_size)

    async def import_image(self, auth: AuthContext, image_id: str, body: dict[str, Any]) -> None:
        method = (body.get("method") or {}) if isinstance(body, dict) else {}
        name = method.get("name") if isinstance(method, dict) else None
        if name not in IMPORT_METHODS:
            raise BadRequest(f"Import method {name!r} is not available; "
                             f"supported: {', '.join(IMPORT_METHODS)}")
        async with self._locks[image_id]:
            img = self._modifiable(auth, image_id)
            if img.status != ImageStatus.UPLOADING:
                raise Conflict(f"Image {image_id} has no staged data to import "
                               f"(status {img.status}); PUT it to …/stage first.")
            img.status = ImageStatus.IMPORTING
            img.updated_at = now_iso()
            await self.images.save(img)
        self._spawn(self._run_import(image_id))

    async def _run_import(self, image_id: str) -> None:
        try:
            reader = await self.staging.open_range(image_id)
            async with reader:
                await self._receive(image_id, reader, self.blobs, ImageStatus.IMPORTING,
                                    self.images.require(image_id).size)
        except Exception as exc:
            log.warning("image import failed", extra={"image": image_id, "error": str(exc)})
            # the staged bytes go before the image says it failed: a client that sees
            # `queued` finds nothing kept (it briefly found the staged file under load)
            await self.staging.delete(image_id)
            await self._receive_failed(image_id, ImageStatus.IMPORTING, str(exc))
        finally:
            await self.staging.delete(image_id)

    # ------------------------------------------------------------------ data out
    async def open_data(self, auth: AuthContext, image_id: str, start: int = 0,
                        end: int | None = None):
        """(image, BlobReader over [start, end)) of an active image the caller may see."""
        img = self.get(auth, image_id)
        if img.status == ImageStatus.DEACTIVATED and not auth.is_admin:
            raise Forbidden("The requested image has been deactivated. "
                            "Image data download is forbidden.")
        if img.status != ImageStatus.ACTIVE:
            raise Conflict(f"Image {image_id} has no data (status {img.status}).")
        try:
            return img, await self.blobs.open_range(image_id, start, end)
        except serr.NotFound as exc:
            raise NotFound(f"Data of image {image_id} is missing.") from exc
        except serr.InvalidRange as exc:
            raise BadRequest(str(exc)) from exc

    # ------------------------------------------------------------------ members
    async def add_member(self, auth: AuthContext, image_id: str, member_id: Any) -> ImageMember:
        if not isinstance(member_id, str) or not member_id:
            raise BadRequest("member must be a project id")
        async with self._locks[image_id]:
            img = self._modifiable(auth, image_id)
            if img.visibility != Visibility.SHARED:
                raise Forbidden(f"Image {image_id} is not shared (visibility "
                                f"{img.visibility}): only shared images have members.")
            key = ImageMember.key(image_id, member_id)
            if self.members.get(key) is not None:
                raise Conflict(f"Member {member_id} already exists on image {image_id}.")
            stamp = now_iso()
            member = ImageMember(id=key, image_id=image_id, member_id=member_id,
                                 created_at=stamp, updated_at=stamp)
            await self.members.save(member)
        return member

    def list_members(self, auth: AuthContext, image_id: str) -> list[ImageMember]:
        img = self.get(auth, image_id)
        members = self.members.list(lambda m: m.image_id == image_id)
        if vis.can_modify(img, auth.project_id, auth.is_admin):
            return sorted(members, key=lambda m: m.created_at)
        return [m for m in members if m.member_id == auth.project_id]

    def get_member(self, auth: AuthContext, image_id: str, member_id: str) -> ImageMember:
        for member in self.list_members(auth, image_id):
            if member.member_id == member_id:
                return member
        raise NotFound(f"Member {member_id} not found on image {image_id}")

    async def update_member(self, auth: AuthContext, image_id: str, member_id: str,
                            status: Any) -> ImageMember:
        try:
            wanted = MemberStatus(status)
        except ValueError:
            raise BadRequest(f"Invalid member status {status!r}") from None
        async with self._locks[image_id]:
            member = self.get_member(auth, image_id, member_id)
            if member_id != auth.project_id:
                raise Forbidden("Only the member project itself may accept or reject an image.")
            member.status = wanted
            member.updated_at = now_iso()
            await self.members.save(member)
        return member

    async def remove_member(self, auth: AuthContext, image_id: str, member_id: str) -> None:
        async with self._locks[image_id]:
            self._modifiable(auth, image_id)
            key = ImageMember.key(image_id, member_id)
            if self.members.get(key) is None:
                raise NotFound(f"Member {member_id} not found on image {image_id}")
            await self.members.delete(key)

    # ------------------------------------------------------------------ seams (compute, volumes)
    def _usable(self, image_id: str, project_id: str) -> Image:
        img = self.images.get(image_id)
        if img is None or not vis.can_use(img, project_id, self.member_of(image_id, project_id)):
            raise NotFound(f"Image {image_id} could not be found.")
        if img.status != ImageStatus.ACTIVE:
            raise Conflict(f"Image {image_id} is not active (status {img.status}).")
        return img

    async def boot_source(self, image_id: str, project_id: str) -> BootImage:
        """The local file of an active image the project may use.

        Raises NotFound (no such image, or not visible to the project) or Conflict (not active).
        The path stays valid while the image exists; readers should open it promptly.
        """
        img = self._usable(image_id, project_id)
        path = self.blobs.path(image_id)
        if not await asyncio.to_thread(path.is_file):
            raise Conflict(f"Data of image {image_id} is missing.")
        return BootImage(path=path, disk_format=qemu_format(img.disk_format or "raw"),
                         min_disk=img.min_disk, min_ram=img.min_ram,
                         properties=dict(img.properties), virtual_size=img.virtual_size,
                         name=img.name or "")

    async def reserve_image(self, *, name: str, project_id: str, disk_format: str,
                            container_format: str = "bare", visibility: str = "private",
                            protected: bool = False,
                            properties: dict[str, Any] | None = None) -> Image:
        """A queued image record owned by the project (its data comes via upload_from_file)."""
        body: dict[str, Any] = {"name": name, "disk_format": disk_format,
                                "container_format": container_format,
                                "visibility": visibility, "protected": protected}
        for key, value in (properties or {}).items():
            body[key] = value if isinstance(value, str) or value is None else str(value)
        return await self.create(service_caller(project_id), body)

    async def upload_from_file(self, image_id: str, path: Path) -> Image:
        """Stream a local file into a queued image, verified like any upload. On failure the
        image is `killed` (its id was already handed out) and the error re-raised."""
        size = (await asyncio.to_thread(Path(path).stat)).st_size
        async with self._locks[image_id]:
            img = self.images.require(image_id)
            self._begin_receiving(img, ImageStatus.SAVING, size)
            await self.images.save(img)
        try:
            return await self._receive(image_id, iter_file(path), self.blobs, ImageStatus.SAVING,
                                       size)
        except BaseException as exc:
            await asyncio.shield(self._mark_killed(image_id, str(exc)))
            raise

    async def _mark_killed(self, image_id: str, why: str) -> None:
        async with self._locks[image_id]:
            img = self.images.get(image_id)
            if img is not None and img.status == ImageStatus.QUEUED:
                img.status = ImageStatus.KILLED
                img.last_error = why
                await self.images.save(img)

    async def create_image_from_file(self, *, name: str, project_id: str, path: Path,
                                     disk_format: str, properties: dict[str, Any] | None = None,
                                     container_format: str = "bare") -> str:
        """Register a finished local file as a new private image of the project (server
        snapshots). The file is copied (streamed) and verified like an upload; the caller keeps
        its file. On failure no image remains and the error is raised."""
        img = await self.reserve_image(name=name, project_id=project_id, disk_format=disk_format,
                                       container_format=container_format,
                                       properties=properties)
        try:
            await self.upload_from_file(img.id, path)
        except BaseException:
            await asyncio.shield(self._forget(img.id))
            raise
        return img.id

    async def _forget(self, image_id: str) -> None:
        async with self._locks[image_id]:
            if self.images.get(image_id) is not None:
                await self.images.delete(image_id)
        await self.blobs.delete(image_id)


def _blob_names(root: Path) -> list[str]:
    import os
    import re
    pattern = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    try:
        return [e.name for e in os.scandir(root) if e.is_file() and pattern.match(e.name)]
    except FileNotFoundError:
        return []


def _check_tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) and 0 < len(t) <= 255
                                              for t in value):
        raise BadRequest("tags must be a list of non-empty strings (at most 255 characters)")
    tags = list(dict.fromkeys(value))
    if len(tags) > MAX_TAGS:
        raise QuotaExceeded(f"An image may have at most {MAX_TAGS} tags.")
    return tags


def _check_property(key: str, value: Any) -> None:
    if not key or len(key) > 255:
        raise BadRequest("property names must be 1 to 255 characters")
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"Invalid value for property {key!r}: additional properties "
                         "must be strings")
    if isinstance(value, str) and len(value) > 65535:
        raise BadRequest(f"property {key!r} is too long")


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _parse_patch_op(raw: Any) -> tuple[str, str, Any]:
    """(op, attribute, value) from {"op","path","value"} (v2.1) or {"<op>": path, "value"}."""
    if not isinstance(raw, dict):
        raise BadRequest("Each patch operation must be an object.")
    if "op" in raw:
        op, path = raw.get("op"), raw.get("path")
    else:
        found = [k for k in ("add", "replace", "remove") if k in raw]
        if len(found) != 1:
            raise BadRequest("Unable to find a valid operation in the patch.")
        op, path = found[0], raw[found[0]]
    if op not in ("add", "replace", "remove"):
        raise BadRequest(f"Invalid patch operation {op!r}: expected add, replace or remove.")
    if not isinstance(path, str) or not path.startswith("/") or len(path) < 2:
        raise BadRequest(f"Invalid patch path {path!r}.")
    segments = [_unescape(s) for s in path[1:].split("/")]
    if len(segments) != 1:
        raise BadRequest(f"Nested patch paths are not supported: {path!r}.")
    if op != "remove" and "value" not in raw:
        raise BadRequest(f"Operation {op} on {path} needs a value.")
    return op, segments[0], raw.get("value")


IMAGE_RESOURCES = ("image_count_total", "image_size_total")


def _over_quota(resource: str, asked: int, used: int, limit: int) -> QuotaExceeded:
    if resource == "image_count_total":
        return QuotaExceeded(f"The project has reached its limit of {limit} images.")
    return QuotaExceeded(f"Denying attempt to upload image because it exceeds the quota: "
                         f"{asked} more bytes, {max(0, limit - used)} bytes left.")


def _translate_upload_error(exc: BaseException) -> BaseException:
    """storage errors → appliance errors (400/409/413/507); anything else unchanged."""
    if isinstance(exc, serr.UnsafeImage):
        return Invalid(f"Image data refused: {exc.reason}")
    if isinstance(exc, serr.TooLarge):
        return QuotaExceeded(f"Image upload exceeds the project's storage quota "
                             f"({exc.limit} bytes left).")
    if isinstance(exc, serr.DiskFull):
        return InsufficientStorage("No space left to store the image data.")
    if isinstance(exc, serr.AlreadyExists):
        return Conflict(str(exc))
    return exc
