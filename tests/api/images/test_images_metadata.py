"""Image records: create, JSON patch, listing (filters, sort, paging), sharing and visibility."""
from __future__ import annotations

import pytest

from appliance.errors import BadRequest, Conflict, Forbidden, NotFound
from tests.api.images.conftest import create_image

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}


async def test_discovery_documents(image_daemon):
    import aiohttp
    async with aiohttp.ClientSession() as http:
        for path in ("/image", "/image/", "/image/versions"):
            async with http.get(image_daemon.url + path) as r:
                # the unversioned root is Glance's 300 Multiple Choices, /versions a 200
                assert r.status == (200 if path.endswith("versions") else 300)
                body = await r.json()
                current = body["versions"][0]
                assert current["status"] == "CURRENT"
                assert current["links"][0]["href"] == image_daemon.url + "/image/v2/"


async def test_create_keeps_extra_properties_top_level(admin):
    img = await create_image(admin, "props", **{"owner_specified.openstack.md5": "",
                                                "owner_specified.openstack.object": "images/p",
                                                "hw_disk_bus": "virtio"})
    assert img["owner_specified.openstack.object"] == "images/p"
    assert img["hw_disk_bus"] == "virtio"
    assert img["visibility"] == "shared" and img["owner"] == admin.session.project_id
    for bad in ({"status": "active"}, {"checksum": "x"}, {"os_glance_import_task": "x"}):
        with pytest.raises(Forbidden):
            await create_image(admin, "bad", **bad)
    with pytest.raises(BadRequest):
        await create_image(admin, "bad", disk_format="floppy")
    with pytest.raises(BadRequest):
        await create_image(admin, "bad", custom=5)


async def test_json_patch_add_replace_remove(admin):
    img = await create_image(admin, "patchme")
    url = f"/image/v2/images/{img['id']}"
    out = await admin.patch(url, [
        {"op": "replace", "path": "/name", "value": "patched"},
        {"op": "replace", "path": "/min_disk", "value": 2},
        {"op": "add", "path": "/min_ram", "value": 128},
        {"op": "add", "path": "/tags", "value": ["a", "b"]},
        {"op": "add", "path": "/architecture", "value": "x86_64"},
        {"op": "add", "path": "/owner_specified.openstack~1x", "value": "slash"},
    ], headers=PATCH)
    assert (out["name"], out["min_disk"], out["min_ram"]) == ("patched", 2, 128)
    assert out["tags"] == ["a", "b"] and out["architecture"] == "x86_64"
    assert out["owner_specified.openstack/x"] == "slash"
    out = await admin.patch(url, [{"op": "replace", "path": "/architecture", "value": "aarch64"},
                                  {"op": "remove", "path": "/owner_specified.openstack~1x"}],
                            headers=PATCH)
    assert out["architecture"] == "aarch64" and "owner_specified.openstack/x" not in out
    # the 2.0 form
    out = await admin.patch(url, [{"replace": "/name", "value": "old-style"}], headers=PATCH)
    assert out["name"] == "old-style"
    # refused operations change nothing (all or nothing)
    with pytest.raises(Conflict):
        await admin.patch(url, [{"op": "replace", "path": "/name", "value": "nope"},
                                {"op": "replace", "path": "/missing", "value": "x"}], headers=PATCH)
    assert (await admin.get(url))["name"] == "old-style"
    with pytest.raises(Conflict):
        await admin.patch(url, [{"op": "remove", "path": "/missing"}], headers=PATCH)
    with pytest.raises(Forbidden):
        await admin.patch(url, [{"op": "replace", "path": "/status", "value": "active"}],
                          headers=PATCH)
    with pytest.raises(Forbidden):
        await admin.patch(url, [{"op": "remove", "path": "/name"}], headers=PATCH)
    with pytest.raises(BadRequest):
        await admin.patch(url, [{"op": "move", "path": "/name"}], headers=PATCH)
    with pytest.raises(BadRequest):
        await admin.patch(url, [{"op": "replace", "path": "/min_disk", "value": -1}], headers=PATCH)
    await admin.put(f"{url}/tags/c")
    await admin.delete(f"{url}/tags/a")
    assert (await admin.get(url))["tags"] == ["b", "c"]


