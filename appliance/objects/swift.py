"""Swift's HTTP semantics that need no I/O: names from the raw path, metadata headers, ACLs,
ranges, conditional requests and listing formats.

Pure functions, so the handlers in `appliance.api.objects` stay a sequence of decisions and
these rules can be unit-tested without a daemon.
"""
from __future__ import annotations

import math
import mimetypes
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from typing import Iterable, Mapping
from urllib.parse import unquote_to_bytes

from appliance.errors import BadRequest, NotFound, PreconditionFailed
from storage.objects import ContainerEntry, ObjectEntry, Subdir

ACCOUNT_PREFIX = "AUTH_"
#: Where the API answers: Swift's own `/v1/AUTH_…` (what most tooling assumes on the
#: object-store endpoint's host) and `/swift/v1/AUTH_…` (what the catalog advertises).
PATH_PREFIXES = ("/swift/v1/", "/v1/")
MAX_LISTING = 10_000
MAX_META_NAME = 128
MAX_META_VALUE = 256
MAX_META_COUNT = 90
MAX_META_OVERALL = 4096
#: Swift caps X-Delete-At at ten digits (a later date means "never", in effect).
MAX_DELETE_AT = 9_999_999_999
MAX_RANGES = 100
STORAGE_POLICY = "Policy-0"

#: sysmeta keys (stored with the object, not user metadata)
SYS_DISPOSITION = "content-disposition"
SYS_ENCODING = "content-encoding"
SYS_DLO = "x-object-manifest"
SYS_SLO = "slo"
SYS_SLO_SIZE = "slo-size"
SYS_SLO_ETAG = "slo-etag"  # an SLO's ETag; its stored etag is the manifest's md5, as in Swift
SYS_CONTAINER_HEADERS = ("x-container-read", "x-container-write", "x-versions-location",
                         "x-history-location")


# ------------------------------------------------------------------------------ paths

@dataclass(frozen=True)
class SwiftPath:
    """The account, container and object named by a request, decoded from the raw path."""

    account: str
    container: str | None = None
    object: str | None = None

    @property
    def project_id(self) -> str:
        return self.account[len(ACCOUNT_PREFIX):]


def _decode(segment: str, what: str) -> str:
    """%-decode to bytes and insist on UTF-8: aiohttp leaves invalid escapes undecoded,
    so `%ff%fe` would otherwise become the literal name "%ff%fe"."""
    try:
        return unquote_to_bytes(segment).decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"{what} name is not valid UTF-8") from None


def trans_id() -> str:
    """A transaction id in Swift's form (`tx` + 21 hex + `-` + the epoch in 10 hex digits):
    tooling parses the time back out of it."""
    return f"tx{uuid.uuid4().hex[:21]}-{int(time.time()):010x}"


def path_prefix(raw_path: str) -> str | None:
    return next((p for p in PATH_PREFIXES if raw_path.startswith(p)), None)


def parse_path(raw_path: str, prefix: str | None = None) -> SwiftPath:
    """Split the raw request path exactly as the router did (on '/' before decoding)."""
    path = raw_path.split("?", 1)[0]
    prefix = prefix or path_prefix(path)
    if prefix is None or not path.startswith(prefix):
        raise NotFound("not a Swift path")
    parts = path[len(prefix):].split("/", 2)
    account = _decode(parts[0], "account")
    if not account.startswith(ACCOUNT_PREFIX) or len(account) == len(ACCOUNT_PREFIX):
        raise NotFound(f"account {account!r} is not of the form AUTH_<project_id>")
    container = _decode(parts[1], "container") if len(parts) > 1 and parts[1] else None
    obj = _decode(parts[2], "object") if len(parts) > 2 and parts[2] else None
    return SwiftPath(account, container, obj)


def split_container_object(value: str, what: str, *, quoted: bool = True) -> tuple[str, str]:
    """`/container/object` or `container/object`: %-encoded in X-Copy-From and Destination,
    plain names in an SLO manifest's paths (`quoted=False`)."""
    value = _decode(value, what).lstrip("/") if quoted and "%" in value else value.lstrip("/")
    container, _, obj = value.partition("/")
    if not container or not obj:
        raise PreconditionFailed(f"{what} must be of the form <container>/<object>")
    return container, obj


# ------------------------------------------------------------------------------ metadata

