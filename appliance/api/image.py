"""Glance v2 over HTTP: discovery, images, data (streamed both ways, Range), import, members.

The catalog URL is `/image`; clients discover `/image/v2/` from it. Handlers check policy
first, then parse the body, then call `ImageService`, which owns every rule about who may see
or change an image.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from appliance.api.schemas import image as schemas
from appliance.api.util import authorize, ctx_of, public, query_bool, query_int
from appliance.api.validation import valid_body, valid_query
from appliance.errors import BadRequest
from appliance.images.records import Image, ImageMember, ImageStatus
from appliance.images.service import ImageService

VERSION = "v2.16"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "virtual_size", "id",
             "created_at", "updated_at", "min_disk", "min_ram", "visibility", "owner")
#: Query parameters that are not property filters.
_LIST_PARAMS = {"limit", "marker", "sort_key", "sort_dir", "sort", "visibility", "member_status",
                "name", "status", "owner", "id", "tag", "disk_format", "container_format",
                "protected", "os_hidden", "size_min", "size_max"}
_IN_FILTERS = ("id", "name", "status", "disk_format", "container_format", "owner")


def _service(request: web.Request) -> ImageService:
    return ctx_of(request).components.image.service


# -- discovery ----------------------------------------------------------------------------------

@public
async def versions(request: web.Request) -> web.Response:
    base = ctx_of(request).config.api.base_url
    link = [{"rel": "self", "href": f"{base}/image/v2/"}]
    values = [{"id": VERSION, "status": "CURRENT", "links": link}]
    values += [{"id": f"v2.{n}", "status": "SUPPORTED", "links": link} for n in range(15, -1, -1)]
    return web.json_response({"versions": values})


@public
async def root_versions(request: web.Request) -> web.Response:
    """The unversioned root: 300 Multiple Choices with the same list, as Glance answers (its
    /versions is the 200 form)."""
    response = await versions(request)
    response.set_status(300)
    return response


# -- views --------------------------------------------------------------------------------------

def image_view(img: Image) -> dict[str, Any]:
    body: dict[str, Any] = dict(img.properties)
    body.update({
        "id": img.id, "name": img.name, "status": str(img.status),
        "visibility": str(img.visibility), "protected": img.protected,
        "os_hidden": img.os_hidden, "owner": img.owner,
        "disk_format": img.disk_format, "container_format": img.container_format,
        "size": img.size, "virtual_size": img.virtual_size, "checksum": img.checksum,
        "os_hash_algo": img.os_hash_algo, "os_hash_value": img.os_hash_value,
        "min_disk": img.min_disk, "min_ram": img.min_ram, "tags": list(img.tags),
        "created_at": _seconds(img.created_at), "updated_at": _seconds(img.updated_at),
        "self": f"/v2/images/{img.id}", "file": f"/v2/images/{img.id}/file",
        "schema": "/v2/schemas/image",
    })
    if img.status in (ImageStatus.SAVING, ImageStatus.IMPORTING):
        body["monostack_progress_bytes"] = img.progress_bytes
    if img.last_error:
        body["monostack_last_error"] = img.last_error
    return body


def _seconds(stamp: str) -> str:
    """Glance's timestamp form: 2024-01-01T00:00:00Z."""
    return stamp.split(".")[0] + "Z" if "." in stamp else stamp


def member_view(m: ImageMember) -> dict[str, Any]:
    return {"image_id": m.image_id, "member_id": m.member_id, "status": str(m.status),
            "created_at": _seconds(m.created_at), "updated_at": _seconds(m.updated_at),
            "schema": "/v2/schemas/member"}


# -- images -------------------------------------------------------------------------------------

async def create_image(request: web.Request) -> web.Response:
    auth = authorize(request, "image:add_image")
    body = await valid_body(request, schemas.IMAGE_CREATE)
    img = await _service(request).create(auth, body)
    return web.json_response(image_view(img), status=201,
                             headers={"Location": f"/v2/images/{img.id}"})


async def show_image(request: web.Request) -> web.Response:
    auth = authorize(request, "image:get_image")
    return web.json_response(image_view(_service(request).get(auth, request.match_info["image_id"])))


async def update_image(request: web.Request) -> web.Response:
    auth = authorize(request, "image:modify_image")
    ops = await valid_body(request, schemas.IMAGE_PATCH)
    img = await _service(request).patch(auth, request.match_info["image_id"], ops)
    return web.json_response(image_view(img))


async def delete_image(request: web.Request) -> web.Response:
    auth = authorize(request, "image:delete_image")
    await _service(request).delete(auth, request.match_info["image_id"])
    return web.Response(status=204)


