"""Nova's os-instance-actions: `openstack server event list/show`.

    GET /servers/{id}/os-instance-actions                 newest first (limit/marker, 2.58)
    GET /servers/{id}/os-instance-actions/{request_id}    with its events

Events are shown to admins, and to the server's own project from 2.51 (as Nova); a failed
step's traceback only to admins. `updated_at` from 2.58.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from appliance.api.compute.common import at_least, component, require_instance
from appliance.api.util import auth_of, query_int
from appliance.compute.actions import InstanceAction
from appliance.compute.records import iso
from appliance.errors import BadRequest, NotFound


def _action_view(request: web.Request, a: InstanceAction) -> dict[str, Any]:
    body: dict[str, Any] = {"action": a.action, "instance_uuid": a.instance_id,
                            "message": a.message, "project_id": a.project_id,
                            "request_id": a.request_id, "start_time": iso(a.start_time),
                            "user_id": a.user_id}
    if at_least(request, 58):
        body["updated_at"] = iso(a.updated_at)
    return body


def _event_view(request: web.Request, e: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event": e.event, "start_time": iso(e.start_time),
                            "finish_time": iso(e.finish_time), "result": e.result}
    if auth_of(request).is_admin:
        body["traceback"] = e.traceback
    if e.details is not None:
        body["details"] = e.details
    return body


async def list_actions(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"],
                            "compute:list_instance_actions")
    actions = component(request).manager.actions.of_instance(inst.id)
    marker = request.query.get("marker")
    if marker:
        ids = [a.request_id for a in actions]
        if marker not in ids:
            raise BadRequest(f"Marker {marker} could not be found.")
        actions = actions[ids.index(marker) + 1:]
    limit = query_int(request, "limit", None, 0, 1000)
    if limit is not None:
        actions = actions[:limit]
    return web.json_response({"instanceActions": [_action_view(request, a) for a in actions]})


async def show_action(request: web.Request) -> web.Response:
    inst = require_instance(request, request.match_info["id"],
                            "compute:show_instance_action")
    rid = request.match_info["request_id"]
    action = component(request).manager.actions.get(inst.id, rid)
    if action is None:
        raise NotFound(f"Action for request_id {rid} on instance {inst.id} not found")
    body = _action_view(request, action)
    if auth_of(request).is_admin or at_least(request, 51):
        body["events"] = [_event_view(request, e) for e in action.events]
    return web.json_response({"instanceAction": body})
