"""os-instance-actions: every server action is recorded with its request, user and steps;
a failed build says why (`openstack server event list/show`)."""
from __future__ import annotations

import pytest

from appliance.client import MonostackClient
from appliance.errors import NotFound
from tests.api.compute.conftest import TEST_IMAGE_ID, wait_status
from tests.daemon import wait_for

C = "/compute/v2.1"
MV = {"OpenStack-API-Version": "compute 2.60"}


async def _actions(client, sid, **kw):
    return (await client.get(f"{C}/servers/{sid}/os-instance-actions", **kw))["instanceActions"]


async def _finished(client, sid, request_id):
    async def check():
        a = (await client.get(f"{C}/servers/{sid}/os-instance-actions/{request_id}",
                              headers=MV))["instanceAction"]
        return a if a["events"] and all(e["finish_time"] for e in a["events"]) else None
    return await wait_for(check, timeout=30, interval=0.05)


async def test_actions_are_recorded_with_their_steps(nova):
    sid = (await nova.post(f"{C}/servers", {"server": {
        "name": "acted", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}))["server"]["id"]
    await wait_status(nova, sid, "ACTIVE")
    await nova.post(f"{C}/servers/{sid}/action", {"os-stop": None})
    await wait_status(nova, sid, "SHUTOFF")
    await nova.post(f"{C}/servers/{sid}/action", {"lock": None})
    actions = await _actions(nova, sid, headers=MV)
    assert [a["action"] for a in actions] == ["lock", "stop", "create"]  # newest first
    create = actions[-1]
    assert create["user_id"] == nova.session.user_id and create["request_id"].startswith("req-")
    assert create["project_id"] == nova.session.project_id and create["message"] is None
    assert "updated_at" in create and "updated_at" not in (await _actions(nova, sid))[0]
    shown = await _finished(nova, sid, create["request_id"])
    assert [(e["event"], e["result"]) for e in shown["events"]] == [
        ("compute__do_build_and_run_instance", "Success")]
    stop = await _finished(nova, sid, actions[1]["request_id"])
    assert stop["events"][0]["event"] == "compute_stop_instance"
    # paging (2.58): limit and marker
    page = \
        (await nova.get(f"{C}/servers/{sid}/os-instance-actions?limit=1&marker="
                        f"{actions[0]['request_id']}", headers=MV))["instanceActions"]
    assert [a["action"] for a in page] == ["stop"]
    with pytest.raises(NotFound):
        await nova.get(f"{C}/servers/{sid}/os-instance-actions/req-nope")


async def test_a_failed_build_says_why(nova, compute_daemon):
    pid = nova.session.project_id
    await nova.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {"ram": -1}})
    huge = (await nova.post(f"{C}/flavors", {"flavor": {
        "name": "huge", "ram": 4_000_000, "vcpus": 1, "disk": 1}}))["flavor"]
    sid = (await nova.post(f"{C}/servers", {"server": {
        "name": "doomed", "imageRef": TEST_IMAGE_ID, "flavorRef": huge["id"]}}))["server"]["id"]
    await wait_status(nova, sid, "ERROR")
    (create,) = await _actions(nova, sid)
    assert create["action"] == "create" and create["message"] == "Error"
    shown = await _finished(nova, sid, create["request_id"])
    (event,) = shown["events"]
    assert event["result"] == "Error" and "No valid host" in event["details"]
    assert "Traceback" in event["traceback"]  # an admin sees the traceback
    # a member of the project sees the events from 2.51, never the traceback
    member = await _project_member(compute_daemon, nova, pid)
    try:
        old = (await member.get(f"{C}/servers/{sid}/os-instance-actions/"
                                f"{create['request_id']}"))["instanceAction"]
        assert "events" not in old
        new = (await member.get(f"{C}/servers/{sid}/os-instance-actions/"
                                f"{create['request_id']}", headers=MV))["instanceAction"]
        assert new["events"][0]["result"] == "Error" and "traceback" not in new["events"][0]
    finally:
        await member.close()


async def test_another_projects_actions_are_not_found(nova, compute_daemon):
    sid = (await nova.post(f"{C}/servers", {"server": {
        "name": "mine", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}))["server"]["id"]
    proj = (await nova.post("/v3/projects", {"project": {"name": "elsewhere"}}))["project"]
    outsider = await _project_member(compute_daemon, nova, proj["id"], "outsider")
    try:
        with pytest.raises(NotFound):
            await outsider.get(f"{C}/servers/{sid}/os-instance-actions")
    finally:
        await outsider.close()


async def _project_member(daemon, admin, project_id, name="watcher") -> MonostackClient:
    user = (await admin.post("/v3/users", {"user": {"name": name, "password": "pw-" + name}}))[
        "user"]
    role = (await admin.get("/v3/roles?name=member"))["roles"][0]
    await admin.put(f"/v3/projects/{project_id}/users/{user['id']}/roles/{role['id']}")
    client = MonostackClient(socket_path=daemon.config.api.socket)
    project = (await admin.get(f"/v3/projects/{project_id}"))["project"]["name"]
    await client.login(name, "pw-" + name, project)
    return client


async def test_a_posted_password_survives_a_task_saving_its_copy(nova, compute_daemon):
    """A task holds its copy of the instance record for minutes and saves it at the end: a
    password the guest posted meanwhile must survive that save."""
    from tests.api.compute.conftest import manager_of
    sid = (await nova.post(f"{C}/servers", {"server": {
        "name": "pw", "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}))["server"]["id"]
    await wait_status(nova, sid, "ACTIVE")
    manager = manager_of(compute_daemon)
    stale = manager.instances.require(sid)  # the task's copy, taken before the POST
    component = compute_daemon.appliance.ctx.components.compute
    assert await component.set_instance_password(sid, "ciphertext")
    assert not await component.set_instance_password(sid, "again")  # once only (Nova: 409)
    stale.description = "saved by a task"
    await manager.save(stale, deleting=True)
    shown = (await nova.get(f"{C}/servers/{sid}/os-server-password"))["password"]
    assert shown == "ciphertext"
    await nova.delete(f"{C}/servers/{sid}/os-server-password")
    assert (await nova.get(f"{C}/servers/{sid}/os-server-password"))["password"] == ""
