"""Swift v1 API over `storage.objects` (what python-swiftclient and `openstack object` use).

    /info                                   capabilities and limits (public)
    /swift/v1/AUTH_<project>                account: GET listing, HEAD, POST metadata
                                            (everything below also under /v1/AUTH_…, as
                                            Swift itself; the catalog names /swift/v1)
    /swift/v1/AUTH_<project>/<container>    PUT, GET listing, HEAD, POST, DELETE
    /swift/v1/AUTH_<project>/<c>/<object>   PUT (stream, copy, SLO manifest), GET (ranges,
                                            large objects), HEAD, POST, DELETE, COPY
    /swift/monostack/auditor                auditor status (GET) and a pass now (POST): admin
    /swift/monostack/rebuild                re-derive the listing index from disk: admin

Names come from the *raw* path, decoded here (`swift.parse_path`): aiohttp leaves invalid
%-escapes undecoded, and a name must be exactly the UTF-8 the client meant or a 400.
Authorization: the account is AUTH_<project_id>; the token's project owns it (reader may
read, member may write, and only member/admin — Swift's owner roles — see ACLs and temp-URL
keys), admin may do all, and other projects (or anonymous readers with `.r:*`) get what the
container's X-Container-Read/Write grant. A request carrying temp_url_sig/temp_url_expires
is judged by `appliance.objects.tempurl` alone, as Swift's tempurl middleware would be. Engine errors become
appliance errors in one place (`_translate`); the middleware renders them as Swift does.
"""
from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote

from aiohttp import web

from appliance.api.util import authorize, ctx_of, public
from appliance.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientStorage,
    LengthRequired,
    MonostackError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    QuotaExceeded,
    RangeNotSatisfiable,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
)
from appliance.identity.policy import ROLE_RANK, AuthContext, enforce, owns
from appliance.objects import large, swift, tempurl
from appliance.objects.swift import Acl, SwiftPath
from storage import objects as so
from storage.objects import ObjectEngine, ObjectInfo, aiter_bytes, resolve_ranges
from storage.objects.diskfile import format_timestamp

log = logging.getLogger("monostack.api.objects")

# ------------------------------------------------------------------------------ errors

_ERRORS: dict[type[Exception], type[MonostackError]] = {
    so.InvalidName: BadRequest,
    so.ObjectNotFound: NotFound,
    so.ContainerNotFound: NotFound,
    so.ContainerNotEmpty: Conflict,
    so.EtagMismatch: Unprocessable,
    so.RangeNotSatisfiable: RangeNotSatisfiable,
    so.TooLarge: PayloadTooLarge,
    so.QuotaExceeded: QuotaExceeded,
    so.DiskFull: InsufficientStorage,
    so.InsufficientReplicas: ServiceUnavailable,
}


def _translate(exc: so.ObjectStorageError) -> MonostackError:
    """The one mapping from engine errors to appliance errors (and so to HTTP status)."""
    for cls in type(exc).__mro__:
        if cls in _ERRORS:
            return _ERRORS[cls](str(exc))
    return MonostackError(str(exc))


def swift_errors(handler: Callable) -> Callable:
    """Engine errors → appliance errors; a write's headers must be UTF-8 before anything runs."""
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if request.method in ("PUT", "POST", "COPY"):
            swift.check_headers_utf8(request.headers)
        try:
            return await handler(request)
        except so.ObjectStorageError as exc:
            raise _translate(exc) from exc
        except large.SegmentError as exc:  # before any byte was sent: Swift's 409
            raise Conflict(f"There was a conflict when trying to complete your request: {exc}") from exc
    return wrapper


# ------------------------------------------------------------------------------ access

def _component(request: web.Request):
    comp = ctx_of(request).components.object
    if comp is None:
        raise ServiceUnavailable("object storage is not running")
    return comp


def _caller(request: web.Request) -> AuthContext | None:
    """The token's identity; None for an anonymous request to a public (ACL-aware) route."""
    if "auth" in request:
        return request["auth"]
    token = request.headers.get("X-Auth-Token")
    if not token:
        return None
    auth = ctx_of(request).identity.validate(token)
    request["auth"] = auth
    return auth


def _owns(auth: AuthContext | None, path: SwiftPath) -> bool:
    return auth is not None and owns(auth, path.project_id)


def _swift_owner(auth: AuthContext | None, path: SwiftPath) -> bool:
    """Swift's `swift_owner` (keystoneauth's operator roles: member or admin here): only it
    sees ACLs and temp-URL keys. A reader of the project reads, but not those."""
    return _owns(auth, path) and auth is not None and (auth.is_admin or auth.rank >= ROLE_RANK["member"])


#: Metadata only the owner sees (Swift strips them for everyone else).
_OWNER_ONLY_META = ("temp-url-key", "temp-url-key-2")


