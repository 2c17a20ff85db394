"""The Swift v1 API over raw HTTP: every feature the clients rely on, with exact statuses."""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
from email.utils import formatdate

import aiohttp

from appliance.client import MonostackClient
from tests.api.objects.conftest import Swift, login, make_user
from tests.daemon import wait_for


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


async def put(sw: Swift, path: str, data: bytes | None = None, headers=None, status: int = 201):
    st, h, body = await sw.request("PUT", path, data=data, headers=headers)
    assert st == status, (st, body)
    return h


# ---------------------------------------------------------------- account and containers

async def test_info_is_public_and_states_limits(sw):
    async with aiohttp.ClientSession() as http:
        async with http.get(sw.base + "/info") as r:
            assert r.status == 200
            info = await r.json()
    assert info["swift"]["max_object_name_length"] == 1024
    assert info["swift"]["container_listing_limit"] == 10_000
    assert {"slo", "dlo", "account_quotas", "container_quotas"} <= set(info)


async def test_container_lifecycle_and_counts(sw):
    await put(sw, "/c1")
    await put(sw, "/c1", status=202)  # exists
    await put(sw, "/c1/a", b"12345")
    await put(sw, "/c1/b", b"xy")
    st, h, _ = await sw.request("HEAD", "/c1")
    assert st == 204
    assert h["X-Container-Object-Count"] == "2" and h["X-Container-Bytes-Used"] == "7"
    assert h["X-Storage-Policy"] == "Policy-0"
    st, h, _ = await sw.request("HEAD")
    assert st == 204
    assert (h["X-Account-Container-Count"], h["X-Account-Object-Count"], h["X-Account-Bytes-Used"]) == \
        ("1", "2", "7")
    st, _, _ = await sw.request("DELETE", "/c1")
    assert st == 409
    for n in ("a", "b"):
        assert (await sw.request("DELETE", f"/c1/{n}"))[0] == 204
    assert (await sw.request("DELETE", "/c1"))[0] == 204
    assert (await sw.request("HEAD", "/c1"))[0] == 404
    assert (await sw.request("DELETE", "/c1"))[0] == 404


async def test_account_listing_formats_and_params(sw):
    for n in ("alpha", "beta", "gamma", "prex", "prey"):
        await put(sw, "/" + n)
    st, h, body = await sw.request("GET", "?format=json")
    names = [e["name"] for e in json.loads(body)]
    assert names == sorted(names) and "alpha" in names
    assert h["Content-Type"].startswith("application/json")
    assert {"name", "count", "bytes", "last_modified"} <= set(json.loads(body)[0])
    st, h, body = await sw.request("GET", "?format=json&prefix=pre&limit=1")
    assert [e["name"] for e in json.loads(body)] == ["prex"]
    st, h, body = await sw.request("GET", "?format=json&marker=beta&end_marker=prey")
    assert [e["name"] for e in json.loads(body)] == ["gamma", "prex"]
    st, h, body = await sw.request("GET", "?format=json&reverse=true&limit=2")
    assert [e["name"] for e in json.loads(body)] == ["prey", "prex"]
    st, h, body = await sw.request("GET", "")
    assert h["Content-Type"].startswith("text/plain") and body.decode().split("\n")[0] == "alpha"
    st, h, body = await sw.request("GET", "?format=xml")
    assert h["Content-Type"].startswith("application/xml") and b"<account" in body and b"<name>beta</name>" in body
    st, _, _ = await sw.request("GET", "?limit=10001")
    assert st == 412


async def test_account_metadata_and_admin_only_quota(swift_daemon, sw):
    st, _, _ = await sw.request("POST", headers={"X-Account-Meta-Color": "blue"})
    assert st == 204
    st, h, _ = await sw.request("HEAD")
    assert h["X-Account-Meta-Color"] == "blue"
    admin = await swift_daemon.admin_client()
    pid = await make_user(admin, "acct-q", "quinn", "quinn-pw")
    quinn = await login(swift_daemon, "quinn", "quinn-pw", "acct-q")
    other = Swift(sw.http, sw.base, quinn.token, f"AUTH_{pid}")
    st, _, _ = await other.request("POST", headers={"X-Account-Meta-Quota-Bytes": "10"})
    assert st == 403  # a member may not raise (or set) their own quota
    assert (await other.request("POST", headers={"X-Account-Meta-Note": "hi"}))[0] == 204
    # the admin sets it; then the member's writes are held to it
    assert (await sw.as_account(f"AUTH_{pid}").request(
        "POST", headers={"X-Account-Meta-Quota-Bytes": "10"}))[0] == 204
    await put(other, "/c")
    await put(other, "/c/small", b"12345678")
    st, _, _ = await other.request("PUT", "/c/big", data=b"x" * 11)
    assert st == 413
    await quinn.close()
    await admin.close()


