"""Swift's temporary URLs: a signed query string that lets anyone holding the link do one
method on one object (or every object under a prefix) until it expires, without a token.

The rules are Swift's tempurl middleware's, so links made by `swift tempurl`,
swiftclient's `generate_temp_url` or hand-written HMAC code work unchanged:
- keys: X-Account-Meta-Temp-URL-Key(-2) (valid in the whole account) and
  X-Container-Meta-Temp-URL-Key(-2) (valid in that container only);
- the signed text is `METHOD\\nEXPIRES\\nPATH` (prefixed by `ip=RANGE\\n` with
  temp_url_ip_range), PATH being `/v1/<account>/<container>/<object>`, or
  `prefix:/v1/<account>/<container>/<prefix>` with temp_url_prefix. A link made against
  this appliance's `/swift/v1/…` URL signs that path instead; both are accepted;
- signatures: hex HMAC-SHA1/256/512 (told apart by length) or `<digest>:<base64>`;
- temp_url_expires: epoch seconds or `%Y-%m-%dT%H:%M:%SZ`; past is invalid;
- HEAD is allowed by a HEAD, GET, POST or PUT signature;
- responses lose X-Object-Meta-* except X-Object-Meta-Public-*; a successful GET or HEAD
  says Content-Disposition (attachment named after the object, or `filename`, or `inline`)
  and Expires.
Pure functions: the handler fetches the keys and applies the verdict.
"""
from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import ipaddress
import posixpath
import time
from dataclasses import dataclass
from email.utils import formatdate
from enum import Enum
from typing import Mapping
from urllib.parse import quote

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_HEX_LENGTHS = {40: "sha1", 64: "sha256", 128: "sha512"}
ISO8601 = "%Y-%m-%dT%H:%M:%SZ"
KEY_NAMES = ("temp-url-key", "temp-url-key-2")
#: Headers a temp URL may not send on a write: they would point the object at other data.
DISALLOWED_HEADERS = ("x-object-manifest", "x-symlink-target")
OUTGOING_REMOVE = "x-object-meta-"
OUTGOING_ALLOW = "x-object-meta-public-"

#: What /info advertises (Swift's defaults; sha1 allowed but deprecated, as there).
CAPABILITIES = {
    "methods": list(METHODS),
    "incoming_remove_headers": ["x-timestamp", "x-open-expired"],
    "incoming_allow_headers": [],
    "outgoing_remove_headers": [OUTGOING_REMOVE + "*"],
    "outgoing_allow_headers": [OUTGOING_ALLOW + "*"],
    "allowed_digests": sorted(DIGESTS),
    "deprecated_digests": ["sha1"],
}


class Scope(Enum):
    ACCOUNT = "account"
    CONTAINER = "container"


@dataclass(frozen=True)
class Query:
    """The temp URL parameters of a request (each None when absent)."""

    sig: str | None
    expires: str | None
    prefix: str | None
    filename: str | None
    inline: bool
    ip_range: str | None

    @classmethod
    def of(cls, query: Mapping[str, str]) -> "Query | None":
        """None when the request is not a temp URL request at all."""
        if "temp_url_sig" not in query and "temp_url_expires" not in query:
            return None
        return cls(query.get("temp_url_sig"), query.get("temp_url_expires"), query.get("temp_url_prefix"),
                   query.get("filename"), "inline" in query, query.get("temp_url_ip_range"))


@dataclass(frozen=True)
class Grant:
    """What a valid temp URL lets this one request reach: its account, or one container."""

    account: str
    container: str | None
    expires: int
    object: str

    def covers(self, account: str, container: str | None) -> bool:
        return account == self.account and (self.container is None or container == self.container)


def normalize_expires(value: str | None, now: float) -> int:
    """Epoch seconds, or 0 when missing, malformed or past (Swift's rule)."""
    if not value:
        return 0
    try:
        expires = int(value)
    except ValueError:
        try:
            expires = calendar.timegm(time.strptime(value, ISO8601))
        except ValueError:
            return 0
    return expires if expires >= now else 0