def user_metadata(headers: Mapping[str, str], kind: str) -> dict[str, str]:
    """X-<Kind>-Meta-Foo: v → {"foo": "v"}; X-Remove-<Kind>-Meta-Foo → {"foo": ""}.

    For accounts and containers "" removes the item; an object keeps it (Swift stores an
    object's empty values and a POST replaces the whole set). Swift's limits apply, and
    names and values must be UTF-8: aiohttp hands other bytes over as surrogates, which
    would fail later, when the trailer is encoded, as a 500.
    """
    out: dict[str, str] = {}
    set_prefix, remove_prefix = f"x-{kind}-meta-", f"x-remove-{kind}-meta-"
    for key, value in headers.items():
        k = key.lower()
        if k in (set_prefix, remove_prefix):
            raise BadRequest("Metadata name cannot be empty")
        if k.startswith(set_prefix):
            name, value = k[len(set_prefix):], value.strip()
        elif k.startswith(remove_prefix):
            name, value = k[len(remove_prefix):], ""
        else:
            continue
        _check_utf8(key, value)
        if len(name.encode()) > MAX_META_NAME:
            raise BadRequest(f"Metadata name too long; max {MAX_META_NAME}: {key}")
        if len(value.encode()) > MAX_META_VALUE:
            raise BadRequest(f"Metadata value longer than {MAX_META_VALUE}: {key}")
        out[name] = value
    if len(out) > MAX_META_COUNT:
        raise BadRequest(f"Too many metadata items; max {MAX_META_COUNT}")
    if sum(len(k.encode()) + len(v.encode()) for k, v in out.items()) > MAX_META_OVERALL:
        raise BadRequest(f"Total metadata too large; max {MAX_META_OVERALL}")
    return out


def check_aggregate(existing: Mapping[str, str], changes: Mapping[str, str]) -> None:
    """An account's or container's metadata after a POST stays within Swift's limits as a
    whole (each request alone may be within them and the sum not)."""
    merged = {k: v for k, v in {**existing, **changes}.items() if v != ""}
    if len(merged) > MAX_META_COUNT:
        raise BadRequest(f"Too many metadata items; max {MAX_META_COUNT}")
    if sum(len(k.encode()) + len(v.encode()) for k, v in merged.items()) > MAX_META_OVERALL:
        raise BadRequest(f"Total metadata too large; max {MAX_META_OVERALL}")


def _check_utf8(header: str, value: str, what: str = "Metadata") -> None:
    try:
        header.encode("utf-8")
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = header.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise BadRequest(f"{what} must be valid UTF-8: {shown}") from None


def check_headers_utf8(headers: Mapping[str, str]) -> None:
    """Every header a write may store (X-*, Content-*, Destination) must be UTF-8: 400 else."""
    for key, value in headers.items():
        if key.lower().startswith(("x-", "content-")) or key.lower() == "destination":
            _check_utf8(key, value, "Header")


def metadata_headers(meta: Mapping[str, str], kind: str) -> dict[str, str]:
    """Stored metadata as response headers; an object's empty values are shown, as Swift does."""
    return {f"X-{kind.title()}-Meta-{_title(k)}": v for k, v in meta.items()
            if v != "" or kind == "object"}


def _title(key: str) -> str:
    return "-".join(p[:1].upper() + p[1:] for p in key.split("-"))


def container_settings(headers: Mapping[str, str]) -> dict[str, str]:
    """Container-level headers kept beside user metadata (ACLs, versioning); "" removes."""
    out: dict[str, str] = {}
    for h in SYS_CONTAINER_HEADERS:
        if h in {k.lower() for k in headers}:
            out[h] = headers.get(h, "").strip()
        if "x-remove-" + h[2:] in {k.lower() for k in headers}:
            out[h] = ""
    return out


def split_stored_type(content_type: str) -> tuple[str, int | None, str | None]:
    """`type;slo_etag=E;swift_bytes=N` → (type, N, E). Swift keeps a static large object's
    whole length (and its ETag) beside its manifest's stored Content-Type, so listings show
    them while the container's bytes-used counts the manifest; clients never see them."""
    total = etag = None
    while True:
        head, sep, tail = content_type.rpartition(";")
        key, _, value = tail.partition("=")
        if sep and key == "swift_bytes" and total is None and value.isascii() and value.isdigit():
            total = int(value)
        elif sep and key == "slo_etag" and etag is None and len(value) == 32 and value.isalnum():
            etag = value
        else:
            return content_type, total, etag
        content_type = head


def split_swift_bytes(content_type: str) -> tuple[str, int | None]:
    base, total, _ = split_stored_type(content_type)
    return base, total


def with_swift_bytes(content_type: str, total: int, slo_etag: str | None = None) -> str:
    base = split_stored_type(content_type)[0]
    return f"{base};slo_etag={slo_etag};swift_bytes={total}" if slo_etag else f"{base};swift_bytes={total}"