async def test_container_metadata_quota_and_policy(sw):
    await put(sw, "/q", headers={"X-Container-Meta-Owner": "me", "X-Container-Meta-Quota-Bytes": "10",
                                 "X-Container-Meta-Quota-Count": "2"})
    st, h, _ = await sw.request("HEAD", "/q")
    assert h["X-Container-Meta-Owner"] == "me"
    assert (await sw.request("POST", "/q", headers={"X-Remove-Container-Meta-Owner": "x"}))[0] == 204
    st, h, _ = await sw.request("HEAD", "/q")
    assert "X-Container-Meta-Owner" not in h
    await put(sw, "/q/a", b"12345")
    assert (await sw.request("PUT", "/q/b", data=b"123456"))[0] == 413  # bytes
    await put(sw, "/q/b", b"1")
    assert (await sw.request("PUT", "/q/c", data=b"1"))[0] == 413  # count
    await put(sw, "/q/a", b"1234")  # overwrite within quota
    assert (await sw.request("PUT", "/other", headers={"X-Storage-Policy": "gold"}))[0] == 400


async def test_container_listing_params_subdirs_and_formats(sw):
    await put(sw, "/l")
    for n in ("a/1", "a/2", "b/1", "c", "d"):
        await put(sw, f"/l/{n}", n.encode(), headers={"Content-Type": "text/plain"})
    st, _, body = await sw.request("GET", "/l?format=json&delimiter=/")
    items = json.loads(body)
    assert [i.get("subdir") or i["name"] for i in items] == ["a/", "b/", "c", "d"]
    obj = items[2]
    assert obj["bytes"] == 1 and obj["hash"] == md5(b"c") and obj["content_type"] == "text/plain"
    assert len(obj["last_modified"]) == 26 and "T" in obj["last_modified"]
    st, _, body = await sw.request("GET", "/l?format=json&prefix=a/&delimiter=/")
    assert [i["name"] for i in json.loads(body)] == ["a/1", "a/2"]
    st, _, body = await sw.request("GET", "/l?format=json&marker=a/2&end_marker=d")
    assert [i["name"] for i in json.loads(body)] == ["b/1", "c"]
    st, _, body = await sw.request("GET", "/l?format=json&reverse=on&limit=2")
    assert [i["name"] for i in json.loads(body)] == ["d", "c"]
    st, _, body = await sw.request("GET", "/l?delimiter=/")
    assert body.decode() == "a/\nb/\nc\nd\n"
    st, h, body = await sw.request("GET", "/l?format=xml&delimiter=/")
    assert b'<subdir name="a/"><name>a/</name></subdir>' in body and b"<hash>" in body
    await put(sw, "/empty")
    assert (await sw.request("GET", "/empty"))[0] == 204
    st, _, body = await sw.request("GET", "/empty?format=json")
    assert st == 200 and json.loads(body) == []


# ---------------------------------------------------------------- objects

