"""The TUI's view of the cloud: OpenStack calls by name, typed records back.

One adapter over `appliance.client.MonostackClient` (the only door into the daemon), in the
spirit of Harlequin's adapters: screens ask `cloud.servers()` and never build URLs. Paths are
exactly the ones the real OpenStack clients use (/compute/v2.1/servers/detail,
/image/v2/images, /volume/v3/{project_id}/volumes/detail, /network/v2.0/…,
/swift/v1/AUTH_{project_id}, /identity/v3/…).

Every method may raise an `appliance.errors.MonostackError` subclass carrying the OpenStack
error text; `ServiceMissing` (a NotFound) means the service is not in the token catalog, so a
screen can show its "not available" state instead of an error.
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from appliance.client import MonostackClient, Session
from appliance.errors import MonostackError, NotFound, ServiceUnavailable
from tui.clock import parse_iso

#: Catalog types that stand for each service the screens need.
SERVICE_TYPES: dict[str, tuple[str, ...]] = {
    "compute": ("compute",),
    "image": ("image",),
    "volume": ("volumev3", "block-storage", "volume"),
    "network": ("network",),
    "object": ("object-store",),
    "identity": ("identity",),
}

SERVICE_LABELS = {"compute": "Compute (Nova)", "image": "Image (Glance)",
                  "volume": "Block storage (Cinder)", "network": "Networking (Neutron)",
                  "object": "Object storage (Swift)", "identity": "Identity (Keystone)"}


class ServiceMissing(NotFound):
    """The service is not in this token's catalog: the component is not installed or down."""

    title = "Service not available"


def unavailable(exc: BaseException) -> bool:
    """Does this error mean 'the service is not there' rather than 'the call failed'?"""
    return isinstance(exc, (ServiceMissing, ServiceUnavailable)) or (
        isinstance(exc, NotFound) and "not available" in str(exc).lower())


# -- records ------------------------------------------------------------------------------------

def _percent(value: object) -> int:
    """A server body's `progress`, 0–100; anything else (absent, null, junk) is 0."""
    try:
        return max(0, min(100, int(value)))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


@dataclass
class Server:
    id: str
    name: str
    status: str
    task_state: str | None
    power_state: int | None
    flavor: str
    image: str
    addresses: list[str]
    networks: list[str]
    security_groups: list[str]
    key_name: str | None
    locked: bool
    fault: str
    host: str
    created: str
    volumes: list[str]
    #: Nova's `progress` (0–100) of the running action, where the daemon knows it
    progress: int = 0
    raw: dict = field(repr=False, default_factory=dict)

    @classmethod
    def from_api(cls, s: dict, flavors: dict[str, str] | None = None,
                 images: dict[str, str] | None = None) -> "Server":
        flavor = s.get("flavor") or {}
        flavor_name = flavor.get("original_name") or (flavors or {}).get(flavor.get("id", ""), "") \
            or flavor.get("id", "")
        image = s.get("image") or {}
        if isinstance(image, dict) and image.get("id"):
            image_name = (images or {}).get(image["id"], image.get("name") or image["id"][:8])
        else:
            image_name = "(volume)"
        addrs: list[str] = []
        nets: list[str] = []
        for net, items in (s.get("addresses") or {}).items():
            nets.append(net)
            for a in items or []:
                addrs.append(str(a.get("addr")))
        fault = s.get("fault") or {}
        return cls(
            id=s["id"], name=s.get("name") or "", status=(s.get("status") or "UNKNOWN").upper(),
            task_state=s.get("OS-EXT-STS:task_state"), power_state=s.get("OS-EXT-STS:power_state"),
            flavor=flavor_name, image=image_name, addresses=addrs, networks=nets,
            security_groups=[g.get("name", "") for g in s.get("security_groups") or []],
            key_name=s.get("key_name"), locked=bool(s.get("locked")),
            fault=(fault.get("message") or "") if isinstance(fault, dict) else str(fault),
            host=s.get("OS-EXT-SRV-ATTR:host") or "", created=s.get("created") or "",
            volumes=[v.get("id", "") for v in s.get("os-extended-volumes:volumes_attached") or []],
            progress=_percent(s.get("progress")), raw=s)


@dataclass
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int