async def _temp_url(request: web.Request, engine: ObjectEngine) -> tempurl.Grant | None:
    """The grant of the request's temp URL (checked once per request), None when it has none;
    an invalid or expired one is a 401 whatever token comes with it, as in Swift."""
    if "tempurl" in request:
        return request["tempurl"][1]
    q = tempurl.Query.of(request.query)
    if q is None:
        request["tempurl"] = (None, None)
        return None
    path = _path(request)
    keys: list[tuple[str, tempurl.Scope]] = []
    if path.object is not None:
        account = await engine.account_info(path.account)
        keys += [(account.meta[f"x-account-meta-{k}"], tempurl.Scope.ACCOUNT)
                 for k in tempurl.KEY_NAMES if account.meta.get(f"x-account-meta-{k}")]
        try:
            container = await engine.get_container(path.account, path.container)
            keys += [(container.meta[f"x-container-meta-{k}"], tempurl.Scope.CONTAINER)
                     for k in tempurl.KEY_NAMES if container.meta.get(f"x-container-meta-{k}")]
        except so.ContainerNotFound:
            pass
    grant = tempurl.verify(q, method=request.method, account=path.account, container=path.container or "",
                           obj=path.object or "", mounted_at=swift.path_prefix(request.raw_path) or "/v1/",
                           keys=keys, remote=request.remote, now=time.time())
    if grant is None:
        raise Unauthorized("Temp URL invalid")
    if request.method not in ("GET", "HEAD"):
        for h in tempurl.DISALLOWED_HEADERS:
            if h in request.headers:
                raise BadRequest(f"The header {h.title()!r} is not allowed in this tempurl")
    request["tempurl"] = (q, grant)
    return grant


def _manifest_param(request: web.Request) -> str | None:
    """?multipart-manifest=…, which a temp URL request does not pass on (Swift rewrites its
    query string to the temp URL parameters alone)."""
    if request.get("tempurl", (None, None))[1] is not None:
        return None
    return request.query.get("multipart-manifest")


async def _allow(request: web.Request, engine: ObjectEngine, path: SwiftPath, op: str) -> AuthContext | None:
    """Authorize `op` ("read" or "write") at the level `path` names, or raise 401/403.
    A valid temp URL reaches its account (or its one container) and nothing else."""
    grant = await _temp_url(request, engine)
    if grant is not None:
        if grant.covers(path.account, path.container):
            return None
        raise Unauthorized("Temp URL invalid")
    auth = _caller(request)
    level = "object" if path.object is not None else "container" if path.container else "account"
    if _owns(auth, path):
        assert auth is not None
        enforce(auth, f"object:{'get' if op == 'read' else 'update'}_{level}",
                target_project_id=path.project_id)
        return auth
    if path.container is not None:
        try:
            info = await engine.get_container(path.account, path.container)
            meta = info.meta
        except (so.ContainerNotFound, so.InvalidName):
            meta = {}
        if op == "read":
            acl = Acl.parse(meta.get("x-container-read"))
            if auth is not None and acl.allows(auth.project_id, auth.project_name, auth.user_id, auth.user_name):
                return auth
            if acl.public_read and (path.object is not None or acl.public_listing):
                return auth
        elif path.object is not None and auth is not None and auth.rank >= ROLE_RANK["member"]:
            acl = Acl.parse(meta.get("x-container-write"))
            if acl.allows(auth.project_id, auth.project_name, auth.user_id, auth.user_name):
                return auth
    if auth is None:
        raise Unauthorized("The request you have made requires authentication.")
    raise Forbidden("Access was denied to this resource.")


def _path(request: web.Request) -> SwiftPath:
    return swift.parse_path(request.raw_path)


def _base_headers(request: web.Request) -> dict[str, str]:
    rid = request.get("request_id", "")
    return {"X-Trans-Id": rid, "X-Openstack-Request-Id": rid}


#: What swob gives a response with no body of its own (a POST's 202, a DELETE's 204).
HTML = "text/html; charset=UTF-8"


def _no_content(request: web.Request, status: int = 204) -> web.Response:
    return web.Response(status=status, headers={"Content-Type": HTML, **_base_headers(request)})


# ------------------------------------------------------------------------------ /info

@public
async def info(request: web.Request) -> web.Response:
    comp = _component(request)
    return web.json_response({
        "swift": {
            "version": "2.34.0", "max_file_size": comp.config.object_max_file_size,
            "max_object_name_length": 1024, "max_container_name_length": 256,
            "max_account_name_length": 256, "container_listing_limit": swift.MAX_LISTING,
            "account_listing_limit": swift.MAX_LISTING, "max_meta_count": 90,
            "max_meta_overall_size": 4096, "max_header_size": 8192,
            "policies": [{"name": swift.STORAGE_POLICY, "default": True}],
            "strict_cors_mode": True,
        },
        "slo": {"max_manifest_segments": large.MAX_SEGMENTS,
                "max_manifest_size": large.MAX_MANIFEST_BYTES, "min_segment_size": 1},
        "dlo": {"max_segments": 10_000},
        "tempurl": tempurl.CAPABILITIES,
        "account_quotas": {},
        "container_quotas": {},
        "monostack": {"devices": len(comp.engine.ring.devices), "replicas": comp.engine.ring.replicas},
    })