def _in_values(raw: str) -> set[str]:
    value = raw[3:] if raw.startswith("in:") else raw
    if raw.startswith("in:"):
        return {v.strip().strip('"') for v in value.split(",") if v.strip()}
    return {value}


def _sort_spec(request: web.Request) -> list[tuple[str, bool]]:
    """[(key, descending)] from sort=k1:asc,k2 or sort_key=…&sort_dir=… (default created_at desc)."""
    spec: list[tuple[str, bool]] = []
    if "sort" in request.query:
        for part in request.query["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            spec.append((key, (direction or "desc") == "desc"))
            if direction not in ("", "asc", "desc"):
                raise BadRequest(f"Invalid sort direction {direction!r}")
    else:
        keys = request.query.getall("sort_key", [])
        dirs = request.query.getall("sort_dir", [])
        for d in dirs:
            if d not in ("asc", "desc"):
                raise BadRequest(f"Invalid sort direction {d!r}")
        for i, key in enumerate(keys):
            direction = dirs[i] if i < len(dirs) else (dirs[0] if len(dirs) == 1 else "desc")
            spec.append((key, direction == "desc"))
        if not keys and dirs:
            spec.append(("created_at", dirs[0] == "desc"))
    for key, _ in spec:
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid sort key {key!r}")
    return spec or [("created_at", True)]


def _sort(images: list[Image], spec: list[tuple[str, bool]]) -> list[Image]:
    images = sorted(images, key=lambda i: i.id, reverse=True)  # final tie-break
    for key, descending in reversed(spec):
        images.sort(key=lambda i: (getattr(i, key) is not None, str(getattr(i, key) or "")
                                   if not isinstance(getattr(i, key), int)
                                   else getattr(i, key)), reverse=descending)
    return images


def _matches(img: Image, request: web.Request) -> bool:
    q = request.query
    for key in _IN_FILTERS:
        if key in q and str(getattr(img, key)) not in _in_values(q[key]):
            return False
    for tag in q.getall("tag", []):
        if tag not in img.tags:
            return False
    protected = query_bool(q.get("protected"))
    if protected is not None and img.protected != protected:
        return False
    hidden = query_bool(q.get("os_hidden"))
    if img.os_hidden != bool(hidden):
        return False
    if "size_min" in q and (img.size or 0) < query_int(request, "size_min", 0, 0, 1 << 62):
        return False
    if "size_max" in q and (img.size or 0) > query_int(request, "size_max", 0, 0, 1 << 62):
        return False
    for key, value in q.items():
        if key not in _LIST_PARAMS and img.properties.get(key) != value:
            return False
    return True


async def list_images(request: web.Request) -> web.Response:
    auth = authorize(request, "image:get_images")
    valid_query(request, schemas.IMAGES_QUERY)
    visibility = request.query.get("visibility")
    if visibility not in (None, "public", "private", "shared", "community", "all"):
        raise BadRequest(f"Invalid visibility value: {visibility}")
    member_status = request.query.get("member_status", "accepted")
    if member_status not in ("pending", "accepted", "rejected", "all"):
        raise BadRequest(f"Invalid member_status value: {member_status}")
    images = [i for i in _service(request).visible(auth, visibility, member_status)
              if _matches(i, request)]
    images = _sort(images, _sort_spec(request))
    marker = request.query.get("marker")
    if marker:
        ids = [i.id for i in images]
        if marker not in ids:
            raise BadRequest(f"Invalid marker. Image {marker} could not be found.")
        images = images[ids.index(marker) + 1:]
    limit = query_int(request, "limit", DEFAULT_LIMIT, 0, 100_000)
    limit = min(limit if limit is not None else DEFAULT_LIMIT, MAX_LIMIT)
    page = images[:limit]
    body: dict[str, Any] = {"images": [image_view(i) for i in page], "first": "/v2/images",
                            "schema": "/v2/schemas/images"}
    if len(images) > limit and page:
        params = [(k, v) for k, v in request.query.items() if k not in ("marker", "limit")]
        params += [("marker", page[-1].id), ("limit", str(limit))]
        body["next"] = "/v2/images?" + urlencode(params)
    return web.json_response(body)


# -- data ---------------------------------------------------------------------------------------

def _size_hint(request: web.Request) -> int | None:
    for header in ("X-OpenStack-Image-Size", "Content-Length"):
        raw = request.headers.get(header)
        if raw and raw.isdigit():
            return int(raw)
    return None


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a vanished client ends the upload with an error."""
    try:
        async for chunk in request.content.iter_any():
            yield chunk
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError) as exc:
        raise BadRequest(f"The upload was interrupted: {exc}") from exc
    if request.content.exception() is not None:
        raise BadRequest("The upload was interrupted.")


async def upload_file(request: web.Request) -> web.Response:
    auth = authorize(request, "image:upload_image")
    await _service(request).upload(auth, request.match_info["image_id"], _body_chunks(request),
                                   _size_hint(request))
    return web.Response(status=204)


async def stage_file(request: web.Request) -> web.Response:
    auth = authorize(request, "image:stage_image")
    await _service(request).stage(auth, request.match_info["image_id"], _body_chunks(request),
                                  _size_hint(request))
    return web.Response(status=204)


async def import_image(request: web.Request) -> web.Response:
    auth = authorize(request, "image:import_image")
    body = await valid_body(request, schemas.IMPORT)
    await _service(request).import_image(auth, request.match_info["image_id"], body)
    return web.Response(status=202)


@public
async def import_info(request: web.Request) -> web.Response:
    return web.json_response({"import-methods": {
        "description": "Import methods available.", "type": "array",
        "value": ["glance-direct"]}})


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """[start, end) for a single `Range: bytes=…`; None = whole file; False = unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multiple or malformed ranges: serve the whole file (RFC 9110 allows it)
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        return (max(0, size - n), size) if n > 0 and size > 0 else False
    start = int(first)
    end = size if not last else min(int(last), size - 1) + 1
    if start >= size or (last and int(last) < start):
        return False
    return start, end


async def download_file(request: web.Request) -> web.StreamResponse:
    auth = authorize(request, "image:download_image")
    service = _service(request)
    image_id = request.match_info["image_id"]
    img = service.get(auth, image_id)
    if img.status not in (ImageStatus.ACTIVE, ImageStatus.DEACTIVATED):
        return web.Response(status=204)  # Glance: an image without data answers No Content
    size = img.size or 0
    rng = _parse_range(request.headers.get("Range"), size)
    if rng is False:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = rng if isinstance(rng, tuple) else (0, None)
    img, reader = await service.open_data(auth, image_id, start, end)
    headers = {"Content-Type": "application/octet-stream",
               "Content-Length": str(reader.length), "Accept-Ranges": "bytes"}
    if rng is None:
        if img.checksum:
            headers["Content-MD5"] = img.checksum
    else:
        headers["Content-Range"] = f"bytes {reader.start}-{reader.stop - 1}/{reader.size}"
    response = web.StreamResponse(status=206 if rng else 200, headers=headers)
    async with reader:
        await response.prepare(request)
        async for chunk in reader:
            await response.write(chunk)
    await response.write_eof()
    return response


# -- tags and members ---------------------------------------------------------------------------

async def add_tag(request: web.Request) -> web.Response:
    auth = authorize(request, "image:modify_image")
    await _service(request).add_tag(auth, request.match_info["image_id"], request.match_info["tag"])
    return web.Response(status=204)


async def delete_tag(request: web.Request) -> web.Response:
    auth = authorize(request, "image:modify_image")
    await _service(request).remove_tag(auth, request.match_info["image_id"],
                                       request.match_info["tag"])
    return web.Response(status=204)


async def list_members(request: web.Request) -> web.Response:
    auth = authorize(request, "image:get_members")
    members = _service(request).list_members(auth, request.match_info["image_id"])
    return web.json_response({"members": [member_view(m) for m in members],
                              "schema": "/v2/schemas/members"})


async def add_member(request: web.Request) -> web.Response:
    auth = authorize(request, "image:add_member")
    body = await valid_body(request, schemas.MEMBER_CREATE)
    member = await _service(request).add_member(auth, request.match_info["image_id"],
                                                body["member"])
    return web.json_response(member_view(member))


async def show_member(request: web.Request) -> web.Response:
    auth = authorize(request, "image:get_member")
    member = _service(request).get_member(auth, request.match_info["image_id"],
                                          request.match_info["member_id"])
    return web.json_response(member_view(member))


async def update_member(request: web.Request) -> web.Response:
    auth = authorize(request, "image:modify_member")
    body = await valid_body(request, schemas.MEMBER_UPDATE)
    member = await _service(request).update_member(auth, request.match_info["image_id"],
                                                   request.match_info["member_id"],
                                                   body["status"])
    return web.json_response(member_view(member))


async def delete_member(request: web.Request) -> web.Response:
    auth = authorize(request, "image:delete_member")
    await _service(request).remove_member(auth, request.match_info["image_id"],
                                          request.match_info["member_id"])
    return web.Response(status=204)


# -- quotas (monostack extension: Glance keeps these in Keystone unified limits) ---------------

async def show_quota(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    authorize(request, "image:get_quota", target_project_id=project_id)
    service = _service(request)
    quota = service.quota_for(project_id)
    count, used = service.usage(project_id)
    return web.json_response({"quota": {"images": quota.images, "bytes": quota.bytes,
                                        "max_virtual_size": quota.max_virtual_size,
                                        "images_used": count, "bytes_used": used}})


async def update_quota(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    authorize(request, "image:set_quota", target_project_id=project_id)
    body = await valid_body(request, schemas.QUOTA_UPDATE)
    quota = await _service(request).set_quota(project_id, **body)
    return web.json_response({"quota": {"images": quota.images, "bytes": quota.bytes,
                                        "max_virtual_size": quota.max_virtual_size}})


# -- schemas ------------------------------------------------------------------------------------

_IMAGE_PROPERTIES = {
    "id": {"type": "string"}, "name": {"type": ["null", "string"], "maxLength": 255},
    "status": {"type": "string", "enum": [s.value for s in ImageStatus]},
    "visibility": {"type": "string", "enum": ["public", "private", "shared", "community"]},
    "protected": {"type": "boolean"}, "os_hidden": {"type": "boolean"},
    "checksum": {"type": ["null", "string"]}, "os_hash_algo": {"type": ["null", "string"]},
    "os_hash_value": {"type": ["null", "string"]}, "owner": {"type": ["null", "string"]},
    "size": {"type": ["null", "integer"]}, "virtual_size": {"type": ["null", "integer"]},
    "min_ram": {"type": "integer"}, "min_disk": {"type": "integer"},
    "created_at": {"type": "string"}, "updated_at": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
    "disk_format": {"type": ["null", "string"]}, "container_format": {"type": ["null", "string"]},
    "self": {"type": "string"}, "file": {"type": "string"}, "schema": {"type": "string"},
}
IMAGE_SCHEMA = {"name": "image", "properties": _IMAGE_PROPERTIES,
                "additionalProperties": {"type": "string"},
                "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                          {"rel": "describedby", "href": "{schema}"}]}
MEMBER_SCHEMA = {"name": "member", "properties": {
    "image_id": {"type": "string"}, "member_id": {"type": "string"},
    "status": {"type": "string", "enum": ["pending", "accepted", "rejected"]},
    "created_at": {"type": "string"}, "updated_at": {"type": "string"},
    "schema": {"type": "string"}}}


async def schema_image(request: web.Request) -> web.Response:
    authorize(request, "image:get_schema")
    return web.json_response(IMAGE_SCHEMA)


async def schema_images(request: web.Request) -> web.Response:
    authorize(request, "image:get_schema")
    return web.json_response({"name": "images", "properties": {
        "images": {"type": "array", "items": IMAGE_SCHEMA}, "schema": {"type": "string"},
        "first": {"type": "string"}, "next": {"type": "string"}},
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}]})


async def schema_member(request: web.Request) -> web.Response:
    authorize(request, "image:get_schema")
    return web.json_response(MEMBER_SCHEMA)


async def schema_members(request: web.Request) -> web.Response:
    authorize(request, "image:get_schema")
    return web.json_response({"name": "members", "properties": {
        "members": {"type": "array", "items": MEMBER_SCHEMA}, "schema": {"type": "string"}}})


def routes() -> list[web.RouteDef]:
    v2 = "/image/v2"
    img = v2 + "/images/{image_id}"
    return [
        web.get("/image", root_versions), web.get("/image/", root_versions),
        web.get("/image/versions", versions), web.get(v2, versions), web.get(v2 + "/", versions),
        web.get(v2 + "/schemas/image", schema_image),
        web.get(v2 + "/schemas/images", schema_images),
        web.get(v2 + "/schemas/member", schema_member),
        web.get(v2 + "/schemas/members", schema_members),
        web.get(v2 + "/info/import", import_info),
        web.get(v2 + "/images", list_images),
        web.post(v2 + "/images", create_image),
        web.get(img, show_image),
        web.patch(img, update_image),
        web.delete(img, delete_image),
        web.put(img + "/file", upload_file),
        web.get(img + "/file", download_file),
        web.put(img + "/stage", stage_file),
        web.post(img + "/import", import_image),
        web.put(img + "/tags/{tag}", add_tag),
        web.delete(img + "/tags/{tag}", delete_tag),
        web.get(img + "/members", list_members),
        web.post(img + "/members", add_member),
        web.get(img + "/members/{member_id}", show_member),
        web.put(img + "/members/{member_id}", update_member),
        web.delete(img + "/members/{member_id}", delete_member),
        web.get(v2 + "/quotas/{project_id}", show_quota),
        web.put(v2 + "/quotas/{project_id}", update_quota),
    ]

