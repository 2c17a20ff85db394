"""The image component: Glance v2 at /image, and the image seam compute and volumes use."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.component import ApplianceContext, CatalogEntry
from appliance.images.service import ImageService
from appliance.seams import BootImage, ReservedImage


class ImageComponent:
    name = "image"
    catalog = [CatalogEntry(type="image", name="glance", path="/image")]

    def __init__(self, ctx: ApplianceContext, *, images_dir: Path | None = None) -> None:
        self.ctx = ctx
        self.service = ImageService(ctx, Path(images_dir or ctx.config.storage.images_dir))

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()

    async def bootstrap(self, admin_project: Any) -> None:
        """Nothing: images come from uploads (the installer adds the test guest image)."""

    async def settled(self) -> None:
        """Nothing runs on after start()."""

    def health(self) -> str:
        return "ok"

    # -- the seam (compute's ImageSeam, and volumes) -------------------------------------------
    async def boot_source(self, image_id: str, project_id: str) -> BootImage:
        """Local file of an active image the project may use. Raises NotFound / Conflict."""
        return await self.service.boot_source(image_id, project_id)

    async def create_image_from_file(self, *, name: str, project_id: str, path: Path,
                                     disk_format: str,
                                     properties: dict[str, Any] | None = None) -> str:
        """Copy a finished local file into a new private image of the project; its id.
        Verified like an upload (Invalid on a refused image); on failure no image remains."""
        return await self.service.create_image_from_file(
            name=name, project_id=project_id, path=Path(path), disk_format=disk_format,
            properties=properties or {})

    async def reserve_image(self, *, name: str, project_id: str, disk_format: str,
                            container_format: str = "bare", visibility: str = "private",
                            protected: bool = False,
                            properties: dict[str, Any] | None = None) -> ReservedImage:
        """A queued image record (id known at once); fill it with upload_from_file."""
        img = await self.service.reserve_image(
            name=name, project_id=project_id, disk_format=disk_format,
            container_format=container_format, visibility=visibility, protected=protected,
            properties=properties)
        return ReservedImage(id=img.id, name=img.name, disk_format=img.disk_format or "",
                             container_format=img.container_format or "")

    async def upload_from_file(self, image_id: str, path: Path) -> None:
        await self.service.upload_from_file(image_id, Path(path))