# ------------------------------------------------------------------------------ admin

async def auditor_status(request: web.Request) -> web.Response:
    authorize(request, "object:get_auditor")
    return web.json_response({"auditor": _component(request).auditor_status()})


async def auditor_run(request: web.Request) -> web.Response:
    """Run one audit pass now and answer when it is done (tests, operators after a disk swap)."""
    authorize(request, "object:run_auditor")
    comp = _component(request)
    await comp.auditor.run_pass()
    return web.json_response({"auditor": comp.auditor_status()})


async def expirer_run(request: web.Request) -> web.Response:
    authorize(request, "object:run_expirer")
    return web.json_response({"expired": await _component(request).expire_now()})


async def rebuild_index(request: web.Request) -> web.Response:
    authorize(request, "object:rebuild_index")
    return web.json_response({"objects": await _component(request).engine.rebuild()})


# ------------------------------------------------------------------------------ listings

@dataclass
class _Listing:
    prefix: str
    delimiter: str
    marker: str
    end_marker: str
    limit: int
    reverse: bool

    @classmethod
    def of(cls, request: web.Request) -> "_Listing":
        q = request.query
        # As Swift: only a plain decimal limit counts ("1.5", "-1", "x" list the default
        # page); above the maximum is a 412. A delimiter may be any string.
        limit = swift.MAX_LISTING
        given = q.get("limit", "")
        if given.isascii() and given.isdigit():
            limit = int(given)
            if limit > swift.MAX_LISTING:
                raise PreconditionFailed(f"Maximum limit is {swift.MAX_LISTING}")
        delimiter = q.get("delimiter", "")
        reverse = (q.get("reverse") or "").lower() in ("1", "true", "yes", "on", "t", "y")
        return cls(q.get("prefix", ""), delimiter, q.get("marker", ""), q.get("end_marker", ""),
                   limit, reverse)

    def kwargs(self) -> dict[str, Any]:
        return dict(prefix=self.prefix, delimiter=self.delimiter, marker=self.marker,
                    end_marker=self.end_marker, limit=self.limit, reverse=self.reverse)


def _listing_response(request: web.Request, entries: list, headers: dict[str, str],
                      root_tag: str, root_name: str) -> web.Response:
    fmt = swift.listing_format(request.query, request.headers.get("Accept"))
    headers = {**headers, **_base_headers(request),
               "Content-Type": f"{swift.CONTENT_TYPES[fmt]}; charset=utf-8"}
    if request.method == "HEAD":
        return web.Response(status=204, headers=headers)
    if fmt == "json":
        body = json.dumps([swift.entry_json(e) for e in entries]).encode()
    elif fmt == "xml":
        body = swift.render_xml(root_tag, root_name, entries)
    else:
        body = swift.render_plain(entries)
        if not entries:
            return web.Response(status=204, headers=headers)
    return web.Response(status=200, body=body, headers=headers)


# ------------------------------------------------------------------------------ account

async def _account_headers(engine: ObjectEngine, account: str, *, owner: bool) -> dict[str, str]:
    ai = await engine.account_info(account)
    headers = {"X-Account-Container-Count": str(ai.container_count),
               "X-Account-Object-Count": str(ai.object_count),
               "X-Account-Bytes-Used": str(ai.bytes_used),
               "X-Timestamp": format_timestamp(0), "Accept-Ranges": "bytes"}
    if ai.container_count:
        # Swift's per-policy usage, for each policy that holds containers (there is one).
        pol = f"X-Account-Storage-Policy-{swift.STORAGE_POLICY}-"
        headers.update({pol + "Container-Count": str(ai.container_count),
                        pol + "Object-Count": str(ai.object_count),
                        pol + "Bytes-Used": str(ai.bytes_used)})
    meta = _strip(ai.meta, "x-account-meta-")
    headers.update(swift.metadata_headers(meta if owner else _public_meta(meta), "account"))
    return headers


def _public_meta(meta: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in meta.items() if k not in _OWNER_ONLY_META}


def _strip(meta: dict[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix):]: v for k, v in meta.items() if k.startswith(prefix)}


def _prefixed(meta: dict[str, str], prefix: str) -> dict[str, str]:
    return {prefix + k: v for k, v in meta.items()}


@public
@swift_errors
async def account_get(request: web.Request) -> web.Response:
    path = _path(request)
    engine = _component(request).engine
    auth = await _allow(request, engine, path, "read")
    headers = await _account_headers(engine, path.account, owner=_swift_owner(auth, path))
    if request.method == "HEAD":
        return _listing_response(request, [], headers, "account", path.account)
    entries = await engine.list_containers(path.account, **_Listing.of(request).kwargs())
    return _listing_response(request, entries, headers, "account", path.account)


