"""What the Nova handlers call (Nova's compute.API): every decision about servers, flavors, key
pairs and server groups, so `api/compute/` only parses requests and formats answers.

A request reaches here already shaped (`ServerCreate` and plain arguments: types checked, no
defaults left to guess); what it means — may this project use that flavor, image, volume,
network, group; is it within quota — is decided here, once, and written through the
repositories and the manager's task queue. The other components are the constructor's
(`appliance/seams.py`); any may be None, and asking for what it serves is then a 400.
"""
from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from appliance.compute.hostnames import hostname_of
from appliance.compute.keypairs import fingerprint, generate_keypair
from appliance.compute.manager import ComputeManager
from appliance.compute.records import (
    Flavor,
    Instance,
    KeyPair,
    QuotaSet,
    ServerGroup,
    VolumeAttachment,
)
from appliance.errors import BadRequest, Conflict, Forbidden, NotFound
from appliance.identity.policy import AuthContext
from appliance.quota import Quotas, Reservation
from appliance.seams import ImageSeam, NetworkSeam, VolumeSeam
from appliance.state import Repository

GiB = 1 << 30
#: Nova has no bound; a flavor record with thousands of specs is copied into every server.
MAX_EXTRA_SPECS = 128
GROUP_POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


@dataclass(frozen=True)
class RootVolume:
    """Boot from an existing volume (block_device_mapping_v2 source volume, boot_index 0)."""

    volume_id: Any
    delete_on_termination: bool = False


@dataclass(frozen=True)
class NewRootVolume:
    """Boot from an image copied onto a new volume (source image, destination volume)."""

    image_id: str
    volume_size: Any = None  # GiB as sent; None: the flavor's disk, at least the image
    delete_on_termination: bool = False


@dataclass(frozen=True)
class ServerCreate:
    """A server create request, parsed (shapes checked) but not yet judged."""

    name: str
    flavor_id: str
    image_id: str | None = None
    root_volume: RootVolume | None = None
    new_root_volume: NewRootVolume | None = None
    key_name: str | None = None
    user_data: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: Nova's networks: [] = the project's default, [{"none": True}] = no NIC
    requested_networks: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    min_count: int = 1
    max_count: int = 1
    security_groups: list[str] = field(default_factory=lambda: ["default"])
    group_id: str | None = None
    config_drive: bool = False
    description: str | None = None
    access_ipv4: str = ""
    access_ipv6: str = ""


@dataclass(frozen=True)
class FlavorSpec:
    id: str | None
    name: str
    vcpus: int
    ram: int
    disk: int = 0
    ephemeral: int = 0
    swap: int = 0
    is_public: bool = True
    description: str | None = None
    rxtx_factor: float = 1.0


