"""Flavors (admin creates; bootstrap defaults; is_public=None) and key pairs."""
import pytest

from appliance.errors import BadRequest, Conflict, Forbidden, NotFound

C = "/compute/v2.1"
H = {"OpenStack-API-Version": "compute 2.60"}


async def member_client(daemon, admin, name="alice"):
    from appliance.client import MonostackClient
    proj = (await admin.post("/identity/v3/projects", {"project": {"name": f"p-{name}"}}))["project"]
    user = (await admin.post("/identity/v3/users", {"user": {
        "name": name, "password": "pw-" + name, "default_project_id": proj["id"]}}))["user"]
    roles = (await admin.get("/identity/v3/roles?name=member"))["roles"]
    await admin.put(f"/identity/v3/projects/{proj['id']}/users/{user['id']}/roles/{roles[0]['id']}")
    client = MonostackClient(socket_path=daemon.config.api.socket)
    await client.login(name, "pw-" + name, f"p-{name}")
    return client


async def test_bootstrap_flavors_and_is_public_none(nova):
    flavors = (await nova.get(f"{C}/flavors/detail?is_public=None", headers=H))["flavors"]
    by_name = {f["name"]: f for f in flavors}
    assert {"m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"} <= set(by_name)
    tiny = by_name["m1.tiny"]
    assert (tiny["vcpus"], tiny["ram"], tiny["disk"]) == (1, 128, 1)
    assert tiny["os-flavor-access:is_public"] is True and tiny["OS-FLV-EXT-DATA:ephemeral"] == 0
    summary = (await nova.get(f"{C}/flavors"))["flavors"]
    assert set(summary[0]) == {"id", "name", "links"}


async def test_flavor_create_generates_id_and_name_lookup_is_404(nova):
    body = {"flavor": {"name": "f1", "ram": 256, "vcpus": 2, "disk": 2, "swap": 0,
                       "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": True,
                       "id": None}}
    f = (await nova.post(f"{C}/flavors", body))["flavor"]
    assert f["id"] and f["name"] == "f1" and f["vcpus"] == 2
    assert (await nova.get(f"{C}/flavors/{f['id']}"))["flavor"]["ram"] == 256
    with pytest.raises(NotFound):
        await nova.get(f"{C}/flavors/f1")  # the SDK's find: by-id first must 404
    with pytest.raises(Conflict):
        await nova.post(f"{C}/flavors", body)
    specs = await nova.post(f"{C}/flavors/{f['id']}/os-extra_specs",
                            {"extra_specs": {"hw:cpu_policy": "dedicated"}})
    assert specs["extra_specs"] == {"hw:cpu_policy": "dedicated"}
    await nova.delete(f"{C}/flavors/{f['id']}")
    with pytest.raises(NotFound):
        await nova.get(f"{C}/flavors/{f['id']}")


async def test_member_cannot_create_flavors_but_can_list(compute_daemon, nova):
    alice = await member_client(compute_daemon, nova)
    try:
        assert (await alice.get(f"{C}/flavors"))["flavors"]
        with pytest.raises(Forbidden):
            await alice.post(f"{C}/flavors", {"flavor": {"name": "x", "ram": 1, "vcpus": 1,
                                                         "disk": 0}})
    finally:
        await alice.close()


async def test_keypair_generate_and_import(nova):
    gen = (await nova.post(f"{C}/os-keypairs", {"keypair": {"name": "k1"}}, headers=H))["keypair"]
    assert gen["public_key"].startswith("ssh-ed25519 ")
    assert "PRIVATE KEY" in gen["private_key"]
    assert len(gen["fingerprint"].split(":")) == 16
    pub = gen["public_key"]
    imp = (await nova.post(f"{C}/os-keypairs", {"keypair": {"name": "k2", "public_key": pub}}))
    assert imp["keypair"]["fingerprint"] == gen["fingerprint"]
    assert "private_key" not in imp["keypair"]
    listed = (await nova.get(f"{C}/os-keypairs"))["keypairs"]
    assert sorted(k["keypair"]["name"] for k in listed) == ["k1", "k2"]
    shown = (await nova.get(f"{C}/os-keypairs/k2"))["keypair"]
    assert shown["user_id"] and shown["public_key"] == pub
    with pytest.raises(Conflict):
        await nova.post(f"{C}/os-keypairs", {"keypair": {"name": "k1"}})
    with pytest.raises(BadRequest):
        await nova.post(f"{C}/os-keypairs", {"keypair": {"name": "k3", "public_key": "junk"}})
    await nova.delete(f"{C}/os-keypairs/k1")
    with pytest.raises(NotFound):
        await nova.get(f"{C}/os-keypairs/k1")