@public
@swift_errors
async def account_post(request: web.Request) -> web.Response:
    path = _path(request)
    engine = _component(request).engine
    auth = await _allow(request, engine, path, "write")
    meta = swift.user_metadata(request.headers, "account")
    swift.check_aggregate(_strip((await engine.account_info(path.account)).meta, "x-account-meta-"), meta)
    if "quota-bytes" in meta:
        assert auth is not None
        enforce(auth, "object:set_account_quota", target_project_id=path.project_id)
        _check_int(meta["quota-bytes"], "X-Account-Meta-Quota-Bytes")
    await engine.post_account_metadata(path.account, _prefixed(meta, "x-account-meta-"))
    return _no_content(request)


def _check_int(value: str, header: str) -> None:
    if value != "":
        try:
            if int(value) < 0:
                raise ValueError
        except ValueError:
            raise BadRequest(f"{header} must be a non-negative integer") from None


# ------------------------------------------------------------------------------ container

def _container_meta(request: web.Request) -> dict[str, str]:
    meta = swift.user_metadata(request.headers, "container")
    for key in ("quota-bytes", "quota-count"):
        if key in meta:
            _check_int(meta[key], f"X-Container-Meta-{key.title()}")
    out = _prefixed(meta, "x-container-meta-")
    out.update(swift.container_settings(request.headers))
    return out


@public
@swift_errors
async def container_get(request: web.Request) -> web.Response:
    path = _path(request)
    engine = _component(request).engine
    auth = await _allow(request, engine, path, "read")
    ci = await engine.get_container(path.account, path.container)
    headers = {"X-Container-Object-Count": str(ci.object_count),
               "X-Container-Bytes-Used": str(ci.bytes_used),
               "X-Storage-Policy": swift.STORAGE_POLICY,
               "X-Timestamp": format_timestamp(ci.created),
               "Last-Modified": swift.http_date(ci.last_modified), "Accept-Ranges": "bytes"}
    owner = _swift_owner(auth, path)
    meta = _strip(ci.meta, "x-container-meta-")
    headers.update(swift.metadata_headers(meta if owner else _public_meta(meta), "container"))
    if owner:
        for h in swift.SYS_CONTAINER_HEADERS:
            if ci.meta.get(h):
                headers["-".join(p.title() for p in h.split("-"))] = ci.meta[h]
    if request.method == "HEAD":
        return _listing_response(request, [], headers, "container", path.container or "")
    entries = await engine.list_objects(path.account, path.container, **_Listing.of(request).kwargs())
    return _listing_response(request, entries, headers, "container", path.container or "")


@public
@swift_errors
async def container_put(request: web.Request) -> web.Response:
    path = _path(request)
    engine = _component(request).engine
    await _allow(request, engine, path, "write")
    policy = request.headers.get("X-Storage-Policy")
    if policy and policy.lower() != swift.STORAGE_POLICY.lower():  # "" asks for the default
        raise BadRequest(f"Invalid X-Storage-Policy {policy!r}")
    meta = _container_meta(request)
    created = await engine.create_container(path.account, path.container,
                                            {k: v for k, v in meta.items() if v != ""})
    if not created and meta:
        await engine.post_container_metadata(path.account, path.container, meta)
    return web.Response(status=201 if created else 202, headers=_base_headers(request),
                        content_type="text/html")


@public
@swift_errors
async def container_post(request: web.Request) -> web.Response:
    path = _path(request)
    engine = _component(request).engine
    await _allow(request, engine, path, "write")
    current = await engine.get_container(path.account, path.container)
    meta = _container_meta(request)
    swift.check_aggregate(_strip(current.meta, "x-container-meta-"), _strip(meta, "x-container-meta-"))
    await engine.post_container_metadata(path.account, path.container, meta)
    return _no_content(request)


@public
@swift_errors
async def container_delete(request: web.Request) -> web.Response:
    path = _path(request)
    engine = _component(request).engine
    await _allow(request, engine, path, "write")
    await engine.delete_container(path.account, path.container)
    return _no_content(request)


# ------------------------------------------------------------------------------ object reads

@dataclass
class _Resolved:
    """What a GET/HEAD serves: the object, the bytes it presents, and how to stream them."""

    info: ObjectInfo
    size: int
    etag: str  # as sent in the ETag header (quoted for large objects)
    segments: list[large.Segment] | None = None  # a large object's pieces
    pinned: bool = True
    body: Any = None  # the engine's ObjectBody for plain objects
    manifest: bool = False  # ?multipart-manifest=get of an SLO
    unsatisfiable: bool = False  # a plain object none of whose requested ranges exist