async def test_put_get_head_metadata_and_headers(sw):
    await put(sw, "/o")
    data = gzip.compress(b"some bytes" * 1000)
    h = await put(sw, "/o/file.txt", data, headers={
        "X-Object-Meta-Color": "red", "Content-Disposition": 'attachment; filename="f.txt"',
        "Content-Encoding": "gzip", "Content-Type": "text/plain"})
    assert h["ETag"] == md5(data)
    st, h, body = await sw.request("GET", "/o/file.txt")
    assert st == 200 and body == data
    assert h["ETag"] == md5(data) and not h["ETag"].startswith('"')
    assert h["X-Object-Meta-Color"] == "red" and h["Content-Disposition"] == 'attachment; filename="f.txt"'
    assert h["Content-Encoding"] == "gzip" and h["Content-Type"] == "text/plain"
    assert h["Accept-Ranges"] == "bytes" and h["X-Timestamp"] and h["Last-Modified"].endswith("GMT")
    assert re.fullmatch(r"tx[0-9a-f]{21}-[0-9a-f]{10}", h["X-Trans-Id"])
    assert h["X-Openstack-Request-Id"] == h["X-Trans-Id"]
    st, h, body = await sw.request("HEAD", "/o/file.txt")
    assert st == 200 and h["Content-Length"] == str(len(data)) and body == b""
    # POST replaces the user metadata
    assert (await sw.request("POST", "/o/file.txt", headers={"X-Object-Meta-Size": "big"}))[0] == 202
    st, h, _ = await sw.request("HEAD", "/o/file.txt")
    assert h["X-Object-Meta-Size"] == "big" and "X-Object-Meta-Color" not in h
    assert (await sw.request("GET", "/o/missing"))[0] == 404
    assert (await sw.request("PUT", "/nocontainer/x", data=b"1"))[0] == 404


async def test_chunked_put_and_etag_mismatch_422(sw):
    await put(sw, "/e")

    async def gen():
        for i in range(10):
            yield bytes([i]) * 100_000

    st, h, _ = await sw.request("PUT", "/e/chunked", data=gen())
    assert st == 201
    expected = b"".join(bytes([i]) * 100_000 for i in range(10))
    assert h["ETag"] == md5(expected)
    st, _, body = await sw.request("GET", "/e/chunked")
    assert body == expected
    st, _, _ = await sw.request("PUT", "/e/bad", data=b"abc", headers={"ETag": md5(b"abd")})
    assert st == 422
    assert (await sw.request("HEAD", "/e/bad"))[0] == 404
    await put(sw, "/e/good", b"abc", headers={"ETag": md5(b"abc")})


async def test_ranges_single_suffix_open_multi_and_416(sw):
    await put(sw, "/r")
    data = bytes(range(256)) * 40  # 10240 bytes
    await put(sw, "/r/o", data)
    for rng, want in (("bytes=0-9", data[:10]), ("bytes=-5", data[-5:]), ("bytes=10200-", data[10200:]),
                      ("bytes=10000-99999", data[10000:])):
        st, h, body = await sw.request("GET", "/r/o", headers={"Range": rng})
        assert st == 206 and body == want, rng
        assert h["Content-Range"].endswith("/10240")
    st, h, body = await sw.request("GET", "/r/o", headers={"Range": "bytes=0-1,100-102,-2"})
    assert st == 206 and h["Content-Type"].startswith("multipart/byteranges")
    boundary = h["Content-Type"].split("boundary=")[1]
    parts = [p for p in body.split(b"--" + boundary.encode()) if p.strip(b"\r\n-")]
    payloads = [p.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n") if not p.endswith(b"\r\n") else
                p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts]
    assert payloads == [data[0:2], data[100:103], data[-2:]]
    assert int(h["Content-Length"]) == len(body)
    assert (await sw.request("GET", "/r/o", headers={"Range": "bytes=20000-"}))[0] == 416
    st, _, body = await sw.request("GET", "/r/o", headers={"Range": "garbage"})
    assert st == 200 and body == data


async def test_conditional_requests(sw):
    await put(sw, "/cond")
    h = await put(sw, "/cond/o", b"hello")
    etag, lm = h["ETag"], h["Last-Modified"]
    past = formatdate(time.time() - 86400, usegmt=True)
    future = formatdate(time.time() + 86400, usegmt=True)
    cases = [
        ({"If-Match": etag}, 200), ({"If-Match": f'"{etag}"'}, 200), ({"If-Match": "nope"}, 412),
        ({"If-Match": "*"}, 200), ({"If-None-Match": etag}, 304), ({"If-None-Match": "other"}, 200),
        ({"If-Modified-Since": lm}, 304), ({"If-Modified-Since": past}, 200),
        ({"If-Unmodified-Since": past}, 412), ({"If-Unmodified-Since": future}, 200),
    ]
    for headers, want in cases:
        for method in ("GET", "HEAD"):
            st, rh, body = await sw.request(method, "/cond/o", headers=headers)
            assert st == want, (method, headers, st)
            if st == 304:
                assert rh["ETag"] == etag and body == b""
    # PUT If-None-Match: * refuses to overwrite
    assert (await sw.request("PUT", "/cond/o", data=b"x", headers={"If-None-Match": "*"}))[0] == 412
    await put(sw, "/cond/new", b"x", headers={"If-None-Match": "*"})