async def test_listing_filters_sort_and_paging(admin):
    ids = []
    for i, (name, fmt) in enumerate([("b", "qcow2"), ("a", "raw"), ("c", "qcow2"),
                                     ("d", "raw"), ("e", "qcow2")]):
        img = await create_image(admin, name, disk_format=fmt, min_ram=i, tags=["t"] if i % 2 else [])
        ids.append(img["id"])
    listing = await admin.get("/image/v2/images")
    assert "next" not in listing
    assert [i["name"] for i in listing["images"]] == ["e", "d", "c", "a", "b"]  # newest first
    names = lambda q: [i["name"] for i in q["images"]]  # noqa: E731
    assert names(await admin.get("/image/v2/images?sort_key=name&sort_dir=asc")) == list("abcde")
    assert names(await admin.get("/image/v2/images?sort=disk_format:asc,name:desc")) == \
        ["e", "c", "b", "d", "a"]
    assert names(await admin.get("/image/v2/images?name=c")) == ["c"]
    assert sorted(names(await admin.get("/image/v2/images?disk_format=raw"))) == ["a", "d"]
    assert sorted(names(await admin.get(f"/image/v2/images?id=in:{ids[0]},{ids[2]}"))) == ["b", "c"]
    assert sorted(names(await admin.get("/image/v2/images?tag=t"))) == ["a", "d"]
    assert names(await admin.get("/image/v2/images?status=active")) == []
    # paging: next only while more remain, and following it walks everything once
    seen, url = [], "/image/v2/images?limit=2&sort_key=name&sort_dir=asc"
    while url:
        page = await admin.get(url)
        seen += names(page)
        assert len(page["images"]) <= 2
        url = ("/image" + page["next"]) if "next" in page else None
    assert seen == list("abcde")
    last = await admin.get(f"/image/v2/images?limit=2&sort_key=name&sort_dir=asc&marker={ids[2]}")
    assert names(last) == ["d", "e"] and "next" not in last
    with pytest.raises(BadRequest):
        await admin.get("/image/v2/images?marker=nope")
    with pytest.raises(BadRequest):
        await admin.get("/image/v2/images?sort_key=bogus")


async def test_visibility_matrix(admin, projects):
    owner = await projects.member("vis-owner")
    other = await projects.member("vis-other")
    friend = await projects.member("vis-friend")
    imgs = {v: await create_image(owner, f"img-{v}", visibility=v)
            for v in ("private", "shared", "community")}
    with pytest.raises(Forbidden):
        await create_image(owner, "img-public", visibility="public")
    imgs["public"] = await create_image(admin, "img-public", visibility="public")

    def listed(listing):
        return {i["name"] for i in listing["images"]}

    assert listed(await owner.get("/image/v2/images")) == {
        "img-private", "img-shared", "img-community", "img-public"}
    assert listed(await other.get("/image/v2/images")) == {"img-public"}
    assert listed(await other.get("/image/v2/images?visibility=community")) == {"img-community"}
    # by id: community and public yes, private and (unshared) shared no
    await other.get(f"/image/v2/images/{imgs['community']['id']}")
    for v in ("private", "shared"):
        with pytest.raises(NotFound):
            await other.get(f"/image/v2/images/{imgs[v]['id']}")
        with pytest.raises(NotFound):
            await other.patch(f"/image/v2/images/{imgs[v]['id']}",
                              [{"op": "replace", "path": "/name", "value": "x"}], headers=PATCH)
    with pytest.raises(Forbidden):  # visible but not theirs
        await other.patch(f"/image/v2/images/{imgs['community']['id']}",
                          [{"op": "replace", "path": "/name", "value": "x"}], headers=PATCH)
    with pytest.raises(Forbidden):
        await other.delete(f"/image/v2/images/{imgs['public']['id']}")
    # the admin sees everything
    assert {"img-private", "img-shared", "img-community", "img-public"} <= \
        listed(await admin.get("/image/v2/images"))

    # sharing: pending members see it by id but not in the list; accepted members list it
    sid = imgs["shared"]["id"]
    fid = friend.session.project_id
    member = await owner.post(f"/image/v2/images/{sid}/members", {"member": fid})
    assert member["status"] == "pending"
    with pytest.raises(Conflict):
        await owner.post(f"/image/v2/images/{sid}/members", {"member": fid})
    with pytest.raises(Forbidden):  # private images have no members
        await owner.post(f"/image/v2/images/{imgs['private']['id']}/members", {"member": fid})
    await friend.get(f"/image/v2/images/{sid}")
    assert "img-shared" not in listed(await friend.get("/image/v2/images"))
    assert "img-shared" in listed(await friend.get("/image/v2/images?member_status=pending"))
    with pytest.raises(Forbidden):  # only the member decides
        await owner.put(f"/image/v2/images/{sid}/members/{fid}", {"status": "accepted"})
    await friend.put(f"/image/v2/images/{sid}/members/{fid}", {"status": "accepted"})
    assert "img-shared" in listed(await friend.get("/image/v2/images"))
    assert "img-shared" in listed(await friend.get("/image/v2/images?visibility=shared"))
    assert [m["member_id"] for m in (await friend.get(f"/image/v2/images/{sid}/members"))["members"]] == [fid]
    assert (await owner.get(f"/image/v2/images/{sid}/members/{fid}"))["status"] == "accepted"
    with pytest.raises(NotFound):
        await other.get(f"/image/v2/images/{sid}/members")
    await owner.delete(f"/image/v2/images/{sid}/members/{fid}")
    with pytest.raises(NotFound):
        await friend.get(f"/image/v2/images/{sid}")


async def test_reader_cannot_write(admin, projects):
    reader = await projects.member("readers", role="reader")
    with pytest.raises(Forbidden):
        await create_image(reader, "nope")
    listing = await reader.get("/image/v2/images")
    assert listing["images"] == []


async def test_schemas(admin):
    schema = await admin.get("/image/v2/schemas/image")
    assert schema["name"] == "image" and "disk_format" in schema["properties"]
    assert (await admin.get("/image/v2/schemas/images"))["name"] == "images"
    assert (await admin.get("/image/v2/schemas/member"))["name"] == "member"
    assert (await admin.get("/image/v2/schemas/members"))["name"] == "members"