async def _resolve(request: web.Request, engine: ObjectEngine, path: SwiftPath,
                   specs: list | None, *, head: bool) -> _Resolved:
    a, c, o = path.account, path.container, path.object
    body = None
    if head:
        info = await engine.head_object(a, c, o)
    else:
        try:
            info, body = await engine.get_object(a, c, o, specs)
        except so.RangeNotSatisfiable:
            info = await engine.head_object(a, c, o)
            if not (large.is_slo(info) or large.dlo_manifest(info)):
                return _Resolved(info, info.size, info.etag, unsatisfiable=True)
            info, body = await engine.get_object(a, c, o)
    want_manifest = _manifest_param(request) == "get"
    if large.is_slo(info) and not want_manifest:
        if body is None or body.ranges is not None:
            _, body = await engine.get_object(a, c, o)
        segs = large.slo_segments(await body.read())
        return _Resolved(info, large.slo_size(info), f'"{large.etag_of(info)}"', segs)
    manifest = large.dlo_manifest(info)
    if manifest and not want_manifest:
        seg_container = manifest.partition("/")[0]
        await _allow(request, engine, SwiftPath(a, seg_container, "-"), "read")
        try:
            segs = await large.dlo_segments(engine, a, manifest)
        except so.ContainerNotFound:
            segs = []
        return _Resolved(info, sum(s.size for s in segs), f'"{large.dlo_etag(segs)}"', segs, pinned=False)
    if large.is_slo(info):  # the manifest itself
        return _Resolved(info, info.size, info.md5, body=body, manifest=True)
    return _Resolved(info, info.size, info.etag, body=body)


def _conditions(request: web.Request, etag: str, info: ObjectInfo) -> int | None:
    """304, 412 or None (proceed): If-Match and friends against what a GET would serve."""
    return swift.evaluate_conditions(request.headers, etag, info.last_modified,
                                     safe=request.method in ("GET", "HEAD"))


def _unsatisfiable(headers: dict[str, str], size: int) -> web.Response:
    """416 as swob answers it: the object's headers plus `Content-Range: bytes */<size>`."""
    return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"},
                        body=b"<html><h1>Requested Range Not Satisfiable</h1>"
                             b"<p>The Range requested is not available.</p></html>")


def _object_headers(request: web.Request, r: _Resolved) -> dict[str, str]:
    info = r.info
    h = {"ETag": r.etag, "Last-Modified": swift.http_date(info.last_modified),
         "X-Timestamp": info.meta_timestamp or info.timestamp, "Accept-Ranges": "bytes",
         "Content-Type": "application/json; charset=utf-8" if r.manifest
         else swift.split_swift_bytes(info.content_type)[0]}
    h.update(swift.metadata_headers(info.metadata, "object"))
    if info.sysmeta.get(swift.SYS_DISPOSITION):
        h["Content-Disposition"] = info.sysmeta[swift.SYS_DISPOSITION]
    if info.sysmeta.get(swift.SYS_ENCODING):
        h["Content-Encoding"] = info.sysmeta[swift.SYS_ENCODING]
    if info.sysmeta.get(swift.SYS_DLO):
        h["X-Object-Manifest"] = info.sysmeta[swift.SYS_DLO]
    if large.is_slo(info):
        h["X-Static-Large-Object"] = "True"
    if info.delete_at is not None:
        h["X-Delete-At"] = str(int(info.delete_at))
    h.update(_base_headers(request))
    return h


@public
@swift_errors
async def object_get(request: web.Request) -> web.StreamResponse:
    path = _path(request)
    engine = _component(request).engine
    await _allow(request, engine, path, "read")
    head = request.method == "HEAD"
    specs = None if head else swift.parse_range(request.headers.get("Range"))
    r = await _resolve(request, engine, path, specs, head=head)
    headers = _object_headers(request, r)
    status = _conditions(request, r.etag, r.info)
    if status is None and r.unsatisfiable:
        status = 416
    q, grant = request.get("tempurl", (None, None))
    if grant is not None:
        headers = tempurl.outgoing(headers, q, grant, success_read=status is None)
    if status is not None:  # 304 or 412, both carrying the object's ETag as Swift's do
        if status == 304:
            headers.pop("Content-Type", None)
        if status == 416:
            return _unsatisfiable(headers, r.size)
        return web.Response(status=status, headers=headers)
    if head:
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_length = r.size
        await resp.prepare(request)
        await resp.write_eof()
        return resp
    if r.segments is not None:
        try:
            ranges = resolve_ranges(specs, r.size) if specs else None
        except so.RangeNotSatisfiable:
            return _unsatisfiable(headers, r.size)
        if ranges and len(ranges) > 1 and not r.pinned:
            ranges = None  # Swift's DLO serves several ranges as the whole object (200)
        parts = [(s, e, large.stream_segments(engine, path.account, r.segments, s, e, pinned=r.pinned))
                 for s, e in (ranges or [(0, r.size)])]
    else:
        ranges = r.body.ranges
        parts = list(r.body.parts()) if ranges else [(0, r.size, aiter(r.body))]
    return await _send(request, headers, r.size, parts, ranged=ranges is not None)