@dataclass
class Image:
    id: str
    name: str
    status: str
    size: int | None
    disk_format: str
    visibility: str
    owner: str
    protected: bool
    properties: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, i: dict) -> "Image":
        known = {"id", "name", "status", "size", "disk_format", "visibility", "owner",
                 "protected", "container_format", "checksum", "created_at", "updated_at",
                 "file", "schema", "self", "tags", "virtual_size", "min_disk", "min_ram",
                 "os_hash_algo", "os_hash_value", "locations", "direct_url"}
        return cls(id=i["id"], name=i.get("name") or "", status=i.get("status") or "",
                   size=i.get("size"), disk_format=i.get("disk_format") or "",
                   visibility=i.get("visibility") or "", owner=i.get("owner") or "",
                   protected=bool(i.get("protected")),
                   properties={k: v for k, v in i.items() if k not in known})


@dataclass
class Volume:
    id: str
    name: str
    status: str
    size: int
    bootable: bool
    attached_to: list[str]
    devices: list[str]
    image: str

    @classmethod
    def from_api(cls, v: dict) -> "Volume":
        att = v.get("attachments") or []
        meta = v.get("volume_image_metadata") or {}
        return cls(id=v["id"], name=v.get("name") or "", status=v.get("status") or "",
                   size=int(v.get("size") or 0), bootable=str(v.get("bootable")).lower() == "true",
                   attached_to=[a.get("server_id", "") for a in att],
                   devices=[a.get("device") or "" for a in att],
                   image=meta.get("image_name") or "")


@dataclass
class Snapshot:
    id: str
    name: str
    status: str
    size: int
    volume_id: str


@dataclass
class Project:
    id: str
    name: str
    enabled: bool
    description: str


@dataclass
class User:
    id: str
    name: str
    enabled: bool
    email: str
    default_project_id: str | None


@dataclass
class Role:
    id: str
    name: str


@dataclass
class Assignment:
    user: str
    project: str
    role: str
    user_id: str
    project_id: str
    role_id: str


@dataclass
class CloudEvent:
    id: str
    seq: int
    time: float
    kind: str
    resource_type: str
    resource_id: str
    project_id: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, e: dict) -> "CloudEvent":
        return cls(id=e.get("id", ""), seq=int(e.get("seq") or 0), time=float(e.get("time") or 0),
                   kind=e.get("kind") or "", resource_type=e.get("resource_type") or "",
                   resource_id=e.get("resource_id") or "", project_id=e.get("project_id"),
                   message=e.get("message") or "", data=e.get("data") or {})

    @property
    def failed(self) -> bool:
        text = f"{self.kind} {self.data.get('status', '')}".lower()
        return any(w in text for w in ("fault", "error", "fail"))

    @property
    def resource_name(self) -> str:
        return str(self.data.get("name") or self.resource_type)


@dataclass
class ActionStep:
    """One step of an instance action (Nova's instance action event)."""

    event: str
    start_time: float | None
    finish_time: float | None
    result: str | None  # "Success", "Error", or None while the step runs
    details: str
    traceback: str  # admins only, as Nova; "" otherwise

    @classmethod
    def from_api(cls, e: dict) -> "ActionStep":
        return cls(event=e.get("event") or "", start_time=parse_iso(e.get("start_time")),
                   finish_time=parse_iso(e.get("finish_time")), result=e.get("result"),
                   details=str(e.get("details") or ""), traceback=str(e.get("traceback") or ""))


@dataclass
class ServerAction:
    """What was asked of a server, by whom, and how it ended (os-instance-actions)."""

    request_id: str
    action: str
    start_time: float | None
    user_id: str
    project_id: str
    message: str
    steps: list[ActionStep] = field(default_factory=list)

    @classmethod
    def from_api(cls, a: dict) -> "ServerAction":
        return cls(request_id=a.get("request_id") or "", action=a.get("action") or "",
                   start_time=parse_iso(a.get("start_time")), user_id=a.get("user_id") or "",
                   project_id=a.get("project_id") or "", message=str(a.get("message") or ""),
                   steps=[ActionStep.from_api(e) for e in a.get("events") or []])

    @property
    def failed_step(self) -> ActionStep | None:
        return next((e for e in self.steps if (e.result or "").lower() == "error"), None)

    @property
    def result(self) -> str:
        """Nova's list says only 'Error' in message; the steps say running or done."""
        if self.failed_step is not None or self.message.lower() == "error":
            return "Error"
        if self.steps and all(e.finish_time for e in self.steps):
            return "Success"
        return "running" if self.steps else "—"