async def test_copy_by_header_and_method(sw):
    await put(sw, "/src")
    await put(sw, "/dst")
    await put(sw, "/src/o", b"copy me", headers={"X-Object-Meta-A": "1", "Content-Type": "text/x"})
    h = await put(sw, "/dst/o1", headers={"X-Copy-From": "/src/o", "X-Object-Meta-B": "2"})
    assert h["ETag"] == md5(b"copy me") and h["X-Copied-From"] == "src/o"
    st, h, body = await sw.request("GET", "/dst/o1")
    assert body == b"copy me" and h["X-Object-Meta-A"] == "1" and h["X-Object-Meta-B"] == "2"
    assert h["Content-Type"] == "text/x"
    st, h, _ = await sw.request("COPY", "/src/o", headers={"Destination": "dst/o2", "X-Fresh-Metadata": "true"})
    assert st == 201
    st, h, body = await sw.request("GET", "/dst/o2")
    assert body == b"copy me" and "X-Object-Meta-A" not in h
    assert (await sw.request("COPY", "/src/o"))[0] == 412  # no Destination
    assert (await sw.request("COPY", "/src/missing", headers={"Destination": "dst/x"}))[0] == 404


async def test_expiry_delete_after_and_delete_at(swift_daemon, sw):
    await put(sw, "/exp")
    await put(sw, "/exp/soon", b"bye", headers={"X-Delete-After": "1"})
    st, h, _ = await sw.request("HEAD", "/exp/soon")
    assert st == 200 and int(h["X-Delete-At"]) <= time.time() + 2
    await put(sw, "/exp/later", b"stay", headers={"X-Delete-At": str(int(time.time()) + 3600)})
    assert (await sw.request("PUT", "/exp/past", data=b"x", headers={"X-Delete-At": "1000"}))[0] == 400
    # the expirer (0.2 s interval in tests) removes it from the listing too
    async def gone():
        st, _, body = await sw.request("GET", "/exp?format=json")
        return [e["name"] for e in json.loads(body)] == ["later"]
    await wait_for(gone, timeout=10)
    assert (await sw.request("GET", "/exp/soon"))[0] == 404
    # POST can set an expiry on an existing object
    await put(sw, "/exp/p", b"p")
    assert (await sw.request("POST", "/exp/p", headers={"X-Delete-After": "1"}))[0] == 202
    await wait_for(lambda: swift_daemon.appliance.ctx.components.object.expired >= 2, timeout=10)
    assert (await sw.request("HEAD", "/exp/p"))[0] == 404


