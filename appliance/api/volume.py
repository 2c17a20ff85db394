"""Cinder v3 over HTTP at /volume/v3/{project_id}: volumes, actions, snapshots, types, limits,
quota sets, and version discovery (with and without the project id, as clients probe both).

Microversions 3.0–3.70 (`OpenStack-API-Version: volume X`, none = 3.0): every answer names its
version, and fields that later microversions added appear only from theirs (group_id 3.13,
group_snapshot_id 3.14, snapshot user_id 3.41, backup_id 3.47, shared_targets and service_uuid
3.48, cluster_name 3.61, volume_type_id 3.63, consumes_quota 3.65). The unversioned root is a
300 Multiple Choices, as Cinder's.

Handlers check policy (with the path's project as the target) before reading the body, then
call `VolumeService`, which owns the status machine.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from appliance.api.microversions import Microversions
from appliance.api.schemas import volume as schemas
from appliance.api.schemas.types import PAGE, as_int
from appliance.api.util import authorize, ctx_of, public, query_bool, query_int
from appliance.api.validation import valid_body, valid_query
from appliance.errors import BadRequest
from appliance.volumes.records import (
    DEFAULT_QUOTA,
    DEFAULT_TYPE_ID,
    DEFAULT_TYPE_NAME,
    Snapshot,
    Volume,
)
from appliance.volumes.service import VolumeService

CINDER = Microversions("volume", (3, 0), (3, 70))
#: the one volume service's id (service_uuid from 3.48): stable, derived from nothing secret
SERVICE_UUID = "6f1c2a54-8f0e-5b8e-9c43-6d6f6e6f7374"
MAX_VERSION = "3.70"
DEFAULT_LIMIT = 1000
SORT_KEYS = ("created_at", "updated_at", "name", "id", "size", "status", "bootable")


def _service(request: web.Request) -> VolumeService:
    return ctx_of(request).components.volume.service


def _base(request: web.Request) -> str:
    return ctx_of(request).config.api.base_url


def _pid(request: web.Request) -> str:
    return request.match_info["project_id"]


# -- discovery ----------------------------------------------------------------------------------

def _from(request: web.Request, minor: int) -> bool:
    return CINDER.of(request) >= (3, minor)


@public
async def root_versions(request: web.Request) -> web.Response:
    """The unversioned root lists the versions to choose from: 300, as Cinder answers."""
    response = await versions(request)
    response.set_status(300)
    return response


@public
async def versions(request: web.Request) -> web.Response:
    version = {"id": "v3.0", "status": "CURRENT", "version": MAX_VERSION, "min_version": "3.0",
               "updated": "2023-01-01T00:00:00Z",
               "links": [{"rel": "self", "href": _base(request) + "/volume/v3/"}],
               "media-types": [{"base": "application/json",
                                "type": "application/vnd.openstack.volume+json;version=3"}]}
    return web.json_response({"versions": [version]})


# -- views --------------------------------------------------------------------------------------

def _seconds(stamp: str) -> str:
    return stamp.split(".")[0] + ".000000" if stamp else stamp


def volume_view(request: web.Request, vol: Volume, admin: bool) -> dict[str, Any]:
    href = f"{_base(request)}/volume/v3/{vol.project_id}/volumes/{vol.id}"
    body: dict[str, Any] = {
        "id": vol.id, "name": vol.name, "description": vol.description,
        "size": vol.size, "status": str(vol.status), "availability_zone": vol.availability_zone,
        "bootable": "true" if vol.bootable else "false", "encrypted": False,
        "multiattach": False, "volume_type": vol.volume_type,
        "snapshot_id": vol.source_snapshot_id, "source_volid": vol.source_volume_id,
        "attachments": [dict(a) for a in vol.attachments], "metadata": dict(vol.metadata),
        "user_id": vol.user_id, "created_at": _seconds(vol.created_at),
        "updated_at": _seconds(vol.updated_at), "replication_status": None,
        "consistencygroup_id": None, "migration_status": None,
        "links": [{"rel": "self", "href": href}, {"rel": "bookmark", "href": href}],
    }
    if _from(request, 13):
        body["group_id"] = None
    if _from(request, 47):
        body["backup_id"] = None
    if _from(request, 48):
        body["shared_targets"] = False
        body["service_uuid"] = SERVICE_UUID
    if _from(request, 61) and admin:
        body["cluster_name"] = None
    if _from(request, 63):
        body["volume_type_id"] = DEFAULT_TYPE_ID
    if _from(request, 65):
        body["consumes_quota"] = True
    if vol.image_metadata:
        body["volume_image_metadata"] = dict(vol.image_metadata)
    if vol.last_error:
        body["monostack_last_error"] = vol.last_error
    if admin:
        body["os-vol-tenant-attr:tenant_id"] = vol.project_id
        body["os-vol-host-attr:host"] = "monostack@local#local"
        body["os-vol-mig-status-attr:migstat"] = None
        body["os-vol-mig-status-attr:name_id"] = None
    return body


def snapshot_view(request: web.Request, snap: Snapshot, admin: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": snap.id, "volume_id": snap.volume_id, "name": snap.name,
        "description": snap.description, "status": str(snap.status), "size": snap.size,
        "metadata": dict(snap.metadata), "created_at": _seconds(snap.created_at),
        "updated_at": _seconds(snap.updated_at), "progress": "100%"
        if snap.status == "available" else "0%",
    }
    if _from(request, 14):
        body["group_snapshot_id"] = None
    if _from(request, 41):
        body["user_id"] = None
    if _from(request, 65):
        body["consumes_quota"] = True
    if admin:
        body["os-extended-snapshot-attributes:project_id"] = snap.project_id
        body["os-extended-snapshot-attributes:progress"] = body["progress"]
    return body


def _sort_and_page(request: web.Request, items: list[Any], collection: str) -> tuple[list, list]:
    """Cinder listing: sort=k:dir or sort_key/sort_dir, limit/marker; links only when more."""
    valid_query(request, PAGE)
    q = request.query
    spec: list[tuple[str, bool]] = []
    if "sort" in q:
        for part in q["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            spec.append((key, (direction or "desc") == "desc"))
    elif "sort_key" in q:
        spec.append((q["sort_key"], q.get("sort_dir", "desc") == "desc"))
    for key, _ in spec:
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid input received: invalid sort key {key}")
    spec = spec or [("created_at", True)]
    items = sorted(items, key=lambda i: i.id, reverse=True)
    for key, descending in reversed(spec):
        items.sort(key=lambda i: (getattr(i, key, None) is not None,
                                  getattr(i, key, None) if isinstance(getattr(i, key, None), (int, bool))
                                  else str(getattr(i, key, None) or "")), reverse=descending)
    marker = q.get("marker")
    if marker:
        ids = [i.id for i in items]
        if marker not in ids:
            raise BadRequest(f"Invalid input received: marker [{marker}] not found")
        items = items[ids.index(marker) + 1:]
    limit = query_int(request, "limit", DEFAULT_LIMIT, 0, 100_000) or 0
    page = items[:limit] if "limit" in q else items
    links = []
    if "limit" in q and len(items) > limit and page:
        params = [(k, v) for k, v in q.items() if k != "marker"] + [("marker", page[-1].id)]
        links = [{"rel": "next", "href": f"{_base(request)}{request.path}?{urlencode(params)}"}]
    return page, links


def _filtered(request: web.Request, items: list[Any]) -> list[Any]:
    q = request.query
    if "name" in q:
        items = [i for i in items if i.name == q["name"]]
    if "status" in q:
        items = [i for i in items if str(i.status) == q["status"]]
    if "volume_id" in q:
        items = [i for i in items if getattr(i, "volume_id", None) == q["volume_id"]]
    bootable = query_bool(q.get("bootable"))
    if bootable is not None:
        items = [i for i in items if getattr(i, "bootable", None) == bootable]
    return items


def _all_projects(request: web.Request) -> bool:
    return bool(query_bool(request.query.get("all_tenants"))
                or query_bool(request.query.get("all_projects")))


# -- volumes ------------------------------------------------------------------------------------

async def list_volumes(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:get_all", target_project_id=_pid(request))
    vols = _filtered(request, _service(request).list(auth, _pid(request), _all_projects(request)))
    page, links = _sort_and_page(request, vols, "volumes")
    body: dict[str, Any] = {"volumes": [{"id": v.id, "name": v.name,
                                         "links": volume_view(request, v, False)["links"]}
                                        for v in page]}
    if links:
        body["volumes_links"] = links
    return web.json_response(body)


async def list_volumes_detail(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:get_all", target_project_id=_pid(request))
    vols = _filtered(request, _service(request).list(auth, _pid(request), _all_projects(request)))
    page, links = _sort_and_page(request, vols, "volumes")
    body: dict[str, Any] = {"volumes": [volume_view(request, v, auth.is_admin) for v in page]}
    if links:
        body["volumes_links"] = links
    return web.json_response(body)


async def create_volume(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:create", target_project_id=_pid(request))
    body = await valid_body(request, schemas.VOLUME_CREATE)
    vol = await _service(request).create(auth, body)
    return web.json_response({"volume": volume_view(request, vol, auth.is_admin)}, status=202)


async def show_volume(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:get", target_project_id=_pid(request))
    vol = _service(request).get(auth, request.match_info["volume_id"])
    return web.json_response({"volume": volume_view(request, vol, auth.is_admin)})


async def update_volume(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:update", target_project_id=_pid(request))
    body = await valid_body(request, schemas.VOLUME_UPDATE)
    vol = await _service(request).update(auth, request.match_info["volume_id"], body)
    return web.json_response({"volume": volume_view(request, vol, auth.is_admin)})


async def delete_volume(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:delete", target_project_id=_pid(request))
    await _service(request).delete(auth, request.match_info["volume_id"])
    return web.Response(status=202)


async def show_metadata(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:get_volume_metadata", target_project_id=_pid(request))
    vol = _service(request).get(auth, request.match_info["volume_id"])
    return web.json_response({"metadata": dict(vol.metadata)})


async def set_metadata(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:update_volume_metadata", target_project_id=_pid(request))
    body = await valid_body(request, schemas.METADATA_SET)
    vol = await _service(request).set_metadata(auth, request.match_info["volume_id"],
                                               body["metadata"], replace=request.method == "PUT")
    return web.json_response({"metadata": dict(vol.metadata)})


async def delete_metadata(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:delete_volume_metadata", target_project_id=_pid(request))
    await _service(request).delete_metadata_key(auth, request.match_info["volume_id"],
                                                request.match_info["key"])
    return web.Response(status=200)


async def volume_action(request: web.Request) -> web.Response:
    pid = _pid(request)
    auth = authorize(request, "volume:action", target_project_id=pid)
    body = await valid_body(request, schemas.VOLUME_ACTION)
    (action, args), = body.items()
    args = args if isinstance(args, dict) else {}
    service = _service(request)
    vid = request.match_info["volume_id"]
    if action == "os-extend":
        await service.extend(auth, vid, as_int(args["new_size"]))
    elif action == "os-set_bootable":
        await service.set_bootable(auth, vid, schemas.cinder_bool(args["bootable"]))
        return web.Response(status=200)
    elif action == "os-reserve":
        await service.reserve(auth, vid)
    elif action == "os-unreserve":
        await service.unreserve(auth, vid)
    elif action == "os-begin_detaching":
        await service.begin_detaching(auth, vid)
    elif action == "os-roll_detaching":
        await service.roll_detaching(auth, vid)
    elif action == "os-attach":
        await service.attach(auth, vid, args.get("instance_uuid") or "",
                             args.get("mountpoint"), args.get("host_name"))
    elif action == "os-detach":
        await service.detach(auth, vid, attachment_id=args.get("attachment_id"))
    elif action == "os-initialize_connection":
        return web.json_response({"connection_info": service.connection_info(auth, vid)})
    elif action == "os-terminate_connection":
        service.get(auth, vid)
    elif action == "os-volume_upload_image":
        args = {**args, **{k: schemas.cinder_bool(args[k]) for k in ("force", "protected")
                           if k in args}}
        vol, image = await service.upload_to_image(auth, vid, args)
        return web.json_response({"os-volume_upload_image": {
            "id": vol.id, "updated_at": vol.updated_at, "status": str(vol.status),
            "display_description": vol.description, "size": vol.size,
            "volume_type": {"id": DEFAULT_TYPE_ID, "name": DEFAULT_TYPE_NAME},
            "image_id": image.id, "container_format": image.container_format,
            "disk_format": image.disk_format, "image_name": image.name}}, status=202)
    elif action == "revert":
        await service.revert(auth, vid, args.get("snapshot_id"))
    elif action in ("os-reset_status", "os-force_detach"):
        authorize(request, "volume:reset_status", target_project_id=pid)
        if action == "os-reset_status":
            await service.reset_status(auth, vid, args.get("status"))
        else:
            await service.detach(auth, vid, attachment_id=args.get("attachment_id"))
    elif action == "os-update_readonly_flag":
        service.get(auth, vid)
    else:
        raise BadRequest(f"There is no such action: {action}")
    return web.Response(status=202)


# -- snapshots ----------------------------------------------------------------------------------

async def list_snapshots(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:get_all_snapshots", target_project_id=_pid(request))
    snaps = _filtered(request, _service(request).list_snapshots(auth, _pid(request),
                                                                _all_projects(request)))
    page, links = _sort_and_page(request, snaps, "snapshots")
    detail = request.path.endswith("/detail")
    body: dict[str, Any] = {"snapshots": [snapshot_view(request, s, auth.is_admin and detail)
                                          for s in page]}
    if links:
        body["snapshots_links"] = links
    return web.json_response(body)


async def create_snapshot(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:create_snapshot", target_project_id=_pid(request))
    body = await valid_body(request, schemas.SNAPSHOT_CREATE)
    snap = await _service(request).create_snapshot(auth, body)
    return web.json_response({"snapshot": snapshot_view(request, snap, auth.is_admin)}, status=202)


async def show_snapshot(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:get_snapshot", target_project_id=_pid(request))
    snap = _service(request).get_snapshot(auth, request.match_info["snapshot_id"])
    return web.json_response({"snapshot": snapshot_view(request, snap, auth.is_admin)})


async def update_snapshot(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:update_snapshot", target_project_id=_pid(request))
    body = await valid_body(request, schemas.SNAPSHOT_UPDATE)
    snap = await _service(request).update_snapshot(auth, request.match_info["snapshot_id"], body)
    return web.json_response({"snapshot": snapshot_view(request, snap, auth.is_admin)})


async def delete_snapshot(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:delete_snapshot", target_project_id=_pid(request))
    await _service(request).delete_snapshot(auth, request.match_info["snapshot_id"])
    return web.Response(status=202)


# -- types, limits, quotas, zones ---------------------------------------------------------------

DEFAULT_TYPE = {"id": DEFAULT_TYPE_ID, "name": DEFAULT_TYPE_NAME,
                "description": "Local qcow2 volumes", "is_public": True,
                "os-volume-type-access:is_public": True, "extra_specs": {}, "qos_specs_id": None}


async def list_types(request: web.Request) -> web.Response:
    authorize(request, "volume:get_types", target_project_id=_pid(request))
    return web.json_response({"volume_types": [DEFAULT_TYPE]})


async def show_type(request: web.Request) -> web.Response:
    authorize(request, "volume:get_type", target_project_id=_pid(request))
    type_id = request.match_info.get("type_id", "default")
    if type_id not in ("default", DEFAULT_TYPE_ID, DEFAULT_TYPE_NAME):
        from appliance.errors import NotFound
        raise NotFound(f"Volume type {type_id} could not be found.")
    return web.json_response({"volume_type": DEFAULT_TYPE})


async def limits(request: web.Request) -> web.Response:
    auth = authorize(request, "volume:get_limits", target_project_id=_pid(request))
    service = _service(request)
    quota, used = service.quota_for(_pid(request)), service.usage(_pid(request))
    del auth
    return web.json_response({"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": quota.volumes, "maxTotalSnapshots": quota.snapshots,
        "maxTotalVolumeGigabytes": quota.gigabytes, "maxTotalBackups": 0,
        "maxTotalBackupGigabytes": 0, "totalVolumesUsed": used["volumes"],
        "totalGigabytesUsed": used["gigabytes"], "totalSnapshotsUsed": used["snapshots"],
        "totalBackupsUsed": 0, "totalBackupGigabytesUsed": 0}}})


def _quota_set(service: VolumeService, project_id: str, usage: bool) -> dict[str, Any]:
    quota = service.quota_for(project_id)
    values: dict[str, Any] = {"volumes": quota.volumes, "gigabytes": quota.gigabytes,
                              "snapshots": quota.snapshots, "per_volume_gigabytes": -1,
                              "backups": 0, "backup_gigabytes": 0, "groups": 0,
                              f"volumes_{DEFAULT_TYPE_NAME}": -1,
                              f"gigabytes_{DEFAULT_TYPE_NAME}": -1,
                              f"snapshots_{DEFAULT_TYPE_NAME}": -1}
    if usage:
        used = service.usage(project_id)
        ledger = service.ctx.quotas
        values = {k: {"limit": v, "in_use": used.get(k, 0),
                      "reserved": ledger.reserved(project_id, k), "allocated": 0}
                  for k, v in values.items()}
    return {"id": project_id, **values}


async def show_quota_set(request: web.Request) -> web.Response:
    target = request.match_info["target_project_id"]
    authorize(request, "volume:show_quota_set", target_project_id=target)
    usage = bool(query_bool(request.query.get("usage")))
    return web.json_response({"quota_set": _quota_set(_service(request), target, usage)})


async def quota_defaults(request: web.Request) -> web.Response:
    target = request.match_info["target_project_id"]
    authorize(request, "volume:show_quota_set", target_project_id=target)
    return web.json_response({"quota_set": {"id": target, **DEFAULT_QUOTA,
                                            "per_volume_gigabytes": -1, "backups": 0,
                                            "backup_gigabytes": 0, "groups": 0}})


async def update_quota_set(request: web.Request) -> web.Response:
    target = request.match_info["target_project_id"]
    authorize(request, "volume:update_quota_set", target_project_id=target)
    body = await valid_body(request, schemas.QUOTA_UPDATE)
    service = _service(request)
    await service.set_quota(target, **{k: as_int(v) for k, v in body.items()})
    return web.json_response({"quota_set": _quota_set(service, target, False)})


async def delete_quota_set(request: web.Request) -> web.Response:
    target = request.match_info["target_project_id"]
    authorize(request, "volume:delete_quota_set", target_project_id=target)
    await _service(request).reset_quota(target)
    return web.Response(status=200)


async def availability_zones(request: web.Request) -> web.Response:
    authorize(request, "volume:get_availability_zones", target_project_id=_pid(request))
    return web.json_response({"availabilityZoneInfo": [
        {"zoneName": "nova", "zoneState": {"available": True}}]})


def routes() -> list[web.RouteDef]:
    p = "/volume/v3/{project_id}"
    vol = p + "/volumes/{volume_id}"
    snap = p + "/snapshots/{snapshot_id}"
    quota = p + "/os-quota-sets/{target_project_id}"
    table = [
        web.get("/volume/v3", versions), web.get("/volume/v3/", versions),
        web.get(p, versions), web.get(p + "/", versions),
        web.get(p + "/volumes", list_volumes),
        web.get(p + "/volumes/detail", list_volumes_detail),
        web.post(p + "/volumes", create_volume),
        web.get(vol, show_volume),
        web.put(vol, update_volume),
        web.delete(vol, delete_volume),
        web.post(vol + "/action", volume_action),
        web.get(vol + "/metadata", show_metadata),
        web.post(vol + "/metadata", set_metadata),
        web.put(vol + "/metadata", set_metadata),
        web.delete(vol + "/metadata/{key}", delete_metadata),
        web.get(p + "/snapshots", list_snapshots),
        web.get(p + "/snapshots/detail", list_snapshots),
        web.post(p + "/snapshots", create_snapshot),
        web.get(snap, show_snapshot),
        web.put(snap, update_snapshot),
        web.delete(snap, delete_snapshot),
        web.get(p + "/types", list_types),
        web.get(p + "/types/default", show_type),
        web.get(p + "/types/{type_id}", show_type),
        web.get(p + "/limits", limits),
        web.get(quota, show_quota_set),
        web.get(quota + "/defaults", quota_defaults),
        web.put(quota, update_quota_set),
        web.delete(quota, delete_quota_set),
        web.get(p + "/os-availability-zone", availability_zones),
    ]
    versioned = [web.route(r.method, r.path, CINDER.wrap(r.handler)) for r in table]
    return [web.get("/volume", root_versions), web.get("/volume/", root_versions), *versioned]