@dataclass
class AuditRecord:
    """One CADF event of the audit trail (GET /monostack/audit)."""

    id: str
    time: float | None
    action: str
    outcome: str
    status: str
    user_id: str
    user_name: str
    project_id: str
    source: str
    service: str
    method: str
    path: str
    request_id: str

    @classmethod
    def from_api(cls, e: dict) -> "AuditRecord":
        init = e.get("initiator") or {}
        reason = e.get("reason") or {}
        observer = e.get("observer") or {}
        service = str(observer.get("typeURI") or "")
        return cls(id=e.get("id") or "", time=parse_iso(e.get("eventTime")),
                   action=e.get("action") or "", outcome=e.get("outcome") or "",
                   status=str(reason.get("reasonCode") or ""),
                   user_id=init.get("id") or "", user_name=init.get("name") or "",
                   project_id=init.get("project_id") or "",
                   source=(init.get("host") or {}).get("address") or "",
                   service=service.removeprefix("service/"), method=e.get("method") or "",
                   path=e.get("requestPath") or "", request_id=e.get("request_id") or "")

    @property
    def who(self) -> str:
        return self.user_name or ("—" if self.user_id in ("", "unknown") else self.user_id)


@dataclass
class MetricsSample:
    """The numbers the overview plots, read from the daemon's own `GET /metrics` (so the
    console and Prometheus never disagree): requests answered so far, guests by state."""

    api_requests: float
    guests: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_exposition(cls, text: str) -> "MetricsSample":
        from prometheus_client.parser import text_string_to_metric_families
        requests = 0.0
        guests: dict[str, int] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "monostack_api_requests_total":
                    requests += sample.value
                elif sample.name == "monostack_guests":
                    state = sample.labels.get("vm_state", "")
                    guests[state] = guests.get(state, 0) + int(sample.value)
        return cls(api_requests=requests, guests=guests)


@dataclass
class Hypervisor:
    hostname: str
    type: str
    vcpus: int
    vcpu_limit: float
    vcpus_used: int
    memory_mb: int
    memory_mb_used: int
    local_gb: int
    local_gb_used: int
    running_vms: int
    cpu_ratio: float
    ram_ratio: float
    disk_ratio: float
    cpu_percent: float | None
    id: str = ""

    @classmethod
    def from_api(cls, h: dict) -> "Hypervisor":
        def num(key: str, default: float = 0) -> float:
            try:
                return float(h.get(key) if h.get(key) is not None else default)
            except (TypeError, ValueError):
                return default
        vcpus = int(num("vcpus"))
        topo = (h.get("cpu_info") or {}).get("topology") if isinstance(h.get("cpu_info"), dict) \
            else None
        physical = 0
        if isinstance(topo, dict):
            physical = int(topo.get("cores") or 0) * int(topo.get("sockets") or 1) \
                * int(topo.get("threads") or 1)
        if h.get("cpu_allocation_ratio") is not None:
            cpu_ratio = num("cpu_allocation_ratio", 1.0)
            vcpu_limit = vcpus * cpu_ratio  # Nova: vcpus are physical, the ratio multiplies
        else:
            vcpu_limit = float(vcpus)  # monostack reports the limit; derive the ratio
            cpu_ratio = vcpus / physical if physical else 1.0
        return cls(hostname=h.get("hypervisor_hostname") or h.get("service", {}).get("host", "")
                   or "host", type=h.get("hypervisor_type") or "",
                   vcpus=vcpus, vcpu_limit=vcpu_limit, vcpus_used=int(num("vcpus_used")),
                   memory_mb=int(num("memory_mb")), memory_mb_used=int(num("memory_mb_used")),
                   local_gb=int(num("local_gb")), local_gb_used=int(num("local_gb_used")),
                   running_vms=int(num("running_vms")),
                   cpu_ratio=cpu_ratio,
                   ram_ratio=num("ram_allocation_ratio", 1.0),
                   disk_ratio=num("disk_allocation_ratio", 1.0),
                   cpu_percent=(num("cpu_usage_percent") if h.get("cpu_usage_percent") is not None
                                else None),
                   id=str(h.get("id") or ""))


@dataclass
class HostUsage:
    """Live host load (GET os-hypervisors/{id}/monostack-usage): what the sparklines draw."""

    cpu_percent: float | None
    memory_mb: int
    memory_used_mb: int | None

    @property
    def memory_percent(self) -> float | None:
        if self.memory_used_mb is None or not self.memory_mb:
            return None
        return 100.0 * self.memory_used_mb / self.memory_mb


