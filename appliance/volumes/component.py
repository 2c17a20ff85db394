"""The volume component: Cinder v3 at /volume/v3/{project_id}, and the volume seam compute uses."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.component import ApplianceContext, CatalogEntry
from appliance.seams import AttachableVolume, ImageSeam
from appliance.volumes.service import VolumeService

PATH = "/volume/v3/{project_id}"


class VolumeComponent:
    name = "volume"
    catalog = [CatalogEntry(type="volumev3", name="cinderv3", path=PATH),
               CatalogEntry(type="block-storage", name="cinder", path=PATH)]

    def __init__(self, ctx: ApplianceContext, *, images: ImageSeam | None = None,
                 volumes_dir: Path | None = None) -> None:
        self.ctx = ctx
        self.service = VolumeService(ctx, Path(volumes_dir or ctx.config.storage.volumes_dir),
                                     images=images)

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()

    async def bootstrap(self, admin_project: Any) -> None:
        """Nothing: a fresh appliance has no volumes and the default volume type is built in."""

    async def settled(self) -> None:
        """Nothing runs on after start()."""

    def health(self) -> str:
        return "ok"

    # -- the seam (compute's VolumeSeam) -------------------------------------------------------
    async def volume_for_attach(self, volume_id: str, project_id: str) -> AttachableVolume:
        """available → attaching; the file to attach. Raises NotFound, or Conflict when the
        volume is not available. Follow with mark_attached, or mark_detached to roll back."""
        return await self.service.volume_for_attach(volume_id, project_id)

    async def mark_attached(self, volume_id: str, instance_id: str, device: str) -> None:
        """attaching → in-use, with an attachment record for the instance."""
        await self.service.mark_attached(volume_id, instance_id, device)

    async def mark_detached(self, volume_id: str, instance_id: str | None = None) -> None:
        """Drop the instance's attachment (all when None) → available. Idempotent."""
        await self.service.mark_detached(volume_id, instance_id)

    async def begin_detaching(self, volume_id: str) -> None:
        """in-use → detaching (optional: shows the detach in progress)."""
        await self.service.begin_detaching(None, volume_id)

    async def root_volume_for_boot(self, volume_id: str, project_id: str) -> AttachableVolume:
        """Boot from an existing volume: reserved like an attach."""
        return await self.service.root_volume_for_boot(volume_id, project_id)

    async def create_boot_volume(self, *, image_id: str, project_id: str,
                                 size_gb: int | None, name: str = "") -> str:
        """Boot from image onto a new volume: build it and wait until available; its id."""
        return await self.service.create_boot_volume(image_id=image_id, project_id=project_id,
                                                     size_gb=size_gb, name=name)

    async def begin_boot_volume(self, *, image_id: str, project_id: str,
                                size_gb: int | None, name: str = "") -> str:
        """Boot from image onto a new volume, in two steps a crash cannot split badly: the id
        at once (status creating; the caller records it), then wait_available."""
        return await self.service.begin_boot_volume(image_id=image_id, project_id=project_id,
                                                    size_gb=size_gb, name=name)

    async def wait_available(self, volume_id: str, timeout: float = 3600.0) -> None:
        """Wait until a volume being built is no longer creating (MonostackError on error)."""
        await self.service.wait_available(volume_id, timeout)

    async def delete_volume(self, volume_id: str, project_id: str) -> None:
        """Delete a detached volume of the project (root volume, delete_on_termination)."""
        await self.service.delete_for_project(volume_id, project_id)
