"""Volume files: one qcow2 file per volume, internal qcow2 snapshots, cached image bases.

Layout under ROOT (dirs 0755 so the libvirt-qemu user can traverse them):

    ROOT/<volume_id>.qcow2         a volume; may be an overlay over a base
    ROOT/_base/<image_id>          an image converted once to raw, shared read-only by overlays
    ROOT/.<name>.tmp-<random>      being built (swept at startup)

Why these choices:
- Every new file is built under a temp name and renamed into place, so a crash mid-convert
  never leaves a half-built file under a volume's name.
- Volumes from an image are copy-on-write overlays over a cached base: the first volume pays
  for one conversion, later ones are instant and share the base's blocks. The base is raw
  (no metadata to trust, fastest reads, sparse on disk). Overlays record the base's absolute
  path, so ROOT must not move.
- Snapshots are *internal* qcow2 snapshots (`qemu-img snapshot`): one file per volume, no
  chains to commit on delete, revert is a metadata switch, and deleting the volume takes its
  snapshots with it (Cinder refuses to delete a volume that has snapshots anyway). The cost:
  qemu-img needs the file to itself — qemu's image locking makes it fail cleanly (QemuImgError
  "Failed to get write lock") while a running guest has the volume attached, instead of
  corrupting it. Snapshots of in-use volumes must go through the hypervisor.
- Clones and volumes from snapshots are full, flattened copies (`qemu-img convert`), so they
  are independent of their source and of any base.
- Files are 0644 by default: qemu:///system with dynamic_ownership (the default) chowns a disk
  to libvirt-qemu while a guest runs and restores root afterwards; read access for the base
  keeps backing-chain opens working either way. Pass file_mode=0o600 to be stricter when
  libvirt's dynamic ownership is on.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from storage import qemu_img
from storage.atomic import fsync_dir, remove_stale_temps, temp_path_for
from storage.blobs import check_id
from storage.errors import AlreadyExists, NotFound
from storage.inspect import inspect as inspect_image

VOLUME_FORMAT = "qcow2"
BASE_FORMAT = "raw"
BASE_DIR = "_base"


@dataclass(frozen=True)
class DiskTarget:
    """What compute needs to attach a volume: a host path and the qemu driver type."""

    path: Path
    format: str  # libvirt <driver type=…>


@dataclass(frozen=True)
class VolumeFileInfo:
    volume_id: str
    path: Path
    virtual_size: int
    actual_size: int
    backing_file: str | None
    snapshots: tuple[str, ...]  # internal snapshot names (= snapshot ids)


class VolumeFiles:
    """Volume files under one root. Sizes are in bytes. All methods are async and never block
    the event loop; operations on the same volume are serialised.

    Raises: storage.errors.NotFound (volume/snapshot missing), AlreadyExists (target exists),
    InvalidId (ids must be UUIDs), QemuImgError (qemu-img refused, e.g. file in use), DiskFull.
    """

    def __init__(self, root: str | os.PathLike[str], file_mode: int = 0o644) -> None:
        self.root = Path(root)
        self.base_dir = self.root / BASE_DIR
        self.file_mode = file_mode
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def start(self) -> list[Path]:
        """Create the directories (0755) and sweep temp files left by a crash."""
        def _start() -> list[Path]:
            for d in (self.root, self.base_dir):
                d.mkdir(parents=True, exist_ok=True)
                os.chmod(d, 0o755)
            return remove_stale_temps(self.root) + remove_stale_temps(self.base_dir)
        return await asyncio.to_thread(_start)

    # ------------------------------------------------------------------ paths
    def path(self, volume_id: str) -> Path:
        return self.root / f"{check_id(volume_id)}.{VOLUME_FORMAT}"

    def base_path(self, image_id: str) -> Path:
        return self.base_dir / check_id(image_id)

    def disk_target(self, volume_id: str) -> DiskTarget:
        """Path and driver type for compute's disk XML (libvirt follows the backing chain)."""
        path = self.path(volume_id)
        if not path.exists():
            raise NotFound(f"volume {volume_id} has no file")
        return DiskTarget(path=path, format=VOLUME_FORMAT)

    def exists(self, volume_id: str) -> bool:
        return self.path(volume_id).exists()

    def _require(self, volume_id: str) -> Path:
        path = self.path(volume_id)
        if not path.exists():
            raise NotFound(f"volume {volume_id} has no file")
        return path

    # ------------------------------------------------------------------ building files
    async def _build(self, final: Path, build) -> None:  # build: async (tmp: Path) -> None
        """Run `build(tmp)` into a temp file beside `final`, then make it durable and visible."""
        if final.exists():
            raise AlreadyExists(f"{final.name} already exists")
        tmp = temp_path_for(final)
        try:
            await build(tmp)
            await asyncio.to_thread(self._seal, tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _seal(self, tmp: Path, final: Path) -> None:
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, self.file_mode)
        try:
            os.link(tmp, final)  # never replaces an existing file
        except FileExistsError:
            raise AlreadyExists(f"{final.name} already exists") from None
        os.unlink(tmp)
        fsync_dir(final.parent)

    async def create_empty(self, volume_id: str, size: int) -> VolumeFileInfo:
        _check_size(size)
        async with self._locks[volume_id]:
            await self._build(
                self.path(volume_id), lambda tmp: qemu_img.create(tmp, VOLUME_FORMAT, size)
            )
        return await self.info(volume_id)

    async def ensure_base(self, image_id: str, image_path: str | os.PathLike[str], image_fmt: str) -> Path:
        """Convert an (already verified) image to a cached raw base once; return its path.

        image_fmt is the qemu driver name of the image (storage.inspect.qemu_format).
        """
        async with self._locks[f"base:{check_id(image_id)}"]:
            return await self._ensure_base_locked(image_id, image_path, image_fmt)

    async def _ensure_base_locked(self, image_id: str, image_path, image_fmt: str) -> Path:
        base = self.base_path(image_id)
        if not base.exists():
            # qemu must open the image as its declared format first (an image stored before
            # uploads were opened by qemu may hold tables qemu refuses): QemuImgError says
            # why, and nothing is copied
            await qemu_img.info(image_path, image_fmt)
            await self._build(
                base, lambda tmp: qemu_img.convert(image_path, image_fmt, tmp, BASE_FORMAT)
            )
        return base

    async def create_from_image(
        self, volume_id: str, image_id: str, image_path: str | os.PathLike[str], image_fmt: str,
        size: int,
    ) -> VolumeFileInfo:
        """A copy-on-write qcow2 overlay over the image's cached base, `size` bytes.

        Raises ValueError if `size` is smaller than the image's virtual size.
        """
        _check_size(size)
        final = self.path(volume_id)
        # Holding the base's lock until the overlay exists keeps prune_bases from removing it.
        async with self._locks[f"base:{check_id(image_id)}"], self._locks[volume_id]:
            base = await self._ensure_base_locked(image_id, image_path, image_fmt)
            base_size = (await asyncio.to_thread(os.stat, base)).st_size
            if size < base_size:
                raise ValueError(
                    f"volume size {size} is smaller than the image ({base_size} bytes)"
                )
            await self._build(
                final, lambda tmp: qemu_img.create_overlay(tmp, base, BASE_FORMAT, size)
            )
        return await self.info(volume_id)

    async def clone(self, volume_id: str, source_volume_id: str, size: int | None = None) -> VolumeFileInfo:
        """A full, independent copy of another volume's current state (flattened)."""
        src = self._require(source_volume_id)
        async with self._locks[source_volume_id]:
            await self._build(
                self.path(volume_id),
                lambda tmp: qemu_img.convert(src, VOLUME_FORMAT, tmp, VOLUME_FORMAT),
            )
        if size is not None:
            await self._grow_to(volume_id, size)
        return await self.info(volume_id)

    async def create_from_snapshot(
        self, volume_id: str, source_volume_id: str, snapshot_id: str, size: int | None = None
    ) -> VolumeFileInfo:
        """A full, independent copy of a snapshot of another volume (flattened)."""
        src = self._require(source_volume_id)
        name = check_id(snapshot_id)
        async with self._locks[source_volume_id]:
            await self._require_snapshot(source_volume_id, name)
            await self._build(
                self.path(volume_id),
                lambda tmp: qemu_img.convert(src, VOLUME_FORMAT, tmp, VOLUME_FORMAT, snapshot=name),
            )
        if size is not None:
            await self._grow_to(volume_id, size)
        return await self.info(volume_id)

    async def export(
        self, volume_id: str, dst: str | os.PathLike[str], dst_fmt: str = "qcow2"
    ) -> None:
        """Write a flattened, self-contained copy of the volume to `dst` (upload-to-image)."""
        src = self._require(volume_id)
        async with self._locks[volume_id]:
            await qemu_img.convert(src, VOLUME_FORMAT, dst, dst_fmt)

    # ------------------------------------------------------------------ changing files
    async def extend(self, volume_id: str, new_size: int) -> VolumeFileInfo:
        """Grow a detached volume. Raises ValueError when new_size is not larger."""
        await self._grow_to(volume_id, new_size, strictly=True)
        return await self.info(volume_id)

    async def _grow_to(self, volume_id: str, size: int, strictly: bool = False) -> None:
        _check_size(size)
        path = self._require(volume_id)
        async with self._locks[volume_id]:
            current = (await qemu_img.info(path, VOLUME_FORMAT)).virtual_size
            if size < current or (strictly and size == current):
                raise ValueError(f"new size {size} must be larger than the current {current}")
            if size != current:
                await qemu_img.resize(path, VOLUME_FORMAT, size)

    async def snapshot_create(self, volume_id: str, snapshot_id: str) -> None:
        """Internal qcow2 snapshot named by the snapshot id. The volume must be detached."""
        path = self._require(volume_id)
        name = check_id(snapshot_id)
        async with self._locks[volume_id]:
            if name in await self._snapshot_names(path):
                raise AlreadyExists(f"snapshot {snapshot_id} already exists")
            await qemu_img.snapshot_create(path, name)

    async def snapshot_delete(self, volume_id: str, snapshot_id: str, missing_ok: bool = True) -> bool:
        path = self.path(volume_id)
        name = check_id(snapshot_id)
        if not path.exists():
            if missing_ok:
                return False
            raise NotFound(f"volume {volume_id} has no file")
        async with self._locks[volume_id]:
            if name not in await self._snapshot_names(path):
                if missing_ok:
                    return False
                raise NotFound(f"snapshot {snapshot_id} not found")
            await qemu_img.snapshot_delete(path, name)
            return True

    async def snapshot_revert(self, volume_id: str, snapshot_id: str) -> VolumeFileInfo:
        """Make the volume's content what it was at the snapshot (size included)."""
        path = self._require(volume_id)
        name = check_id(snapshot_id)
        async with self._locks[volume_id]:
            await self._require_snapshot(volume_id, name)
            await qemu_img.snapshot_apply(path, name)
        return await self.info(volume_id)

    async def snapshots(self, volume_id: str) -> tuple[str, ...]:
        return await self._snapshot_names(self._require(volume_id))

    async def _snapshot_names(self, path: Path) -> tuple[str, ...]:
        return tuple(s.name for s in await qemu_img.snapshot_list(path))

    async def _require_snapshot(self, volume_id: str, name: str) -> None:
        if name not in await self._snapshot_names(self._require(volume_id)):
            raise NotFound(f"snapshot {name} of volume {volume_id} not found")

    async def delete(self, volume_id: str, missing_ok: bool = True) -> bool:
        """Remove the volume file (and with it its internal snapshots)."""
        path = self.path(volume_id)
        async with self._locks[volume_id]:
            def _delete() -> bool:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    if missing_ok:
                        return False
                    raise NotFound(f"volume {volume_id} has no file") from None
                fsync_dir(self.root)
                return True
            deleted = await asyncio.to_thread(_delete)
        self._locks.pop(volume_id, None)
        return deleted

    # ------------------------------------------------------------------ reading
    async def info(self, volume_id: str) -> VolumeFileInfo:
        path = self._require(volume_id)
        qi = await qemu_img.info(path, VOLUME_FORMAT, force_share=True)
        return VolumeFileInfo(
            volume_id=volume_id,
            path=path,
            virtual_size=qi.virtual_size,
            actual_size=qi.actual_size,
            backing_file=qi.backing_file,
            snapshots=tuple(s.name for s in qi.snapshots),
        )

    async def bases_in_use(self) -> set[str]:
        """Image ids whose base some volume still overlays (read from qcow2 headers)."""
        def _scan() -> set[str]:
            used = set()
            for entry in os.scandir(self.root):
                if not entry.name.endswith(f".{VOLUME_FORMAT}") or entry.name.startswith("."):
                    continue
                with contextlib.suppress(OSError):
                    backing = inspect_image(entry.path).backing_file
                    if backing and Path(backing).parent == self.base_dir:
                        used.add(Path(backing).name)
            return used
        return await asyncio.to_thread(_scan)

    async def prune_bases(self, keep: set[str] = frozenset()) -> list[str]:
        """Delete cached bases no volume overlays (except `keep`); return the removed image ids."""
        used = await self.bases_in_use() | set(keep)
        removed = []
        for entry in await asyncio.to_thread(lambda: list(os.scandir(self.base_dir))):
            if entry.name.startswith(".") or entry.name in used:
                continue
            async with self._locks[f"base:{entry.name}"]:
                if entry.name in await self.bases_in_use():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(os.unlink, entry.path)
                    removed.append(entry.name)
        if removed:
            await asyncio.to_thread(fsync_dir, self.base_dir)
        return removed


def _check_size(size: int) -> None:
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive number of bytes, not {size!r}")