@dataclass
class ServerStats:
    """One sample of a server's counters (Nova diagnostics, 2.48 shape): cumulative CPU time,
    disk and network bytes; memory in use now."""

    cpu_time_ns: int
    memory_used_mb: int
    memory_max_mb: int
    disk_bytes: int
    net_bytes: int

    @classmethod
    def from_api(cls, d: dict) -> "ServerStats":
        def total(items: list | None, *keys: str) -> int:
            return sum(int(i.get(k) or 0) for i in items or [] for k in keys)
        mem = d.get("memory_details") or {}
        return cls(cpu_time_ns=total(d.get("cpu_details"), "time"),
                   memory_used_mb=int(mem.get("used") or 0),
                   memory_max_mb=int(mem.get("maximum") or 0),
                   disk_bytes=total(d.get("disk_details"), "read_bytes", "write_bytes"),
                   net_bytes=total(d.get("nic_details"), "rx_octets", "tx_octets"))


@dataclass
class ObjectEntry:
    """One row of a container listing: an object, or a pseudo-folder (`subdir`)."""

    name: str
    is_folder: bool
    bytes: int = 0
    content_type: str = ""
    last_modified: str = ""


ProgressCallback = Callable[[int], None]


async def file_chunks(path: str, progress: ProgressCallback | None = None,
                      chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
    """Read a local file in chunks for a streaming upload, reporting bytes sent so far."""
    import asyncio
    sent = 0
    with open(path, "rb") as fh:
        while True:
            chunk = await asyncio.to_thread(fh.read, chunk_size)
            if not chunk:
                break
            sent += len(chunk)
            yield chunk
            if progress:
                progress(sent)


# -- the adapter --------------------------------------------------------------------------------

#: The Nova microversion the TUI speaks: 2.47+ embeds the flavor (name, sizes) in servers,
#: 2.9+ shows `locked`. Sent on every compute call, like openstacksdk does.
NOVA_VERSION = "2.60"
NOVA_HEADERS = {"OpenStack-API-Version": f"compute {NOVA_VERSION}",
                "X-OpenStack-Nova-API-Version": NOVA_VERSION}


class Cloud:
    """Named OpenStack operations over one authenticated MonostackClient."""

    def __init__(self, client: MonostackClient) -> None:
        self.client = client

    # session and catalog
    @property
    def session(self) -> Session | None:
        return self.client.session

    @property
    def is_admin(self) -> bool:
        return bool(self.session and self.session.is_admin)

    @property
    def project_id(self) -> str:
        return (self.session.project_id if self.session else None) or ""

    def has(self, service: str) -> bool:
        if self.session is None:
            return False
        if service == "identity":
            return True
        types = SERVICE_TYPES.get(service, (service,))
        return any(entry.get("type") in types for entry in self.session.catalog)

    def require(self, service: str) -> None:
        if not self.has(service):
            raise ServiceMissing(f"{SERVICE_LABELS.get(service, service)} is not available "
                                 "on this appliance.")

    @property
    def location(self) -> str:
        """Where the daemon is, for the header: the URL's host, or 'local' for the socket."""
        if self.client.url:
            from urllib.parse import urlparse
            return urlparse(self.client.url).hostname or self.client.url
        return "local"

    async def login(self, user: str, password: str, project: str | None) -> Session:
        return await self.client.login(user, password, project or None)

    async def switch_project(self, project_id: str) -> Session:
        return await self.client.switch_project(project_id)

    async def my_projects(self) -> list[Project]:
        body = await self.client.get("/identity/v3/auth/projects")
        return sorted((_project(p) for p in body.get("projects", [])), key=lambda p: p.name)

    async def close(self) -> None:
        await self.client.close()

    # events
    async def events(self, limit: int = 200) -> list[CloudEvent]:
        body = await self.client.get(f"/monostack/events?limit={limit}")
        return [CloudEvent.from_api(e) for e in body.get("events", [])]

    async def event_stream(self):
        return await self.client.websocket("/monostack/events/stream")

    # audit trail (admins)
    async def audit(self, *, limit: int = 200, outcome: str | None = None,
                    user_id: str | None = None) -> list[AuditRecord]:
        """Newest first; 403 for anyone but an admin."""
        query = {"limit": str(limit)}
        if outcome:
            query["outcome"] = outcome
        if user_id:
            query["user_id"] = user_id
        body = await self.client.get(f"/monostack/audit?{urlencode(query)}")
        return [AuditRecord.from_api(e) for e in (body or {}).get("events", [])]

    async def metrics(self) -> MetricsSample:
        """GET /metrics (admins, or anyone on the local socket; 403 for a member over TCP)."""
        text = await self.client.get("/metrics")
        return MetricsSample.from_exposition(text if isinstance(text, str) else "")

    async def health(self) -> dict:
        return await self.client.get("/healthz") or {}

    # compute
    async def servers(self) -> list[Server]:
        self.require("compute")
        body = await self.client.get("/compute/v2.1/servers/detail", headers=NOVA_HEADERS)
        flavors = {f.id: f.name for f in await self._quiet(self.flavors, [])}
        images = {i.id: i.name for i in await self._quiet(self.images, [])} \
            if self.has("image") else {}
        return [Server.from_api(s, flavors, images) for s in body.get("servers", [])]

    async def server(self, server_id: str) -> Server:
        self.require("compute")
        body = await self.client.get(f"/compute/v2.1/servers/{server_id}", headers=NOVA_HEADERS)
        flavors = {f.id: f.name for f in await self._quiet(self.flavors, [])}
        images = {i.id: i.name for i in await self._quiet(self.images, [])} \
            if self.has("image") else {}
        return Server.from_api(body["server"], flavors, images)

    async def server_action(self, server_id: str, action: str, args: Any = None) -> Any:
        self.require("compute")
        return await self.client.post(f"/compute/v2.1/servers/{server_id}/action", {action: args},
                                      headers=NOVA_HEADERS)

    async def delete_server(self, server_id: str) -> None:
        self.require("compute")
        await self.client.delete(f"/compute/v2.1/servers/{server_id}", headers=NOVA_HEADERS)

    async def create_server(self, *, name: str, flavor_id: str, image_id: str | None = None,
                            volume_id: str | None = None, networks: list[str] | None = None,
                            key_name: str | None = None, user_data: str | None = None,
                            count: int = 1) -> dict:
        self.require("compute")
        import base64
        server: dict[str, Any] = {"name": name, "flavorRef": flavor_id,
                                  "min_count": count, "max_count": count}
        if image_id:
            server["imageRef"] = image_id
        if volume_id:
            server["block_device_mapping_v2"] = [{
                "uuid": volume_id, "boot_index": 0, "source_type": "volume",
                "destination_type": "volume", "delete_on_termination": False}]
        server["networks"] = ([{"uuid": n} for n in networks] if networks
                              else "auto" if self.has("network") else "none")
        if key_name:
            server["key_name"] = key_name
        if user_data:
            server["user_data"] = base64.b64encode(user_data.encode()).decode()
        body = await self.client.post("/compute/v2.1/servers", {"server": server},
                                      headers=NOVA_HEADERS)
        return body.get("server", body) if isinstance(body, dict) else {}

    async def flavors(self) -> list[Flavor]:
        self.require("compute")
        body = await self.client.get("/compute/v2.1/flavors/detail", headers=NOVA_HEADERS)
        return sorted((Flavor(id=f["id"], name=f.get("name", ""), vcpus=int(f.get("vcpus") or 0),
                              ram=int(f.get("ram") or 0), disk=int(f.get("disk") or 0))
                       for f in body.get("flavors", [])), key=lambda f: (f.ram, f.name))

    async def keypairs(self) -> list[str]:
        self.require("compute")
        body = await self.client.get("/compute/v2.1/os-keypairs", headers=NOVA_HEADERS)
        return sorted(k.get("keypair", k).get("name", "") for k in body.get("keypairs", []))

    async def hypervisors(self) -> list[Hypervisor]:
        self.require("compute")
        body = await self.client.get("/compute/v2.1/os-hypervisors/detail", headers=NOVA_HEADERS)
        return [Hypervisor.from_api(h) for h in body.get("hypervisors", [])]

    async def host_usage(self, hypervisor_id: str) -> HostUsage:
        """Live CPU % and memory of the host (admin; a monostack extension of os-hypervisors)."""
        self.require("compute")
        body = await self.client.get(
            f"/compute/v2.1/os-hypervisors/{hypervisor_id}/monostack-usage", headers=NOVA_HEADERS)
        u = body.get("usage") or {}
        return HostUsage(cpu_percent=u.get("cpu_percent"), memory_mb=int(u.get("memory_mb") or 0),
                         memory_used_mb=u.get("memory_used_mb"))

    async def server_stats(self, server_id: str) -> ServerStats:
        """Nova diagnostics (admin; 409 unless the server runs)."""
        self.require("compute")
        body = await self.client.get(f"/compute/v2.1/servers/{server_id}/diagnostics",
                                     headers=NOVA_HEADERS)
        return ServerStats.from_api(body or {})

    async def server_actions(self, server_id: str, limit: int = 20) -> list[ServerAction]:
        """Newest first, without their steps (os-instance-actions)."""
        self.require("compute")
        body = await self.client.get(
            f"/compute/v2.1/servers/{server_id}/os-instance-actions?limit={limit}",
            headers=NOVA_HEADERS)
        return [ServerAction.from_api(a) for a in body.get("instanceActions", [])]

    async def server_action_detail(self, server_id: str, request_id: str) -> ServerAction:
        """One action with its steps; at 2.51+ (we ask 2.60) members see the steps too."""
        self.require("compute")
        body = await self.client.get(
            f"/compute/v2.1/servers/{server_id}/os-instance-actions/{quote(request_id, safe='')}",
            headers=NOVA_HEADERS)
        return ServerAction.from_api(body.get("instanceAction") or {})

    async def console_log(self, server_id: str, length: int = 40) -> str:
        body = await self.server_action(server_id, "os-getConsoleOutput", {"length": length})
        return (body or {}).get("output", "") if isinstance(body, dict) else ""

    async def server_volumes(self, server_id: str) -> list[dict]:
        self.require("compute")
        body = await self.client.get(f"/compute/v2.1/servers/{server_id}/os-volume_attachments",
                                     headers=NOVA_HEADERS)
        return body.get("volumeAttachments", [])

    async def attach_volume(self, server_id: str, volume_id: str) -> None:
        self.require("compute")
        await self.client.post(f"/compute/v2.1/servers/{server_id}/os-volume_attachments",
                               {"volumeAttachment": {"volumeId": volume_id, "device": None}},
                               headers=NOVA_HEADERS)

    async def detach_volume(self, server_id: str, volume_id: str) -> None:
        self.require("compute")
        await self.client.delete(
            f"/compute/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}",
            headers=NOVA_HEADERS)

    async def serial_console_url(self, server_id: str) -> str:
        self.require("compute")
        body = await self.client.post(
            f"/compute/v2.1/servers/{server_id}/remote-consoles",
            {"remote_console": {"protocol": "serial", "type": "serial"}},
            headers=NOVA_HEADERS)
        return body["remote_console"]["url"]

    # image
    async def images(self) -> list[Image]:
        self.require("image")
        body = await self.client.get("/image/v2/images")
        return sorted((Image.from_api(i) for i in body.get("images", [])), key=lambda i: i.name)

    async def create_image(self, name: str, disk_format: str = "qcow2",
                           visibility: str = "private", **properties: Any) -> Image:
        self.require("image")
        body = await self.client.post("/image/v2/images", {
            "name": name, "disk_format": disk_format, "container_format": "bare",
            "visibility": visibility, **properties})
        return Image.from_api(body)

    async def upload_image(self, image_id: str, path: str,
                           progress: ProgressCallback | None = None) -> None:
        self.require("image")
        size = os.path.getsize(path)
        await self.client.upload("PUT", f"/image/v2/images/{image_id}/file",
                                 file_chunks(path, progress),
                                 headers={"X-OpenStack-Image-Size": str(size)})

    async def update_image(self, image_id: str, **changes: Any) -> None:
        self.require("image")
        core = {"name", "visibility", "protected", "disk_format", "container_format",
                "min_disk", "min_ram", "tags"}
        ops = [{"op": "replace" if k in core else "add", "path": f"/{k}", "value": v}
               for k, v in changes.items()]
        await self.client.patch(f"/image/v2/images/{image_id}", ops, headers={
            "Content-Type": "application/openstack-images-v2.1-json-patch"})

    async def delete_image(self, image_id: str) -> None:
        self.require("image")
        await self.client.delete(f"/image/v2/images/{image_id}")

    # volume
    def _vol(self, rest: str) -> str:
        return f"/volume/v3/{self.project_id}{rest}"

    async def volumes(self) -> list[Volume]:
        self.require("volume")
        body = await self.client.get(self._vol("/volumes/detail"))
        return sorted((Volume.from_api(v) for v in body.get("volumes", [])), key=lambda v: v.name)

    async def create_volume(self, name: str, size: int, image_id: str | None = None) -> dict:
        self.require("volume")
        body = await self.client.post(self._vol("/volumes"), {"volume": {
            "name": name, "size": size, "imageRef": image_id or None}})
        return body.get("volume", {})

    async def delete_volume(self, volume_id: str) -> None:
        self.require("volume")
        await self.client.delete(self._vol(f"/volumes/{volume_id}"))

    async def extend_volume(self, volume_id: str, new_size: int) -> None:
        self.require("volume")
        await self.client.post(self._vol(f"/volumes/{volume_id}/action"),
                               {"os-extend": {"new_size": new_size}})

    async def snapshots(self) -> list[Snapshot]:
        self.require("volume")
        body = await self.client.get(self._vol("/snapshots/detail"))
        return [Snapshot(id=s["id"], name=s.get("name") or "", status=s.get("status") or "",
                         size=int(s.get("size") or 0), volume_id=s.get("volume_id") or "")
                for s in body.get("snapshots", [])]

    async def create_snapshot(self, volume_id: str, name: str) -> None:
        self.require("volume")
        await self.client.post(self._vol("/snapshots"), {"snapshot": {
            "volume_id": volume_id, "name": name, "description": None, "metadata": None}})

    # network
    async def neutron(self, collection: str, key: str | None = None) -> list[dict]:
        """GET /network/v2.0/<collection>; `collection` like 'networks', 'security-groups'."""
        self.require("network")
        body = await self.client.get(f"/network/v2.0/{collection}")
        return body.get(key or collection.replace("-", "_"), [])

    async def neutron_create(self, collection: str, key: str, values: dict) -> dict:
        self.require("network")
        body = await self.client.post(f"/network/v2.0/{collection}", {key: values})
        return body.get(key, {})

    async def neutron_delete(self, collection: str, item_id: str) -> None:
        self.require("network")
        await self.client.delete(f"/network/v2.0/{collection}/{item_id}")

    async def dhcp_leases(self) -> list[dict]:
        """The DHCP server's lease records (admin): GET /network/v2.0/monostack-dhcp-leases,
        rows {id, network_id, port_id, mac, ip, state, hostname, granted_at, expires_at …}."""
        self.require("network")
        body = await self.client.get("/network/v2.0/monostack-dhcp-leases")
        return sorted(body.get("leases", []), key=lambda r: tuple(
            int(x) if x.isdigit() else 0 for x in str(r.get("ip", "")).split(".")))

    # object storage
    def _swift(self, rest: str = "") -> str:
        return f"/swift/v1/AUTH_{self.project_id}{rest}"

    async def containers(self) -> list[dict]:
        self.require("object")
        body = await self.client.get(self._swift("?format=json"))
        return body if isinstance(body, list) else []

    async def objects(self, container: str, prefix: str = "") -> list[ObjectEntry]:
        self.require("object")
        out: list[ObjectEntry] = []
        marker = ""
        while True:
            query = {"format": "json", "delimiter": "/", "prefix": prefix}
            if marker:
                query["marker"] = marker
            page = await self.client.get(self._swift(f"/{quote(container)}?{urlencode(query)}"))
            if not page:
                break
            for item in page:
                if "subdir" in item:
                    out.append(ObjectEntry(name=item["subdir"], is_folder=True))
                else:
                    out.append(ObjectEntry(name=item["name"], is_folder=False,
                                           bytes=int(item.get("bytes") or 0),
                                           content_type=item.get("content_type") or "",
                                           last_modified=item.get("last_modified") or ""))
            marker = page[-1].get("name") or page[-1].get("subdir") or ""
            if len(page) < 10000:
                break
        return out

    async def create_container(self, name: str) -> None:
        self.require("object")
        await self.client.put(self._swift(f"/{quote(name)}"))

    async def delete_container(self, name: str) -> None:
        self.require("object")
        await self.client.delete(self._swift(f"/{quote(name)}"))

    async def delete_object(self, container: str, name: str) -> None:
        self.require("object")
        await self.client.delete(self._swift(f"/{quote(container)}/{quote(name)}"))

    async def upload_object(self, container: str, name: str, path: str,
                            progress: ProgressCallback | None = None) -> None:
        self.require("object")
        import mimetypes
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        await self.client.upload("PUT", self._swift(f"/{quote(container)}/{quote(name)}"),
                                 file_chunks(path, progress),
                                 headers={"Content-Length": str(os.path.getsize(path)),
                                          "Content-Type": ctype})

    async def download_object(self, container: str, name: str, path: str,
                              progress: ProgressCallback | None = None) -> int:
        self.require("object")
        import asyncio
        got = 0
        tmp = path + ".part"
        with open(tmp, "wb") as fh:
            async for chunk in self.client.download(
                    self._swift(f"/{quote(container)}/{quote(name)}")):
                await asyncio.to_thread(fh.write, chunk)
                got += len(chunk)
                if progress:
                    progress(got)
        os.replace(tmp, path)
        return got

    async def object_metadata(self, container: str, name: str | None = None) -> dict[str, str]:
        """HEAD a container or object: its X-*-Meta-*, counts, sizes, ACLs."""
        self.require("object")
        rest = f"/{quote(container)}" + (f"/{quote(name)}" if name else "")
        headers = await self.client.head(self._swift(rest))
        return {k: v for k, v in headers.items()
                if k.lower().startswith(("x-container", "x-object", "content-", "etag",
                                         "last-modified", "x-timestamp"))}

    async def set_container_acl(self, container: str, read: str) -> None:
        self.require("object")
        await self.client.post(self._swift(f"/{quote(container)}"),
                               headers={"X-Container-Read": read})

    # identity
    async def users(self) -> list[User]:
        body = await self.client.get("/identity/v3/users")
        return [User(id=u["id"], name=u.get("name", ""), enabled=bool(u.get("enabled", True)),
                     email=u.get("email") or "", default_project_id=u.get("default_project_id"))
                for u in body.get("users", [])]

    async def projects(self) -> list[Project]:
        body = await self.client.get("/identity/v3/projects")
        return [_project(p) for p in body.get("projects", [])]

    async def roles(self) -> list[Role]:
        body = await self.client.get("/identity/v3/roles")
        return [Role(id=r["id"], name=r.get("name", "")) for r in body.get("roles", [])]

    async def assignments(self) -> list[Assignment]:
        body = await self.client.get("/identity/v3/role_assignments?include_names=true")
        out = []
        for a in body.get("role_assignments", []):
            project = (a.get("scope") or {}).get("project") or {}
            out.append(Assignment(user=a["user"].get("name") or a["user"]["id"],
                                  project=project.get("name") or project.get("id", ""),
                                  role=a["role"].get("name") or a["role"]["id"],
                                  user_id=a["user"]["id"], project_id=project.get("id", ""),
                                  role_id=a["role"]["id"]))
        return sorted(out, key=lambda a: (a.project, a.user, a.role))

    async def create_user(self, name: str, password: str, project_id: str | None = None,
                          email: str | None = None) -> User:
        body = await self.client.post("/identity/v3/users", {"user": {
            "name": name, "password": password, "enabled": True,
            "default_project_id": project_id or None, "email": email or None}})
        u = body["user"]
        return User(id=u["id"], name=u["name"], enabled=u.get("enabled", True),
                    email=u.get("email") or "", default_project_id=u.get("default_project_id"))

    async def create_project(self, name: str, description: str = "") -> Project:
        body = await self.client.post("/identity/v3/projects", {"project": {
            "name": name, "description": description, "enabled": True}})
        return _project(body["project"])

    async def set_enabled(self, kind: str, item_id: str, enabled: bool) -> None:
        await self.client.patch(f"/identity/v3/{kind}s/{item_id}", {kind: {"enabled": enabled}})

    async def delete_identity(self, kind: str, item_id: str) -> None:
        await self.client.delete(f"/identity/v3/{kind}s/{item_id}")

    async def grant(self, project_id: str, user_id: str, role_id: str) -> None:
        await self.client.put(f"/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}")

    async def revoke(self, project_id: str, user_id: str, role_id: str) -> None:
        await self.client.delete(
            f"/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}")

    # helpers
    @staticmethod
    async def _quiet(call, default):
        try:
            return await call()
        except MonostackError:
            return default


def _project(p: dict) -> Project:
    return Project(id=p["id"], name=p.get("name", ""), enabled=bool(p.get("enabled", True)),
                   description=p.get("description") or "")