async def test_static_large_object_put_get_ranges_and_delete(sw):
    await put(sw, "/slo")
    await put(sw, "/slo_segments")
    segs = [bytes([65 + i]) * (1000 + i) for i in range(3)]
    manifest = []
    for i, s in enumerate(segs):
        h = await put(sw, f"/slo_segments/part{i}", s)
        manifest.append({"path": f"/slo_segments/part{i}", "etag": h["ETag"], "size_bytes": len(s)})
    whole = b"".join(segs)
    slo_etag = md5("".join(md5(s) for s in segs).encode())
    h = await put(sw, "/slo/big?multipart-manifest=put", json.dumps(manifest).encode())
    assert h["ETag"] == f'"{slo_etag}"'
    st, h, body = await sw.request("GET", "/slo/big")
    assert st == 200 and body == whole
    assert h["ETag"] == f'"{slo_etag}"' and h["X-Static-Large-Object"] == "True"
    assert h["Content-Length"] == str(len(whole))
    st, h, _ = await sw.request("HEAD", "/slo/big")
    assert h["Content-Length"] == str(len(whole))
    st, h, body = await sw.request("GET", "/slo/big", headers={"Range": "bytes=990-2010"})
    assert st == 206 and body == whole[990:2011]
    st, h, body = await sw.request("GET", "/slo/big", headers={"If-None-Match": slo_etag})
    assert st == 304
    st, h, body = await sw.request("GET", "/slo/big?multipart-manifest=get")
    got = json.loads(body)
    assert [g["name"] for g in got] == [m["path"] for m in manifest] and got[0]["bytes"] == 1000
    # validation: wrong etag / size / missing segment → 400, nothing stored
    bad = [dict(manifest[0], etag=md5(b"other")), dict(manifest[1], size_bytes=1),
           {"path": "/slo_segments/nope", "etag": None, "size_bytes": None}]
    st, _, body = await sw.request("PUT", "/slo/bad?multipart-manifest=put", data=json.dumps(bad).encode())
    assert st == 400 and b"Etag Mismatch" in body and b"Size Mismatch" in body and b"404" in body
    assert (await sw.request("HEAD", "/slo/bad"))[0] == 404
    # copying an SLO copies its bytes
    await put(sw, "/slo/copy", headers={"X-Copy-From": "/slo/big"})
    st, h, body = await sw.request("GET", "/slo/copy")
    assert body == whole and "X-Static-Large-Object" not in h
    # delete the manifest and its segments
    st, _, body = await sw.request("DELETE", "/slo/big?multipart-manifest=delete")
    assert st == 200 and json.loads(body)["Number Deleted"] == 4
    st, _, body = await sw.request("GET", "/slo_segments?format=json")
    assert json.loads(body) == []


async def test_dynamic_large_object(sw):
    await put(sw, "/dlo")
    parts = [b"one-", b"two-", b"three"]
    for i, p in enumerate(parts):
        await put(sw, f"/dlo/seg/{i:03d}", p)
    await put(sw, "/dlo/manifest", b"", headers={"X-Object-Manifest": "dlo/seg/"})
    st, h, body = await sw.request("GET", "/dlo/manifest")
    assert body == b"one-two-three" and h["X-Object-Manifest"] == "dlo/seg/"
    assert h["ETag"] == '"' + md5("".join(md5(p) for p in parts).encode()) + '"'
    st, _, body = await sw.request("GET", "/dlo/manifest", headers={"Range": "bytes=2-6"})
    assert st == 206 and body == b"e-two"
    await put(sw, "/dlo/seg/003", b"!")
    assert (await sw.request("GET", "/dlo/manifest"))[2] == b"one-two-three!"


async def test_max_file_size_and_bad_metadata(sw):
    await put(sw, "/lim")
    st, _, _ = await sw.request("PUT", "/lim/x", data=b"", headers={"Content-Length": str(6 << 30)})
    assert st == 413
    st, _, _ = await sw.request("PUT", "/lim/y", data=b"1", headers={"X-Object-Meta-Big": "v" * 5000})
    assert st == 400
    st, _, _ = await sw.request("PUT", "/lim/z", data=b"1", headers={"X-Delete-After": "soon"})
    assert st == 400


# ---------------------------------------------------------------- authorization and ACLs