class ComputeService:
    def __init__(self, manager: ComputeManager, flavors: Repository[Flavor],
                 keypairs: Repository[KeyPair], server_groups: Repository[ServerGroup],
                 quotas: Quotas, *, images: ImageSeam | None = None,
                 volumes: VolumeSeam | None = None, network: NetworkSeam | None = None) -> None:
        self.manager = manager
        self.flavors, self.keypairs, self.server_groups = flavors, keypairs, server_groups
        self.quotas = quotas
        self.images, self.volumes, self.network = images, volumes, network
        # The store makes a write visible once it is durable, so a check-then-save spans an
        # await: two creates of one key pair name both passed the check (the second silently
        # replaced the first, whose private key then matched nothing), and two servers joining
        # one group each saved the group with only themselves added.
        self._names_lock = asyncio.Lock()
        self._groups_lock = asyncio.Lock()

    # -- servers --------------------------------------------------------------------------

    async def create_servers(self, auth: AuthContext, req: ServerCreate,
                             ) -> tuple[list[Instance], str]:
        """Judge and record `max_count` servers (BUILD, with their build tasks); their
        reservation id. Every refusal is a 400/403/409 before anything is kept: a root volume
        reserved here is given back if recording fails."""
        if not auth.project_id:
            raise Forbidden("A project-scoped token is needed to create servers.")
        project_id = auth.project_id
        flavor = self.find_flavor(auth, req.flavor_id, for_request=True)
        if len(req.metadata) > self.manager.quota_limits(project_id)["metadata_items"] >= 0:
            raise Forbidden("Quota exceeded for metadata_items")
        if req.image_id is None and req.root_volume is None and req.new_root_volume is None:
            raise BadRequest("An image (imageRef) or a bootable volume (block_device_mapping_v2 "
                             "with source_type volume and boot_index 0) is required.")
        image_id = req.image_id
        if req.root_volume is None and req.new_root_volume is None:
            await self._check_boot_image(image_id or "", project_id, flavor)
        build_params: dict[str, Any] = {}
        if req.new_root_volume is not None:
            build_params["boot_volume"] = await self._boot_volume_params(
                project_id, req.new_root_volume, flavor)
            image_id = None
        key_data = None
        if req.key_name:
            kp = self.keypairs.get(f"{auth.user_id}/{req.key_name}")
            if kp is None:
                raise BadRequest("Invalid key_name provided.")
            key_data = kp.public_key
        if req.requested_networks and self.network is not None:
            try:  # refused here, as Nova does, not by a build that ends in ERROR
                self.network.check_requested_networks(project_id, req.requested_networks)
            except NotFound as exc:
                raise BadRequest(str(exc)) from exc
        if req.group_id and self.server_groups.get(req.group_id) is None:
            raise BadRequest(f"Invalid server group {req.group_id}")

        attachment = None
        if req.root_volume is not None:
            attachment = await self._reserve_root_volume(project_id, req.root_volume)
            image_id = None
        # the quota is reserved before any instance object is built: a count beyond it costs
        # nothing, and parallel creates cannot pass it together
        held = None
        try:
            held, count = await self._reserve_instances(project_id, flavor, req.min_count,
                                                        req.max_count)
            reservation = "r-" + secrets.token_hex(4)
            instances = []
            for i in range(count):
                display = req.name if count == 1 else f"{req.name}-{i + 1}"
                instances.append(Instance(
                    id=str(uuid.uuid4()), name=display, project_id=project_id,
                    user_id=auth.user_id, flavor=flavor.snapshot(), image_id=image_id,
                    root_volume_id=attachment.volume_id if attachment else None,
                    key_name=req.key_name or None, key_data=key_data,
                    requested_networks=list(req.requested_networks),
                    metadata=dict(req.metadata), tags=list(req.tags),
                    config_drive=req.config_drive, user_data=req.user_data,
                    description=req.description, access_ipv4=req.access_ipv4,
                    access_ipv6=req.access_ipv6, security_groups=list(req.security_groups),
                    volume_attachments=[attachment] if attachment else [],
                    server_group_id=req.group_id, launch_index=i, reservation_id=reservation,
                    hostname=hostname_of(display)))
            await self.manager.create(instances, build_params, held)
        except BaseException:
            if held is not None:
                held.release()
            if attachment is not None and self.volumes is not None:
                # give the reserved root volume back
                await self.volumes.mark_detached(attachment.volume_id)
            raise
        if attachment is not None and self.volumes is not None:
            await self.volumes.mark_attached(attachment.volume_id, instances[0].id,
                                             "/dev/vda")
        if req.group_id:
            async with self._groups_lock:
                group = self.server_groups.require(req.group_id)
                group.members.extend(i.id for i in instances)
                await self.server_groups.save(group)
        return instances, reservation

    async def _reserve_instances(self, project_id: str, flavor: Flavor, min_count: int,
                                 max_count: int) -> tuple[Reservation, int]:
        """The quota for `max_count` servers, or for as many as it allows down to `min_count`
        (Nova's rule: a request whose max the quota refuses still gets what fits, if that is
        at least its min); the refusal names the full request otherwise."""
        try:
            return await self.manager.reserve_instances(project_id, flavor.snapshot(),
                                                        max_count), max_count
        except Forbidden:
            if min_count == max_count:
                raise
            fits = max_count
            for resource, each in (("instances", 1), ("cores", flavor.vcpus), ("ram", flavor.ram)):
                room = await self.quotas.headroom(project_id, resource)
                if room is not None and each > 0:
                    fits = min(fits, room // each)
            if fits < min_count:
                raise
        # a parallel create may take the room meanwhile: then this refusal stands
        return await self.manager.reserve_instances(project_id, flavor.snapshot(), fits), fits

    async def rebuild_server(self, inst: Instance, image_id: str, name: str | None,
                             metadata: dict[str, str] | None) -> Instance:
        """Rebuild onto another image the instance's project may use; the instance after."""
        if self.images is None:
            raise BadRequest("Cannot rebuild from an image: no image service is running.")
        if inst.root_volume_id:
            raise BadRequest("Rebuilding a volume-backed instance is not supported.")
        try:
            await self.images.boot_source(image_id, inst.project_id)
        except NotFound as exc:
            raise BadRequest(f"Image {image_id} could not be found.") from exc
        await self.manager.rebuild(inst.id, image_id, name, metadata)
        return self.manager.instances.require(inst.id)

    async def _check_boot_image(self, image_id: str, project_id: str, flavor: Flavor) -> None:
        if self.images is None:
            raise BadRequest("Cannot boot from an image: no image service is running.")
        try:
            boot_image = await self.images.boot_source(image_id, project_id)
        except NotFound as exc:
            raise BadRequest(f"Image {image_id} could not be found.") from exc
        except Conflict as exc:
            raise BadRequest(f"Image {image_id} is not active: {exc}") from exc
        if boot_image.min_ram and flavor.ram < boot_image.min_ram:
            raise BadRequest("Flavor's memory is too small for requested image.")
        if boot_image.min_disk and flavor.disk and flavor.disk < boot_image.min_disk:
            raise BadRequest("Flavor's disk is too small for requested image.")
        if boot_image.virtual_size and flavor.disk and \
                flavor.disk * GiB < boot_image.virtual_size:
            # the root overlay cannot be smaller than the image (say so now, not as a fault)
            raise BadRequest(f"Flavor's disk is too small for requested image. Flavor disk "
                             f"is {flavor.disk * GiB} bytes, image is "
                             f"{boot_image.virtual_size} bytes.")

    async def _boot_volume_params(self, project_id: str, req: NewRootVolume,
                                  flavor: Flavor) -> dict[str, Any]:
        """Check a source-image → destination-volume root disk now (400s at the API, like
        Nova); the build creates the volume (its id is recorded before it waits for the copy)."""
        if self.volumes is None:
            raise BadRequest("Cannot boot from a new volume: no volume service is running.")
        if self.images is None:
            raise BadRequest("Cannot boot from an image: no image service is running.")
        try:
            img = await self.images.boot_source(req.image_id, project_id)
        except NotFound as exc:
            raise BadRequest(f"Image {req.image_id} could not be found.") from exc
        except Conflict as exc:
            raise BadRequest(f"Image {req.image_id} is not active: {exc}") from exc
        if img.min_ram and flavor.ram < img.min_ram:
            raise BadRequest("Flavor's memory is too small for requested image.")
        needed = max(-(-(img.virtual_size or 0) // GiB), int(img.min_disk or 0), 1)
        size = req.volume_size
        if size is None:
            size = max(int(flavor.disk or 0), needed)
        try:
            size = int(size)
        except (TypeError, ValueError) as exc:
            raise BadRequest("block_device_mapping_v2: volume_size must be an integer") from exc
        if size < needed:
            raise BadRequest(f"Volume size {size} GiB is smaller than the image ({needed} GiB).")
        return {"image_id": req.image_id, "size": size,
                "delete_on_termination": req.delete_on_termination}

    async def _reserve_root_volume(self, project_id: str, req: RootVolume
                                   ) -> VolumeAttachment:
        if self.volumes is None:
            raise BadRequest("Cannot boot from a volume: no volume service is running.")
        vid = req.volume_id
        try:
            vol = await self.volumes.root_volume_for_boot(vid, project_id)
        except NotFound as exc:
            raise BadRequest(f"Volume {vid} could not be found.") from exc
        except Conflict as exc:  # Nova: InvalidVolume → 400
            raise BadRequest(f"Invalid volume: {exc}") from exc
        return VolumeAttachment(id=vid, volume_id=vid, device="/dev/vda", path=str(vol.path),
                                format=vol.format, boot=True,
                                delete_on_termination=bool(req.delete_on_termination))

    # -- flavors --------------------------------------------------------------------------

    @staticmethod
    def may_use_flavor(auth: AuthContext, f: Flavor) -> bool:
        return f.is_public or auth.is_admin or (auth.project_id in f.projects)

    def find_flavor(self, auth: AuthContext, flavor_id: str, *, for_request: bool = False
                    ) -> Flavor:
        """A flavor the caller may use. Unknown or private to others: NotFound, or BadRequest
        when it is named inside a request body (server create, resize), as Nova answers."""
        f = self.flavors.get(flavor_id)
        if f is None or not self.may_use_flavor(auth, f):
            msg = f"Flavor {flavor_id} could not be found."
            raise BadRequest(msg) if for_request else NotFound(msg)
        return f

    async def create_flavor(self, spec: FlavorSpec) -> Flavor:
        fid = str(uuid.uuid4()) if spec.id in (None, "", "auto") else str(spec.id)
        flavor = Flavor(id=fid, name=spec.name.strip(), vcpus=spec.vcpus, ram=spec.ram,
                        disk=spec.disk, ephemeral=spec.ephemeral, swap=spec.swap,
                        is_public=spec.is_public, description=spec.description,
                        rxtx_factor=spec.rxtx_factor)
        async with self._names_lock:  # names unique: checked and saved as one step
            if self.flavors.get(fid) is not None:
                raise Conflict(f"Flavor with ID {fid} already exists.")
            if self.flavors.list(lambda f: f.name == spec.name):
                raise Conflict(f"Flavor with name {spec.name} already exists.")
            await self.flavors.save(flavor)
        return flavor

    async def ensure_flavor(self, flavor: Flavor) -> None:
        """`monostack init`: the flavor, unless one of its id or name exists."""
        if self.flavors.get(flavor.id) is None and not self.flavors.list(
                lambda f, n=flavor.name: f.name == n):
            await self.flavors.save(Flavor(**{**flavor.__dict__, "extra_specs": {},
                                              "projects": []}))

    async def set_flavor_description(self, flavor_id: str, description: Any) -> Flavor:
        f = self.flavors.require(flavor_id)
        f.description = description
        await self.flavors.save(f)
        return f

    async def delete_flavor(self, flavor_id: str) -> None:
        self.flavors.require(flavor_id)
        await self.flavors.delete(flavor_id)

    async def set_extra_specs(self, flavor_id: str, specs: dict[str, str]) -> Flavor:
        f = self.flavors.require(flavor_id)
        new = {**f.extra_specs, **specs}
        if len(new) > MAX_EXTRA_SPECS:
            raise BadRequest(f"Invalid input for field/attribute extra_specs. A flavor holds at "
                             f"most {MAX_EXTRA_SPECS} extra specs.")
        f.extra_specs = new
        await self.flavors.save(f)
        return f

    async def delete_extra_spec(self, flavor_id: str, key: str) -> None:
        f = self.flavors.require(flavor_id)
        if key not in f.extra_specs:
            raise NotFound(f"Flavor {f.id} has no extra specs with key {key}.")
        del f.extra_specs[key]
        await self.flavors.save(f)

    async def add_flavor_access(self, flavor_id: str, project_id: str) -> Flavor:
        f = self.flavors.require(flavor_id)
        if project_id in f.projects:
            raise Conflict(f"Flavor access already exists for flavor {f.id} and project "
                           f"{project_id}")
        f.projects.append(project_id)
        await self.flavors.save(f)
        return f

    async def remove_flavor_access(self, flavor_id: str, project_id: str) -> Flavor:
        f = self.flavors.require(flavor_id)
        if project_id not in f.projects:
            raise NotFound(f"Flavor access not found for {f.id} / {project_id}")
        f.projects.remove(project_id)
        await self.flavors.save(f)
        return f

    # -- key pairs ------------------------------------------------------------------------

    def keypair_owner(self, auth: AuthContext, wanted: str | None) -> str:
        """Whose key pairs a request means: the caller's, or (admins only) `wanted`'s."""
        if wanted and wanted != auth.user_id:
            if not auth.is_admin:
                raise Forbidden("Only an admin may manage another user's key pairs.")
            return wanted
        return auth.user_id

    def find_keypair(self, user_id: str, name: str) -> KeyPair:
        k = self.keypairs.get(f"{user_id}/{name}")
        if k is None:
            raise NotFound(f"Keypair {name} not found for user {user_id}")
        return k

    async def create_keypair(self, auth: AuthContext, name: str, user_id: str | None,
                             public_key: str | None, key_type: str = "ssh",
                             ) -> tuple[KeyPair, str | None]:
        """The new key pair and, when it was generated here, its private key (shown once)."""
        user = user_id or auth.user_id
        if user != auth.user_id and not auth.is_admin:
            raise Forbidden("Only an admin may create key pairs for other users.")
        private = None
        public = public_key.strip() if public_key else None
        if not public:
            public, private = generate_keypair()
        kp = KeyPair(id=f"{user}/{name}", name=name, user_id=user, public_key=public,
                     fingerprint=fingerprint(public), type=key_type)
        async with self._names_lock:
            if self.keypairs.get(kp.id) is not None:
                raise Conflict(f"Key pair '{name}' already exists.")
            limit = self.manager.quota_limits(auth.project_id or "")["key_pairs"]
            if limit >= 0 and len(self.keypairs.list(lambda k: k.user_id == user)) >= limit:
                raise Forbidden("Quota exceeded, too many key pairs.")
            await self.keypairs.save(kp)
        return kp, private

    async def delete_keypair(self, user_id: str, name: str) -> None:
        kp = self.find_keypair(user_id, name)
        await self.keypairs.delete(kp.id)

    # -- quotas ---------------------------------------------------------------------------

    async def set_quota_limits(self, project_id: str, limits: dict[str, int]) -> None:
        """Override some of a project's compute limits (-1: unlimited)."""
        qs = self.manager.quotas.get(project_id) or QuotaSet(id=project_id)
        qs.limits.update(limits)
        await self.manager.quotas.save(qs)

    async def reset_quota_limits(self, project_id: str) -> None:
        """Back to the defaults."""
        if self.manager.quotas.get(project_id):
            await self.manager.quotas.delete(project_id)

    # -- server groups (recorded, not enforced: one host) -----------------------------------

    async def create_server_group(self, auth: AuthContext, name: str, policy: str
                                  ) -> ServerGroup:
        if policy not in GROUP_POLICIES:
            raise BadRequest("server_group needs exactly one policy: affinity, anti-affinity, "
                             "soft-affinity or soft-anti-affinity")
        g = ServerGroup(id=str(uuid.uuid4()), name=name, project_id=auth.project_id or "",
                        user_id=auth.user_id, policy=policy)
        async with self.quotas.reserve(g.project_id, {"server_groups": 1}) as held:
            await held.store(self.server_groups.save(g))
        return g

    def live_members(self, g: ServerGroup) -> list[str]:
        """The group's members that still exist (a deleted server leaves its group)."""
        return [m for m in g.members if self.manager.instances.get(m) is not None]

    async def delete_server_group(self, group_id: str) -> None:
        await self.server_groups.delete(group_id)