def guess_content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def delete_at_from(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """X-Delete-At (epoch) or X-Delete-After (seconds); None when neither is given."""
    now = time.time() if now is None else now
    try:
        if "X-Delete-After" in headers:
            after = int(headers["X-Delete-After"])
            if after < 0:
                raise ValueError
            return float(int(now) + after)
        if "X-Delete-At" in headers:
            at = int(float(headers["X-Delete-At"]))
            if at < now:
                raise BadRequest("X-Delete-At is in the past")
            return float(min(at, MAX_DELETE_AT))
    except ValueError:
        raise BadRequest("X-Delete-At / X-Delete-After must be a non-negative integer") from None
    return None


# ------------------------------------------------------------------------------ ACLs

@dataclass(frozen=True)
class Acl:
    """A parsed X-Container-Read/Write value (the keystoneauth subset).

    `project:user` grants a user of a project (either part may be `*`; ids or names);
    `.r:*` grants anonymous reads; `.rlistings` lets those anonymous readers list too.
    """

    grants: tuple[tuple[str, str], ...] = ()
    public_read: bool = False
    public_listing: bool = False

    @classmethod
    def parse(cls, value: str | None) -> "Acl":
        grants, public, listings = [], False, False
        for item in (value or "").split(","):
            item = item.strip()
            if not item:
                continue
            if item in (".r:*", ".referrer:*"):
                public = True
            elif item == ".rlistings":
                listings = True
            elif item.startswith(".r:") or item.startswith(".referrer:"):
                continue  # referrer domains other than * are not supported: grant nothing
            elif ":" in item:
                project, _, user = item.partition(":")
                grants.append((project, user))
            else:
                grants.append((item, "*"))  # a bare project (keystone v2 style)
        return cls(tuple(grants), public, listings)

    def allows(self, project_id: str | None, project_name: str | None,
               user_id: str, user_name: str) -> bool:
        for project, user in self.grants:
            if project not in ("*", project_id, project_name):
                continue
            if user in ("*", user_id, user_name):
                return True
        return False


# ------------------------------------------------------------------------------ ranges

def parse_range(header: str | None) -> list[tuple[int | None, int | None]] | None:
    """`bytes=0-9,20-,-5` → [(0, 9), (20, None), (None, 5)]; None if absent or malformed
    (RFC 7233: an unparseable Range is ignored and the whole object is served)."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    out: list[tuple[int | None, int | None]] = []
    for part in spec.split(","):
        part = part.strip()
        first, dash, last = part.partition("-")
        if not dash:
            return None
        try:
            if not first.strip():
                out.append((None, int(last)))
            else:
                f = int(first)
                la = int(last) if last.strip() else None
                if f < 0 or (la is not None and la < f):
                    return None
                out.append((f, la))
        except ValueError:
            return None
    if len(out) > MAX_RANGES:
        return None
    return out


# ------------------------------------------------------------------------------ conditions

def http_date(t: float) -> str:
    """Last-Modified: whole seconds, rounded up as Swift does (so If-Modified-Since of a
    Last-Modified just read answers 304)."""
    return format_datetime(datetime.fromtimestamp(math.ceil(t), timezone.utc), usegmt=True)


def _parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags:
        return True
    bare = etag.strip('"')
    return any(t.removeprefix("W/").strip('"') == bare for t in tags)


def evaluate_conditions(headers: Mapping[str, str], etag: str, last_modified: float,
                        *, safe: bool) -> int | None:
    """RFC 7232 order: 412 for If-Match/If-Unmodified-Since, then 304 (GET/HEAD) or 412
    (other methods) for If-None-Match/If-Modified-Since; None when the request proceeds."""
    lm = math.ceil(last_modified)
    if "If-Match" in headers and not _etag_matches(headers["If-Match"], etag):
        return 412
    since = _parse_http_date(headers.get("If-Unmodified-Since"))  # Swift checks both
    if since is not None and lm > since:
        return 412
    if "If-None-Match" in headers:
        if _etag_matches(headers["If-None-Match"], etag):
            return 304 if safe else 412
    elif safe:
        since = _parse_http_date(headers.get("If-Modified-Since"))
        if since is not None and lm <= since:
            return 304
    return None


# ------------------------------------------------------------------------------ listings

def listing_time(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def listing_format(query: Mapping[str, str], accept: str | None) -> str:
    fmt = (query.get("format") or "").lower()
    if fmt in ("json", "xml", "plain"):
        return fmt
    accept = (accept or "").lower()
    if "application/json" in accept:
        return "json"
    if "application/xml" in accept or "text/xml" in accept:
        return "xml"
    return "plain"


CONTENT_TYPES = {"json": "application/json", "xml": "application/xml", "plain": "text/plain"}


def entry_json(e: ObjectEntry | ContainerEntry | Subdir) -> dict:
    if isinstance(e, Subdir):
        return {"subdir": e.subdir}
    if isinstance(e, ContainerEntry):
        return {"name": e.name, "count": e.count, "bytes": e.bytes,
                "last_modified": listing_time(e.last_modified), "storage_policy": STORAGE_POLICY}
    content_type, total, slo_etag = split_stored_type(e.content_type)
    out = {"name": e.name, "hash": e.hash, "bytes": e.bytes if total is None else total,
           "content_type": content_type, "last_modified": listing_time(e.last_modified)}
    if slo_etag:
        out["slo_etag"] = f'"{slo_etag}"'
    return out


def render_xml(root_tag: str, root_name: str, entries: Iterable) -> bytes:
    root = ET.Element(root_tag, name=root_name)
    item_tag = "container" if root_tag == "account" else "object"
    for e in entries:
        d = entry_json(e)
        if "subdir" in d:
            sub = ET.SubElement(root, "subdir", name=d["subdir"])
            ET.SubElement(sub, "name").text = d["subdir"]
            continue
        item = ET.SubElement(root, item_tag)
        for k, v in d.items():
            ET.SubElement(item, k).text = str(v)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def render_plain(entries: Iterable) -> bytes:
    return "".join(e.name + "\n" for e in entries).encode("utf-8")