async def _primed(it: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        first = await anext(it)
    except StopAsyncIteration:
        return aiter_bytes(b"")

    async def chained() -> AsyncIterator[bytes]:
        yield first
        async for chunk in it:
            yield chunk
    return chained()


async def _send(request: web.Request, headers: dict[str, str], size: int,
                parts: list[tuple[int, int, AsyncIterator[bytes]]], *, ranged: bool) -> web.StreamResponse:
    """Stream the whole object, one range (206 + Content-Range) or several
    (multipart/byteranges). A failure after the headers are out aborts the connection,
    so the client sees a short body, never a complete-looking wrong one."""
    resp = web.StreamResponse(status=206 if ranged else 200, headers=headers)
    frames: list[tuple[bytes, AsyncIterator[bytes]]] = []
    tail = b""
    if ranged and len(parts) == 1:
        s, e, it = parts[0]
        resp.headers["Content-Range"] = f"bytes {s}-{e - 1}/{size}"
        resp.content_length = e - s
        frames.append((b"", it))
    elif ranged:
        boundary = uuid.uuid4().hex
        ctype = headers.get("Content-Type", "application/octet-stream")
        resp.headers["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
        length = 0
        for i, (s, e, it) in enumerate(parts):
            head = (("\r\n" if i else "") + f"--{boundary}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Range: bytes {s}-{e - 1}/{size}\r\n\r\n").encode()
            frames.append((head, it))
            length += len(head) + (e - s)
        tail = f"\r\n--{boundary}--".encode()
        resp.content_length = length + len(tail)
    else:
        resp.content_length = size
        frames.append((b"", parts[0][2]))
    # The first bytes are read before the status goes out, so a large object whose first
    # segment is gone or nests too deep is a 409 (as Swift's), not a truncated 200.
    frames[0] = (frames[0][0], await _primed(frames[0][1]))
    await resp.prepare(request)
    try:
        for head, it in frames:
            if head:
                await resp.write(head)
            # One chunk is held back until the stream ends: the engine verifies a large
            # object's md5 only after its last byte, so a corrupt replica must cost the
            # client a short body, never a complete-looking wrong one.
            held = None
            async for chunk in it:
                if held is not None:
                    await resp.write(held)
                held = chunk
            if held is not None:
                await resp.write(held)
        if tail:
            await resp.write(tail)
    except (ConnectionResetError, OSError) as exc:
        if request.transport is not None:
            request.transport.abort()
        log.info("client went away mid-object", extra={"error": str(exc)})
        return resp
    except Exception as exc:  # noqa: BLE001 - headers are out: abort, never finish cleanly
        log.error("object read failed mid-stream", extra={"path": request.path, "error": str(exc)})
        if request.transport is not None:
            request.transport.abort()
        return resp
    await resp.write_eof()
    return resp


# ------------------------------------------------------------------------------ object writes

def _object_sysmeta(headers, *, post: bool) -> dict[str, str]:
    sys: dict[str, str] = {}
    for header, key in (("Content-Disposition", swift.SYS_DISPOSITION),
                        ("Content-Encoding", swift.SYS_ENCODING)):
        if header in headers:
            sys[key] = headers[header]
        elif post:
            sys[key] = ""  # a POST replaces these as it replaces user metadata
    if post and "X-Object-Manifest" not in headers:
        sys[swift.SYS_DLO] = ""  # a POST replaces it with the rest, as Swift's object server does
    if "X-Object-Manifest" in headers:
        value = headers["X-Object-Manifest"]
        container, slash, _ = value.lstrip("/").partition("/")
        if not container or not slash:
            raise BadRequest("X-Object-Manifest must be of the form <container>/<prefix>")
        sys[swift.SYS_DLO] = value.lstrip("/")
    return sys


def _written(request: web.Request, info: ObjectInfo, etag: str) -> web.Response:
    return web.Response(status=201, content_type="text/html", headers={
        "ETag": etag, "Last-Modified": swift.http_date(info.last_modified),
        "X-Timestamp": info.timestamp, **_base_headers(request)})


async def _read_limited(request: web.Request, limit: int) -> bytes:
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
    return bytes(data)


@public
@swift_errors
async def object_put(request: web.Request) -> web.Response:
    path = _path(request)
    comp = _component(request)
    engine: ObjectEngine = comp.engine
    await _allow(request, engine, path, "write")
    headers = request.headers
    if "X-Copy-From" in headers:
        src_c, src_o = swift.split_container_object(headers["X-Copy-From"], "X-Copy-From")
        src_account = _other_account(headers.get("X-Copy-From-Account"), path.account)
        return await _copy(request, comp, SwiftPath(src_account, src_c, src_o), path)
    meta = swift.user_metadata(headers, "object")
    content_type = swift.split_swift_bytes(
        headers.get("Content-Type") or swift.guess_content_type(path.object or ""))[0]
    sysmeta = {k: v for k, v in _object_sysmeta(headers, post=False).items() if v != ""}
    delete_at = swift.delete_at_from(headers)
    limit = comp.config.object_max_file_size
    length = request.content_length
    if length is None and "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        raise LengthRequired("PUT needs a Content-Length or a chunked body")
    if length is not None and length > limit:
        raise PayloadTooLarge(f"Your request is too large: objects are limited to {limit} bytes")
    if "If-None-Match" in headers:
        if headers["If-None-Match"].strip() != "*":
            raise BadRequest("If-None-Match on PUT only supports '*'")
        try:
            await engine.head_object(path.account, path.container, path.object)
            raise PreconditionFailed("the object exists (If-None-Match: *)")
        except so.ObjectNotFound:
            pass
    if _manifest_param(request) == "put":
        raw = await _read_limited(request, large.MAX_MANIFEST_BYTES)
        manifest, etag, total = await large.build_slo_manifest(engine, path.account, raw,
                                                               (path.container or "", path.object or ""))
        if headers.get("ETag") and headers["ETag"].strip('"').lower() != etag:
            raise Unprocessable(f"manifest ETag {etag} does not match the one sent")
        sysmeta.update({swift.SYS_SLO: "1", swift.SYS_SLO_SIZE: str(total), swift.SYS_SLO_ETAG: etag})
        info = await engine.put_object(path.account, path.container, path.object, aiter_bytes(manifest),
                                       swift.with_swift_bytes(content_type, total, etag), meta,
                                       delete_at=delete_at, sysmeta=sysmeta,
                                       content_length=total)
        return _written(request, info, f'"{etag}"')
    info = await engine.put_object(
        path.account, path.container, path.object, request.content.iter_any(), content_type, meta,
        expected_etag=headers.get("ETag") or None, max_bytes=limit, content_length=length,
        delete_at=delete_at, sysmeta=sysmeta)
    return _written(request, info, info.etag)


async def _copy(request: web.Request, comp, src: SwiftPath, dst: SwiftPath) -> web.Response:
    """Swift copies what a GET of the source with this request's Range and conditions would
    return: a large object assembled into one plain object, a Range only those bytes."""
    engine: ObjectEngine = comp.engine
    await _allow(request, engine, src, "read")
    await _allow(request, engine, dst, "write")
    headers = request.headers
    meta = swift.user_metadata(headers, "object")
    fresh = (headers.get("X-Fresh-Metadata") or "").lower() in ("1", "true", "yes", "on")
    content_type = swift.split_swift_bytes(headers.get("Content-Type") or "")[0] or None
    src_info = await engine.head_object(src.account, src.container, src.object)
    specs = swift.parse_range(headers.get("Range"))
    want_manifest = _manifest_param(request) == "get"
    assemble = (large.is_slo(src_info) or large.dlo_manifest(src_info)) and not want_manifest
    if specs or assemble:
        r = await _resolve(request, engine, src, None, head=True)
        if _conditions(request, r.etag, r.info) is not None:
            raise PreconditionFailed("A precondition for this request was not met.")
        start, end = 0, r.size
        if specs:
            if len(specs) > 1:
                raise BadRequest("a copy takes a single byte range")
            try:
                [(start, end)] = resolve_ranges(specs, r.size)
            except so.RangeNotSatisfiable:
                raise RangeNotSatisfiable(f"bytes */{r.size}") from None
        if r.segments is not None:
            stream = large.stream_segments(engine, src.account, r.segments, start, end, pinned=r.pinned)
        else:
            _, body = await engine.get_object(src.account, src.container, src.object, [(start, end - 1)])
            stream = aiter(body)
        merged = dict(meta) if fresh else {**src_info.metadata, **meta}
        sysmeta = {k: v for k, v in src_info.sysmeta.items()
                   if k in (swift.SYS_DISPOSITION, swift.SYS_ENCODING)}
        info = await engine.put_object(dst.account, dst.container, dst.object, stream,
                                       content_type or swift.split_swift_bytes(src_info.content_type)[0],
                                       merged, sysmeta=sysmeta, content_length=end - start,
                                       max_bytes=comp.config.object_max_file_size)
    else:
        if _conditions(request, src_info.etag, src_info) is not None:
            raise PreconditionFailed("A precondition for this request was not met.")
        if content_type and large.is_slo(src_info):  # the manifest keeps its whole length
            content_type = swift.with_swift_bytes(content_type, large.slo_size(src_info),
                                                  large.etag_of(src_info))
        info = await engine.copy_object(src.account, src.container, src.object,
                                        dst.account, dst.container, dst.object,
                                        metadata=meta, fresh_metadata=fresh, content_type=content_type)
    resp = _written(request, info, f'"{large.etag_of(info)}"' if large.is_slo(info) else info.etag)
    resp.headers["X-Copied-From"] = quote(f"{src.container}/{src.object}")
    resp.headers["X-Copied-From-Last-Modified"] = swift.http_date(src_info.last_modified)
    if src.account != dst.account:
        resp.headers["X-Copied-From-Account"] = quote(src.account)
    return resp


@public
@swift_errors
async def object_copy(request: web.Request) -> web.Response:
    """COPY with a Destination header: the same as a PUT with X-Copy-From."""
    path = _path(request)
    await _allow(request, _component(request).engine, path, "read")
    dest = request.headers.get("Destination")
    if not dest:
        raise PreconditionFailed("COPY needs a Destination header: <container>/<object>")
    account = _other_account(request.headers.get("Destination-Account"), path.account)
    c, o = swift.split_container_object(dest, "Destination")
    return await _copy(request, _component(request), path, SwiftPath(account, c, o))


def _other_account(header: str | None, default: str) -> str:
    """Destination-Account / X-Copy-From-Account: another AUTH_ account, which the caller
    must be allowed into like any other (`_allow` decides on both ends of a copy)."""
    if not header:
        return default
    account = swift.parse_path("/v1/" + header.strip("/") + "/").account
    return account


@public
@swift_errors
async def object_post(request: web.Request) -> web.Response:
    path = _path(request)
    engine = _component(request).engine
    await _allow(request, engine, path, "write")
    headers = request.headers
    meta = swift.user_metadata(headers, "object")
    content_type = swift.split_swift_bytes(headers.get("Content-Type") or "")[0] or None
    if content_type:
        info = await engine.head_object(path.account, path.container, path.object)
        if large.is_slo(info):  # the manifest keeps its whole length for listings
            content_type = swift.with_swift_bytes(content_type, large.slo_size(info),
                                                  large.etag_of(info))
    await engine.post_metadata(path.account, path.container, path.object, meta,
                               content_type=content_type,
                               delete_at=swift.delete_at_from(headers),
                               sysmeta=_object_sysmeta(headers, post=True))
    return _no_content(request, 202)


async def _delete_segments(request: web.Request, engine: ObjectEngine, account: str,
                           segs: list[large.Segment], tally: dict[str, int], errors: list[list[str]],
                           *, depth: int) -> None:
    """A manifest's segments, and a sub-SLO's own segments before it (as Swift's
    multipart-manifest=delete), each only where the caller may write."""
    for seg in segs:
        if seg.data is not None:
            continue  # inline bytes live in the manifest itself
        seg_path = SwiftPath(account, seg.container, seg.name)
        try:
            await _allow(request, engine, seg_path, "write")
            if seg.sub_slo and depth < large.MAX_DEPTH:
                try:
                    inner = await large.sub_manifest(engine, account, seg)
                except large.SegmentError:
                    inner = []
                await _delete_segments(request, engine, account, inner, tally, errors, depth=depth + 1)
            await engine.delete_object(account, seg.container, seg.name)
            tally["deleted"] += 1
        except so.ObjectNotFound:
            tally["not_found"] += 1
        except (MonostackError, so.ObjectStorageError) as exc:
            errors.append([f"/{seg.container}/{seg.name}", str(exc)])


@public
@swift_errors
async def object_delete(request: web.Request) -> web.Response:
    path = _path(request)
    engine = _component(request).engine
    await _allow(request, engine, path, "write")
    if "X-If-Delete-At" in request.headers:  # delete only the version due at that time
        try:
            due = int(float(request.headers["X-If-Delete-At"]))
        except ValueError:
            raise BadRequest("Bad X-If-Delete-At header value") from None
        current = await engine.head_object(path.account, path.container, path.object)
        if current.delete_at is None or int(current.delete_at) != due:
            raise PreconditionFailed("X-If-Delete-At and X-Delete-At do not match")
    if _manifest_param(request) == "delete":
        info, body = await engine.get_object(path.account, path.container, path.object)
        tally = {"deleted": 0, "not_found": 0}
        errors: list[list[str]] = []
        if large.is_slo(info):
            await _delete_segments(request, engine, path.account, large.slo_segments(await body.read()),
                                   tally, errors, depth=1)
        await engine.delete_object(path.account, path.container, path.object)
        tally["deleted"] += 1
        return web.json_response({"Number Deleted": tally["deleted"], "Number Not Found": tally["not_found"],
                                  "Errors": errors, "Response Status": "200 OK",
                                  "Response Body": ""}, headers=_base_headers(request))
    await engine.delete_object(path.account, path.container, path.object)
    return _no_content(request)


# ------------------------------------------------------------------------------ routes

def routes() -> list[web.RouteDef]:
    out = [
        web.get("/info", info), web.get("/swift/info", info),
        web.get("/swift/monostack/auditor", auditor_status, allow_head=False),
        web.post("/swift/monostack/auditor", auditor_run),
        web.post("/swift/monostack/expirer", expirer_run),
        web.post("/swift/monostack/rebuild", rebuild_index),
    ]
    for prefix in swift.PATH_PREFIXES:
        account = prefix + "{account}"
        container = account + "/{container}"
        obj = container + "/{object:.+}"
        for p in (account, account + "/"):
            out += [web.get(p, account_get), web.post(p, account_post)]
        for p in (container, container + "/"):
            out += [web.get(p, container_get), web.put(p, container_put),
                    web.post(p, container_post), web.delete(p, container_delete)]
        out += [web.get(obj, object_get), web.put(obj, object_put), web.post(obj, object_post),
                web.delete(obj, object_delete), web.route("COPY", obj, object_copy)]
    return out
