"""A stand-in image component for compute tests until the real one is merged.

Implements the compute ImageSeam (boot_source, create_image_from_file) over a directory of
files, and just enough Glance v2 (discovery, list, show) for `openstack server create --image`
and `server list`. Registered in tests via the component spec
"tests.api.compute.fakes:FakeImageComponent".
"""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.api.util import auth_of, ctx_of, public
from appliance.component import ApplianceContext, CatalogEntry
from appliance.compute.seams import BootImage
from appliance.errors import NotFound


@dataclass
class FakeImage:
    id: str
    name: str
    path: Path
    disk_format: str
    owner: str | None
    properties: dict[str, Any] = field(default_factory=dict)
    min_disk: int = 0
    min_ram: int = 0
    public: bool = True


class FakeImageComponent:
    name = "image"
    catalog = [CatalogEntry(type="image", name="glance", path="/image")]

    def __init__(self, ctx: ApplianceContext, **options: Any) -> None:
        self.ctx = ctx
        self.dir = Path(ctx.config.storage.images_dir)
        self.images: dict[str, FakeImage] = {}

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        base = self.dir / "cirros-fake.qcow2"
        if not base.exists():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"],
                           check=True)
        self.add("cirros", base, "qcow2", image_id="0c0ffee0-0000-4000-8000-000000000001")

    async def stop(self) -> None:
        pass

    def add(self, name: str, path: Path, disk_format: str, image_id: str | None = None,
            **kw: Any) -> FakeImage:
        img = FakeImage(id=image_id or str(uuid.uuid4()), name=name, path=Path(path),
                        disk_format=disk_format, owner=None, **kw)
        self.images[img.id] = img
        return img

    # -- the compute seam ---------------------------------------------------------------
    async def boot_source(self, image_id: str, project_id: str) -> BootImage:
        img = self.images.get(image_id)
        if img is None or not (img.public or img.owner == project_id):
            raise NotFound(f"image {image_id} not found")
        return BootImage(path=img.path, disk_format=img.disk_format, min_disk=img.min_disk,
                         min_ram=img.min_ram, properties=dict(img.properties), name=img.name)

    async def create_image_from_file(self, *, name: str, project_id: str, path: Path,
                                     disk_format: str, properties: dict[str, Any]) -> str:
        image_id = str(uuid.uuid4())
        dest = self.dir / f"{image_id}.{disk_format}"
        await asyncio.to_thread(shutil.copyfile, path, dest)
        img = self.add(name, dest, disk_format, image_id=image_id, properties=properties)
        img.owner, img.public = project_id, False
        return image_id

    # -- just enough Glance -----------------------------------------------------------------
    def _view(self, request: web.Request, img: FakeImage) -> dict[str, Any]:
        return {"id": img.id, "name": img.name, "status": "active",
                "disk_format": img.disk_format, "container_format": "bare",
                "visibility": "public" if img.public else "private", "owner": img.owner,
                "min_disk": img.min_disk, "min_ram": img.min_ram, "size": img.path.stat().st_size,
                "tags": [], "protected": False, "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z", **img.properties}

    def _visible(self, request: web.Request) -> list[FakeImage]:
        auth = auth_of(request)
        return [i for i in self.images.values()
                if i.public or auth.is_admin or i.owner == auth.project_id]

    def routes(self) -> list[web.RouteDef]:
        @public
        async def versions(request: web.Request) -> web.Response:
            base = ctx_of(request).config.api.base_url
            return web.json_response({"versions": [{"id": "v2.16", "status": "CURRENT",
                                                    "links": [{"rel": "self",
                                                               "href": f"{base}/image/v2/"}]}]})

        async def list_images(request: web.Request) -> web.Response:
            items = self._visible(request)
            if "name" in request.query:
                items = [i for i in items if i.name == request.query["name"]]
            if request.query.get("id", "").startswith("in:"):
                ids = set(request.query["id"][3:].split(","))
                items = [i for i in items if i.id in ids]
            return web.json_response({"images": [self._view(request, i) for i in items]})

        async def show_image(request: web.Request) -> web.Response:
            img = self.images.get(request.match_info["id"])
            if img is None or img not in self._visible(request):
                raise NotFound("image not found")
            return web.json_response(self._view(request, img))

        return [web.get("/image", versions), web.get("/image/", versions),
                web.get("/image/v2/images", list_images),
                web.get("/image/v2/images/{id}", show_image)]


FAKE_IMAGE_ID = "0c0ffee0-0000-4000-8000-000000000001"
COMPONENTS = ["tests.api.compute.fakes:FakeImageComponent",
              "appliance.compute.component:ComputeComponent"]