async def test_acl_grants_another_project_read_but_not_write(swift_daemon, sw):
    admin = await swift_daemon.admin_client()
    other_pid = await make_user(admin, "reader-proj", "olga", "olga-pw")
    olga = await login(swift_daemon, "olga", "olga-pw", "reader-proj")
    as_olga = Swift(sw.http, sw.base, olga.token, sw.account)
    await put(sw, "/shared")
    await put(sw, "/shared/doc", b"for olga")
    await put(sw, "/private")
    await put(sw, "/private/doc", b"secret")
    # before the grant: nothing
    assert (await as_olga.request("GET", "/shared/doc"))[0] == 403
    assert (await as_olga.request("GET", "?format=json"))[0] == 403
    assert (await sw.request("POST", "/shared", headers={"X-Container-Read": f"{other_pid}:*"}))[0] == 204
    st, _, body = await as_olga.request("GET", "/shared/doc")
    assert st == 200 and body == b"for olga"
    assert (await as_olga.request("HEAD", "/shared/doc"))[0] == 200
    st, h, body = await as_olga.request("GET", "/shared?format=json")
    assert st == 200 and [e["name"] for e in json.loads(body)] == ["doc"]
    assert "X-Container-Read" not in h  # ACLs are shown to the owner only
    # but no write, and no other container, and no account
    assert (await as_olga.request("PUT", "/shared/doc", data=b"overwritten"))[0] == 403
    assert (await as_olga.request("DELETE", "/shared/doc"))[0] == 403
    assert (await as_olga.request("POST", "/shared/doc", headers={"X-Object-Meta-X": "1"}))[0] == 403
    assert (await as_olga.request("POST", "/shared", headers={"X-Container-Read": "*:*"}))[0] == 403
    assert (await as_olga.request("GET", "/private/doc"))[0] == 403
    assert (await as_olga.request("HEAD", ""))[0] == 403
    assert (await sw.request("GET", "/shared/doc"))[2] == b"for olga"
    # a write grant lets her write objects (still not the container itself)
    assert (await sw.request("POST", "/shared", headers={"X-Container-Write": "reader-proj:*"}))[0] == 204
    assert (await as_olga.request("PUT", "/shared/hers", data=b"mine"))[0] == 201
    assert (await as_olga.request("DELETE", "/shared"))[0] == 403
    st, h, _ = await sw.request("HEAD", "/shared")
    assert h["X-Container-Read"] == f"{other_pid}:*" and h["X-Container-Write"] == "reader-proj:*"
    # anonymous: nothing until .r:*; listing needs .rlistings
    assert (await sw.request("GET", "/shared/doc", token=None))[0] == 401
    await sw.request("POST", "/shared", headers={"X-Container-Read": ".r:*"})
    assert (await sw.request("GET", "/shared/doc", token=None))[2] == b"for olga"
    assert (await sw.request("GET", "/shared", token=None))[0] == 401
    await sw.request("POST", "/shared", headers={"X-Container-Read": ".r:*,.rlistings"})
    assert (await sw.request("GET", "/shared?format=json", token=None))[0] == 200
    assert (await sw.request("PUT", "/shared/anon", data=b"x", token=None))[0] == 401
    assert (await sw.request("GET", "/shared/doc", token="garbage"))[0] == 401
    await olga.close()
    await admin.close()


async def test_reader_role_reads_own_account_but_cannot_write(swift_daemon, sw):
    admin = await swift_daemon.admin_client()
    pid = await make_user(admin, "ro-proj", "rhea", "rhea-pw", role="reader")
    owner = sw.as_account(f"AUTH_{pid}")
    await put(owner, "/c")
    await put(owner, "/c/o", b"data")
    rhea = await login(swift_daemon, "rhea", "rhea-pw", "ro-proj")
    as_rhea = Swift(sw.http, sw.base, rhea.token, f"AUTH_{pid}")
    assert (await as_rhea.request("GET", "/c/o"))[2] == b"data"
    assert (await as_rhea.request("PUT", "/c/o", data=b"x"))[0] == 403
    assert (await as_rhea.request("PUT", "/c2"))[0] == 403
    assert (await as_rhea.request("GET", "/swift/monostack/auditor"))[0] in (403, 404)
    await rhea.close()
    await admin.close()


async def test_auditor_status_is_admin_only_and_events_flow(swift_daemon, sw):
    async with aiohttp.ClientSession() as http:
        async with http.get(sw.base + "/swift/monostack/auditor", headers={"X-Auth-Token": sw.token}) as r:
            assert r.status == 200
            st = (await r.json())["auditor"]
            assert "passes_completed" in st and "findings" in st
        async with http.post(sw.base + "/swift/monostack/auditor", headers={"X-Auth-Token": sw.token}) as r:
            assert r.status == 200 and (await r.json())["auditor"]["passes_completed"] >= 1
    health = swift_daemon.appliance.ctx.components.object.health()
    assert "auditor" in health


async def test_catalog_has_object_store(swift_daemon):
    client = MonostackClient(socket_path=swift_daemon.config.api.socket)
    session = await client.login("admin", "admin-secret-Pa55", "admin")
    entries = {c["type"]: c for c in session.catalog}
    url = entries["object-store"]["endpoints"][0]["url"]
    assert url.endswith(f"/swift/v1/AUTH_{session.project_id}")
    await client.close()
