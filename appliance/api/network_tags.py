"""Neutron's tag sub-resource (the standard-attr-tag extension) for every network collection.

    GET    /{collection}/{id}/tags          {"tags": [...]}
    PUT    /{collection}/{id}/tags          {"tags": [...]} replaces them all → 200 {"tags": [...]}
    DELETE /{collection}/{id}/tags          removes them all → 204
    GET    /{collection}/{id}/tags/{tag}    204 when present, else 404
    PUT    /{collection}/{id}/tags/{tag}    adds one → 201
    DELETE /{collection}/{id}/tags/{tag}    removes one → 204, 404 when absent

`openstack network set --tag` and openstacksdk's `set_tags` use these, not the resource body.
The collection module hands in how to find a visible record and how to store its tags, so the
ownership and visibility rules stay in one place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from appliance.api.schemas.network import TAGS_REPLACE
from appliance.api.util import authorize
from appliance.api.validation import valid_body
from appliance.errors import BadRequest, NotFound

#: Neutron's limits: a tag is a string of at most 255 characters, a resource holds at most 50.
MAX_TAG_LENGTH = 255
MAX_TAGS = 50


@dataclass(frozen=True)
class Tagged:
    """How one collection finds a record the caller may change, and stores its tags."""
    find: Callable[[web.Request], Any]
    save: Callable[[web.Request, Any, list[str]], Awaitable[Any]]
    #: policy actions: reading tags is reading the resource, changing them is updating it
    get_action: str
    update_action: str


def _check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH \
            or any(ord(c) < 32 or ord(c) == 127 for c in tag) or "," in tag:
        raise BadRequest(f"Invalid input for tags: '{str(tag)[:64]}' is not a valid tag "
                         f"(1 to {MAX_TAG_LENGTH} characters, no commas or control characters).")
    return tag


def _check_count(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"Invalid input for tags: at most {MAX_TAGS} tags per resource.")
    return tags


def tag_routes(prefix: str, collections: dict[str, Tagged]) -> list[web.RouteDef]:
    routes: list[web.RouteDef] = []
    for collection, tagged in collections.items():
        base = f"{prefix}/{collection}/{{id}}/tags"
        routes += [web.get(base, _list(tagged)), web.put(base, _replace(tagged)),
                   web.delete(base, _clear(tagged)), web.get(base + "/{tag}", _check(tagged)),
                   web.put(base + "/{tag}", _add(tagged)),
                   web.delete(base + "/{tag}", _remove(tagged))]
    return routes


def _list(t: Tagged):
    async def list_tags(request: web.Request) -> web.Response:
        authorize(request, t.get_action)
        return web.json_response({"tags": list(t.find(request).tags)})
    return list_tags


def _replace(t: Tagged):
    async def replace_tags(request: web.Request) -> web.Response:
        authorize(request, t.update_action)
        record = t.find(request)
        body = await valid_body(request, TAGS_REPLACE)
        tags = _check_count(list(dict.fromkeys(_check_tag(x) for x in body["tags"])))
        await t.save(request, record, tags)
        return web.json_response({"tags": tags})
    return replace_tags


def _clear(t: Tagged):
    async def clear_tags(request: web.Request) -> web.Response:
        authorize(request, t.update_action)
        await t.save(request, t.find(request), [])
        return web.Response(status=204)
    return clear_tags


def _check(t: Tagged):
    async def check_tag(request: web.Request) -> web.Response:
        authorize(request, t.get_action)
        tag = request.match_info["tag"]
        if tag not in t.find(request).tags:
            raise NotFound(f"Tag {tag} could not be found.")
        return web.Response(status=204)
    return check_tag


def _add(t: Tagged):
    async def add_tag(request: web.Request) -> web.Response:
        authorize(request, t.update_action)
        record = t.find(request)
        tag = _check_tag(request.match_info["tag"])
        if tag not in record.tags:
            await t.save(request, record, _check_count([*record.tags, tag]))
        return web.Response(status=201)
    return add_tag


def _remove(t: Tagged):
    async def remove_tag(request: web.Request) -> web.Response:
        authorize(request, t.update_action)
        record = t.find(request)
        tag = request.match_info["tag"]
        if tag not in record.tags:
            raise NotFound(f"Tag {tag} could not be found.")
        await t.save(request, record, [x for x in record.tags if x != tag])
        return web.Response(status=204)
    return remove_tag