def parse_signature(value: str) -> tuple[str, str]:
    """(digest name, hex signature); ValueError when it cannot be one."""
    if ":" in value:
        algo, b64 = value.split(":", 1)
        if ("-" in b64 or "_" in b64) and not ("+" in b64 or "/" in b64):
            b64 = b64.replace("-", "+").replace("_", "/")
        b64 = b64.rstrip("=")
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except binascii.Error as exc:
            raise ValueError(str(exc)) from None
        hexsig = raw.hex()
    else:
        bytes.fromhex(value)
        algo, hexsig = _HEX_LENGTHS.get(len(value), ""), value.lower()
    if algo not in DIGESTS:
        raise ValueError("unsupported digest")
    return algo, hexsig


def signature(key: str, method: str, expires: int, path: str, algo: str,
              ip_range: str | None = None) -> str:
    parts = [method, str(expires), path]
    if ip_range:
        parts.insert(0, f"ip={ip_range}")
    return hmac.new(key.encode(), "\n".join(parts).encode(), DIGESTS[algo]).hexdigest()


def verify(q: Query, *, method: str, account: str, container: str, obj: str,
           mounted_at: str, keys: list[tuple[str, Scope]], remote: str | None,
           now: float) -> Grant | None:
    """The grant a temp URL gives this request, or None (the caller answers 401).

    `mounted_at` is the URL prefix the request came in under (`/v1/` or `/swift/v1/`).
    """
    expires = normalize_expires(q.expires, now)
    if not q.sig or not expires or method not in METHODS or not obj or not keys:
        return None
    try:
        algo, sig = parse_signature(q.sig)
    except ValueError:
        return None
    if q.ip_range:
        try:
            if remote is None or ipaddress.ip_address(remote) not in ipaddress.ip_network(q.ip_range):
                return None
        except ValueError:
            return None
    if q.prefix is None:
        tails, mark = [f"{account}/{container}/{obj}"], ""
    elif obj.startswith(q.prefix):
        tails, mark = [f"{account}/{container}/{q.prefix}"], "prefix:"
    else:
        return None
    paths = {mark + root + tail for root in ("/v1/", mounted_at) for tail in tails}
    methods = ("HEAD", "GET", "POST", "PUT") if method == "HEAD" else (method,)
    for key, scope in keys:
        for m in methods:
            for path in paths:
                if hmac.compare_digest(sig, signature(key, m, expires, path, algo, q.ip_range)):
                    return Grant(account, container if scope is Scope.CONTAINER else None, expires, obj)
    return None


def disposition(kind: str, filename: str) -> str:
    """RFC 6266 with the RFC 5987 form beside it, as Swift writes it."""
    return f"{kind}; filename=\"{quote(filename, safe=' /')}\"; filename*=UTF-8''{quote(filename)}"


def outgoing(headers: dict[str, str], q: Query, grant: Grant, *, success_read: bool) -> dict[str, str]:
    """A response as a temp URL holder gets it: private metadata removed; on a successful
    GET/HEAD the Content-Disposition Swift chooses and an Expires header."""
    out = {k: v for k, v in headers.items()
           if not k.lower().startswith(OUTGOING_REMOVE) or k.lower().startswith(OUTGOING_ALLOW)}
    if success_read:
        existing = out.pop("Content-Disposition", None)
        if q.inline:
            value = disposition("inline", q.filename) if q.filename else "inline"
        elif q.filename:
            value = disposition("attachment", q.filename)
        elif existing:
            value = existing
        else:
            value = disposition("attachment", posixpath.basename(grant.object.rstrip("/")))
        out["Content-Disposition"] = value.replace("\n", "%0A")
        out["Expires"] = formatdate(grant.expires, usegmt=True)
    return out
