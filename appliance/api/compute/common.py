"""Shared bits of the Nova API: microversions, lookups, links, policy helpers.

Microversions: MIN 2.1, MAX 2.60. A request names one with `OpenStack-API-Version: compute X`
or `X-OpenStack-Nova-API-Version: X` ("latest" = MAX); bodies that changed shape up to MAX are
formatted for the version asked (flavor embedded in servers from 2.47, createImage body from
2.45, locked from 2.9, description from 2.19, tags from 2.26, flavor description from 2.55).
"""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from appliance.api.microversions import Microversions, fmt_version
from appliance.api.util import auth_of, ctx_of
from appliance.errors import BadRequest, Conflict, NotFound
from appliance.identity.policy import owns

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 60)
NOVA = Microversions("compute", MIN_VERSION, MAX_VERSION,
                     legacy_header="X-OpenStack-Nova-API-Version")


def parse_version(request: web.Request) -> tuple[int, int]:
    return NOVA.parse(request)


def versioned(handler: Any) -> Any:
    """Wrap a handler: parse the microversion into request["mv"], echo it in the answer."""
    async def keep_mv(request: web.Request) -> web.StreamResponse:
        request["mv"] = NOVA.of(request)
        return await handler(request)
    keep_mv.__name__ = getattr(handler, "__name__", "handler")
    keep_mv.__doc__ = handler.__doc__
    if getattr(handler, "__monostack_public__", False):
        keep_mv.__monostack_public__ = True  # type: ignore[attr-defined]
    return NOVA.wrap(keep_mv)


def mv(request: web.Request) -> tuple[int, int]:
    return request.get("mv", MIN_VERSION)


def at_least(request: web.Request, minor: int) -> bool:
    return mv(request) >= (2, minor)


def component(request: web.Request) -> Any:
    comp = ctx_of(request).components.compute
    if comp is None:
        raise NotFound("compute is not running")
    return comp


def base_url(request: web.Request) -> str:
    return ctx_of(request).config.api.base_url + "/compute/v2.1"


def links(request: web.Request, kind: str, id: str, project_id: str | None = None) -> list[dict]:
    base = base_url(request)
    root = ctx_of(request).config.api.base_url + "/compute"
    return [{"rel": "self", "href": f"{base}/{kind}/{id}"},
            {"rel": "bookmark", "href": f"{root}/{kind}/{id}"}]


def require_instance(request: web.Request, server_id: str, action: str) -> Any:
    """The instance if the caller may see it (404 otherwise, as Nova: no existence leak)."""
    from appliance.api.util import authorize
    inst = component(request).manager.instances.get(server_id)
    auth = auth_of(request)
    if inst is None or not owns(auth, inst.project_id):
        raise NotFound(f"Instance {server_id} could not be found.")
    authorize(request, action, target_project_id=inst.project_id)
    return inst


def check_not_locked(request: web.Request, inst: Any) -> None:
    if inst.locked and not auth_of(request).is_admin:
        raise Conflict(f"Instance {inst.id} is locked")


# Control characters (they also cannot live in libvirt's XML), lone surrogates (not UTF-8) and
# the two non-characters: a name holding one is refused here, not at boot.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def server_name(value: Any) -> str:
    """A server name Nova would accept: 1-255 printable characters, not all blank."""
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise BadRequest("Invalid input for field/attribute name: a name of 1-255 characters "
                         "is required.")
    bad = _UNPRINTABLE.search(value)
    if bad:
        raise BadRequest(f"Invalid input for field/attribute name: {bad.group()!r} is not a "
                         "printable character.")
    return value


def dict_field(body: dict, key: str, what: str) -> dict:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object")
    return value


def str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              and 0 < len(k) <= 255 and len(v) <= 255
                                              for k, v in value.items()):
        raise BadRequest(f"Invalid {what}: keys and values must be strings of at most 255 "
                         "characters")
    return dict(value)
