"""Swift behaviours tooling written against a real Swift relies on (issue 14), over raw HTTP:
both URL layouts, transaction ids, headers on bodiless answers, policy usage, conditional and
range failures, empty metadata, listing parameters and non-UTF-8 headers."""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from urllib.parse import urlsplit

import aiohttp

from tests.api.objects.conftest import Swift, login, make_user

TX = re.compile(r"tx[0-9a-f]{21}-[0-9a-f]{10}")


async def put(sw: Swift, path: str, data: bytes | None = None, headers=None, status: int = 201):
    st, h, body = await sw.request("PUT", path, data=data, headers=headers)
    assert st == status, (st, body)
    return h


def at_v1(sw: Swift) -> Swift:
    """The same account under Swift's own `/v1/AUTH_…` layout."""
    class V1(Swift):
        @property
        def url(self) -> str:
            return f"{self.base}/v1/{self.account}"
    return V1(sw.http, sw.base, sw.token, sw.account)


async def test_v1_and_swift_v1_serve_the_same_account(sw):
    v1 = at_v1(sw)
    await put(v1, "/both")
    await put(v1, "/both/o", b"payload", headers={"X-Object-Meta-Who": "v1"})
    st, h, body = await sw.request("GET", "/both/o")
    assert st == 200 and body == b"payload" and h["X-Object-Meta-Who"] == "v1"
    st, _, body = await v1.request("GET", "", headers={"Accept": "application/json"})
    assert st == 200 and [c["name"] for c in json.loads(body)] == ["both"]
    st, h, body = await v1.request("GET", "/both/missing")
    assert st == 404 and b"<h1>Not Found</h1>" in body and TX.fullmatch(h["X-Trans-Id"])
    assert (await v1.request("GET", "/both/o", token=None))[0] == 401
    async with sw.http.get(sw.base + "/info") as r:
        assert r.status == 200 and "swift" in await r.json()


async def test_trans_id_is_swifts_form_and_unique(sw):
    await put(sw, "/tx")
    seen = set()
    for method, path in (("HEAD", ""), ("HEAD", "/tx"), ("GET", "/tx/none"), ("POST", "/tx")):
        st, h, _ = await sw.request(method, path)
        assert TX.fullmatch(h["X-Trans-Id"]), (method, path, h.get("X-Trans-Id"))
        assert h["X-Openstack-Request-Id"] == h["X-Trans-Id"]
        seen.add(h["X-Trans-Id"])
    assert len(seen) == 4


async def test_bodiless_answers_carry_content_type(sw):
    await put(sw, "/ct")
    await put(sw, "/ct/o", b"x", headers={"Content-Type": "image/png"})
    for path in ("", "/ct"):
        st, h, _ = await sw.request("HEAD", path)
        assert st == 204 and h["Content-Type"] == "text/plain; charset=utf-8", path
        st, h, _ = await sw.request("HEAD", path + "?format=json")
        assert h["Content-Type"] == "application/json; charset=utf-8"
    st, h, _ = await sw.request("HEAD", "/ct/o")
    assert st == 200 and h["Content-Type"] == "image/png"
    for method, path, want in (("POST", "", 204), ("POST", "/ct", 204), ("POST", "/ct/o", 202),
                               ("DELETE", "/ct/o", 204), ("DELETE", "/ct", 204)):
        st, h, _ = await sw.request(method, path)
        assert st == want and h["Content-Type"] == "text/html; charset=UTF-8", (method, path)
    st, h, _ = await sw.request("GET", "")  # an empty plain listing is a 204 too
    assert st == 204 and h["Content-Type"] == "text/plain; charset=utf-8"


async def test_storage_policy_usage_headers(sw):
    st, h, _ = await sw.request("HEAD")
    assert not [k for k in h if k.lower().startswith("x-account-storage-policy-")]
    await put(sw, "/p1")
    await put(sw, "/p2")
    await put(sw, "/p1/o", b"12345")
    st, h, _ = await sw.request("HEAD")
    assert (h["X-Account-Storage-Policy-Policy-0-Container-Count"],
            h["X-Account-Storage-Policy-Policy-0-Object-Count"],
            h["X-Account-Storage-Policy-Policy-0-Bytes-Used"]) == ("2", "1", "5")
    st, h, _ = await sw.request("HEAD", "/p1")
    assert h["X-Storage-Policy"] == "Policy-0"


async def test_412_carries_etag_and_416_the_length(sw):
    await put(sw, "/pre")
    h = await put(sw, "/pre/o", b"0123456789", headers={"X-Object-Meta-K": "v"})
    etag = h["ETag"]
    for method in ("GET", "HEAD"):
        st, rh, body = await sw.request(method, "/pre/o", headers={"If-Match": "other"})
        assert st == 412 and rh["ETag"] == etag and rh["Last-Modified"] and body == b""
        assert rh["X-Object-Meta-K"] == "v"
    st, rh, body = await sw.request("GET", "/pre/o", headers={"Range": "bytes=50-60"})
    assert st == 416 and rh["Content-Range"] == "bytes */10" and rh["ETag"] == etag
    # a failed precondition wins over an unsatisfiable range, as in Swift
    st, rh, _ = await sw.request("GET", "/pre/o", headers={"Range": "bytes=50-", "If-Match": "x"})
    assert st == 412
    # large objects too: a quoted ETag on 412, their whole length in the 416
    await put(sw, "/pre/s1", b"a" * 4)
    await put(sw, "/pre/s2", b"b" * 3)
    manifest = json.dumps([{"path": "/pre/s1"}, {"path": "/pre/s2"}]).encode()
    h = await put(sw, "/pre/slo?multipart-manifest=put", manifest)
    st, rh, _ = await sw.request("GET", "/pre/slo", headers={"If-None-Match": "*", "Range": "bytes=0-1"})
    assert st == 304 and rh["ETag"] == h["ETag"]
    st, rh, _ = await sw.request("GET", "/pre/slo", headers={"If-Match": "nope"})
    assert st == 412 and rh["ETag"] == h["ETag"] and rh["ETag"].startswith('"')
    st, rh, _ = await sw.request("GET", "/pre/slo", headers={"Range": "bytes=7-"})
    assert st == 416 and rh["Content-Range"] == "bytes */7"


async def test_empty_object_metadata_is_kept_container_and_account_remove(sw):
    await put(sw, "/em", headers={"X-Container-Meta-Keep": "1", "X-Container-Meta-Gone": "1"})
    await put(sw, "/em/o", b"x", headers={"X-Object-Meta-Empty": "", "X-Object-Meta-Full": "1"})
    st, h, _ = await sw.request("HEAD", "/em/o")
    assert h["X-Object-Meta-Empty"] == "" and h["X-Object-Meta-Full"] == "1"
    # a POST replaces the set: X-Remove-… is an empty value, as Swift's proxy sends it on
    st, _, _ = await sw.request("POST", "/em/o", headers={"X-Remove-Object-Meta-Full": "x",
                                                          "X-Object-Meta-New": ""})
    assert st == 202
    st, h, _ = await sw.request("GET", "/em/o")
    metas = {k: v for k, v in h.items() if k.lower().startswith("x-object-meta-")}
    assert metas == {"X-Object-Meta-Full": "", "X-Object-Meta-New": ""}
    # a copy keeps empty values too
    st, _, _ = await sw.request("COPY", "/em/o", headers={"Destination": "em/o2"})
    st, h, _ = await sw.request("HEAD", "/em/o2")
    assert h["X-Object-Meta-New"] == ""
    # containers and accounts: an empty value removes the item
    await sw.request("POST", "/em", headers={"X-Container-Meta-Gone": ""})
    st, h, _ = await sw.request("HEAD", "/em")
    assert h["X-Container-Meta-Keep"] == "1" and "X-Container-Meta-Gone" not in h
    await sw.request("POST", "", headers={"X-Account-Meta-A": "1", "X-Account-Meta-B": "2"})
    await sw.request("POST", "", headers={"X-Account-Meta-A": "", "X-Remove-Account-Meta-B": "x"})
    st, h, _ = await sw.request("HEAD")
    assert "X-Account-Meta-A" not in h and "X-Account-Meta-B" not in h


async def test_multi_character_delimiter_and_lenient_limit(sw):
    await put(sw, "/dl")
    for name in ("a::b::c", "a::d", "a:e", "b", "c::"):
        await put(sw, f"/dl/{name}", b"x")
    st, _, body = await sw.request("GET", "/dl?format=json&delimiter=::")
    assert st == 200
    assert [e.get("name") or e["subdir"] for e in json.loads(body)] == ["a::", "a:e", "b", "c::"]
    st, _, body = await sw.request("GET", "/dl?format=json&delimiter=::&prefix=a::")
    assert [e.get("name") or e["subdir"] for e in json.loads(body)] == ["a::b::", "a::d"]
    for limit in ("1.5", "-1", "abc", "", "1e3"):
        st, _, body = await sw.request("GET", f"/dl?format=json&limit={limit}")
        assert st == 200 and len(json.loads(body)) == 5, limit  # not a number: Swift's default page
    st, _, body = await sw.request("GET", "/dl?format=json&limit=2")
    assert len(json.loads(body)) == 2
    assert (await sw.request("GET", "/dl?limit=10001"))[0] == 412
    st, _, body = await sw.request("GET", "?format=json&limit=0.5")
    assert st == 200 and [c["name"] for c in json.loads(body)] == ["dl"]


async def _raw(sw: Swift, method: str, path: str, headers: list[tuple[bytes, bytes]],
               body: bytes = b"") -> tuple[int, bytes]:
    """One request written byte for byte (aiohttp's client will not send non-UTF-8 headers)."""
    url = urlsplit(sw.base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        lines = [f"{method} /swift/v1/{sw.account}{path} HTTP/1.1".encode(), b"Host: x",
                 b"X-Auth-Token: " + sw.token.encode(), b"Connection: close",
                 b"Content-Length: " + str(len(body)).encode()]
        lines += [k + b": " + v for k, v in headers]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        response = await reader.read()
    finally:
        writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response


async def test_non_utf8_metadata_is_a_400_and_nothing_is_stored(sw):
    await put(sw, "/u8")
    bad = b"caf\xe9"  # latin-1, not UTF-8
    for method, path, header in (
            ("PUT", "/u8/o", b"X-Object-Meta-Name"), ("PUT", "/u8/o", b"Content-Type"),
            ("PUT", "/u8/o", b"Content-Disposition"), ("POST", "/u8", b"X-Container-Meta-Name"),
            ("POST", "", b"X-Account-Meta-Name"), ("PUT", "/u8c", b"X-Container-Read")):
        status, response = await _raw(sw, method, path, [(header, bad)], b"data" if path == "/u8/o" else b"")
        assert status == 400, (method, path, header, response[:300])
        assert b"UTF-8" in response
    assert (await sw.request("HEAD", "/u8/o"))[0] == 404
    assert (await sw.request("HEAD", "/u8c"))[0] == 404
    st, h, _ = await sw.request("HEAD", "/u8")
    assert "X-Container-Meta-Name" not in h
    # an object that exists: a bad POST leaves its metadata as it was
    await put(sw, "/u8/kept", b"x", headers={"X-Object-Meta-Name": "ok"})
    status, _ = await _raw(sw, "POST", "/u8/kept", [(b"X-Object-Meta-Name", bad)])
    assert status == 400
    st, h, body = await sw.request("GET", "/u8/kept")
    assert h["X-Object-Meta-Name"] == "ok" and body == b"x"
    # proper UTF-8 is fine
    status, _ = await _raw(sw, "POST", "/u8/kept", [(b"X-Object-Meta-Name", "café".encode())])
    assert status == 202
    st, h, _ = await sw.request("HEAD", "/u8/kept")
    assert h["X-Object-Meta-Name"] == "café"  # sent back as the same UTF-8 bytes


async def test_metadata_limits_as_swift(sw):
    await put(sw, "/lim")
    assert (await sw.request("PUT", "/lim/o", data=b"x", headers={"X-Object-Meta-" + "k" * 129: "v"}))[0] == 400
    assert (await sw.request("PUT", "/lim/o", data=b"x", headers={"X-Object-Meta-K": "v" * 257}))[0] == 400
    await put(sw, "/lim/o", b"x", headers={"X-Object-Meta-" + "k" * 128: "v" * 256})
    assert hashlib.md5(b"x").hexdigest() == (await sw.request("HEAD", "/lim/o"))[1]["ETag"]


async def _slo(sw: Swift, name: str, parts: list[str]) -> dict:
    manifest = json.dumps([{"path": p} for p in parts]).encode()
    return await put(sw, f"{name}?multipart-manifest=put", manifest)


async def test_slo_of_slos_reads_ranges_lists_and_deletes(sw):
    await put(sw, "/n")
    await put(sw, "/n/a", b"A" * 5)
    await put(sw, "/n/b", b"B" * 3)
    await put(sw, "/n/c", b"C" * 4)
    inner = await _slo(sw, "/n/inner", ["/n/a", "/n/b"])
    # the parent names the sub-SLO by its (unquoted) ETag and whole length, as Swift checks them
    manifest = json.dumps([{"path": "/n/inner", "etag": inner["ETag"].strip('"'), "size_bytes": 8},
                           {"path": "/n/c"}]).encode()
    outer = await put(sw, "/n/outer?multipart-manifest=put", manifest)
    whole = b"A" * 5 + b"B" * 3 + b"C" * 4
    st, h, body = await sw.request("GET", "/n/outer")
    assert st == 200 and body == whole and h["Content-Length"] == "12" and h["ETag"] == outer["ETag"]
    for rng, want in (("bytes=4-8", whole[4:9]), ("bytes=-6", whole[-6:]), ("bytes=8-", whole[8:])):
        st, _, body = await sw.request("GET", "/n/outer", headers={"Range": rng})
        assert st == 206 and body == want, rng
    st, _, body = await sw.request("GET", "/n/outer?multipart-manifest=get")
    assert [e.get("sub_slo", False) for e in json.loads(body)] == [True, False]
    # listings show a large object's whole length; the container counts stored bytes
    st, _, body = await sw.request("GET", "/n?format=json&prefix=outer")
    [entry] = json.loads(body)
    assert entry["bytes"] == 12 and entry["content_type"] == "application/octet-stream"
    # a wrong size or etag for the sub-SLO is refused
    bad = json.dumps([{"path": "/n/inner", "size_bytes": 5}, {"path": "/n/c"}]).encode()
    st, _, body = await sw.request("PUT", "/n/bad?multipart-manifest=put", data=bad)
    assert st == 400 and b"Size Mismatch" in body
    # a changed sub-SLO: the parent's read is refused before any byte (409)
    await _slo(sw, "/n/inner", ["/n/b", "/n/a"])
    st, _, _ = await sw.request("GET", "/n/outer")
    assert st == 409
    # multipart-manifest=delete removes the sub-SLO's segments too
    await _slo(sw, "/n/inner", ["/n/a", "/n/b"])
    inner_etag = (await sw.request("HEAD", "/n/inner"))[1]["ETag"].strip('"')
    await put(sw, "/n/outer?multipart-manifest=put",
              json.dumps([{"path": "/n/inner", "etag": inner_etag}, {"path": "/n/c"}]).encode())
    st, _, body = await sw.request("DELETE", "/n/outer?multipart-manifest=delete")
    assert st == 200 and json.loads(body)["Number Deleted"] == 5
    st, _, body = await sw.request("GET", "/n?format=json")
    assert json.loads(body) == []


async def test_slo_nesting_deeper_than_swifts_limit_is_a_409(sw):
    await put(sw, "/deep")
    await put(sw, "/deep/leaf", b"leaf-bytes")
    previous = "/deep/leaf"
    for level in range(10):  # ten manifests, each the only segment of the next
        await _slo(sw, f"/deep/m{level}", [previous])
        previous = f"/deep/m{level}"
    st, _, body = await sw.request("GET", "/deep/m9")
    assert st == 200 and body == b"leaf-bytes"
    await _slo(sw, "/deep/m10", ["/deep/m9"])  # the PUT is fine, as in Swift
    st, h, body = await sw.request("GET", "/deep/m10")
    assert st == 409 and b"Conflict" in body
    assert (await sw.request("HEAD", "/deep/m10"))[0] == 200


async def test_copy_honours_range_and_conditions(sw):
    await put(sw, "/cp")
    h = await put(sw, "/cp/src", b"0123456789", headers={"X-Object-Meta-K": "v",
                                                         "Content-Type": "text/x-src"})
    st, _, _ = await sw.request("COPY", "/cp/src", headers={"Destination": "cp/part", "Range": "bytes=1-2"})
    assert st == 201
    st, rh, body = await sw.request("GET", "/cp/part")
    assert body == b"12" and rh["X-Object-Meta-K"] == "v" and rh["Content-Type"] == "text/x-src"
    assert rh["ETag"] == hashlib.md5(b"12").hexdigest()
    st, _, _ = await sw.request("PUT", "/cp/tail", data=b"",
                                headers={"X-Copy-From": "cp/src", "Range": "bytes=-3"})
    assert st == 201 and (await sw.request("GET", "/cp/tail"))[2] == b"789"
    st, _, _ = await sw.request("COPY", "/cp/src", headers={"Destination": "cp/x", "Range": "bytes=50-"})
    assert st == 416
    st, _, _ = await sw.request("COPY", "/cp/src", headers={"Destination": "cp/x", "If-Match": "nope"})
    assert st == 412
    st, _, _ = await sw.request("COPY", "/cp/src", headers={"Destination": "cp/x", "If-Match": h["ETag"]})
    assert st == 201
    assert (await sw.request("GET", "/cp/x"))[2] == b"0123456789"
    # a large object's range is cut from the assembled bytes
    await put(sw, "/cp/s1", b"abc")
    await put(sw, "/cp/s2", b"defg")
    await _slo(sw, "/cp/slo", ["/cp/s1", "/cp/s2"])
    st, _, _ = await sw.request("COPY", "/cp/slo", headers={"Destination": "cp/slopart", "Range": "bytes=2-4"})
    assert st == 201
    st, rh, body = await sw.request("GET", "/cp/slopart")
    assert body == b"cde" and "X-Static-Large-Object" not in rh


async def test_reader_is_read_only_and_sees_no_acls_or_keys(swift_daemon, sw):
    admin = await swift_daemon.admin_client()
    pid = await make_user(admin, "ro2", "rita", "rita-pw", role="reader")
    owner = sw.as_account(f"AUTH_{pid}")
    await put(owner, "/c", headers={"X-Container-Read": f"{pid}:*", "X-Container-Write": f"{pid}:*",
                                    "X-Container-Meta-Temp-URL-Key": "ckey", "X-Container-Meta-Color": "red"})
    await put(owner, "/c/o", b"data")
    await put(owner, "/c/s1", b"xy")
    await _slo(owner, "/c/slo", ["/c/s1"])
    st, _, _ = await owner.request("POST", "", headers={"X-Account-Meta-Temp-URL-Key": "akey",
                                                        "X-Account-Meta-Color": "blue"})
    assert st == 204
    rita = await login(swift_daemon, "rita", "rita-pw", "ro2")
    for v1 in (False, True):
        as_rita = Swift(sw.http, sw.base, rita.token, f"AUTH_{pid}")
        as_rita = at_v1(as_rita) if v1 else as_rita
        assert (await as_rita.request("GET", "/c/o"))[2] == b"data"
        st, h, _ = await as_rita.request("HEAD", "/c")
        assert st == 204 and h["X-Container-Meta-Color"] == "red"
        assert "X-Container-Read" not in h and "X-Container-Write" not in h
        assert "X-Container-Meta-Temp-Url-Key" not in h
        st, h, _ = await as_rita.request("HEAD")
        assert st == 204 and h["X-Account-Meta-Color"] == "blue" and "X-Account-Meta-Temp-Url-Key" not in h
        for method, path, headers in (
                ("PUT", "/c/o", {}), ("PUT", "/c/new", {}), ("POST", "/c/o", {}), ("DELETE", "/c/o", {}),
                ("COPY", "/c/o", {"Destination": "c/o2"}), ("PUT", "/c/o3", {"X-Copy-From": "c/o"}),
                ("PUT", "/c2", {}), ("POST", "/c", {}), ("DELETE", "/c", {}),
                ("POST", "", {"X-Account-Meta-Temp-URL-Key": "mine"}),
                ("DELETE", "/c/slo?multipart-manifest=delete", {}),
                ("PUT", "/c/m?multipart-manifest=put", {})):
            st, _, _ = await as_rita.request(method, path, headers=headers, data=b"[]" if "manifest=put" in path else None)
            assert st == 403, (v1, method, path, st)
    st, _, body = await owner.request("GET", "/c?format=json")
    assert sorted(e["name"] for e in json.loads(body)) == ["o", "s1", "slo"]
    # the owner (admin here) still sees what it set
    st, h, _ = await owner.request("HEAD", "/c")
    assert h["X-Container-Meta-Temp-Url-Key"] == "ckey" and h["X-Container-Write"] == f"{pid}:*"
    await rita.close()
    await admin.close()


async def test_details_swifts_functional_suite_checks(sw):
    """Small rules found by running Swift's own functional tests against the appliance."""
    # metadata limits hold for the sum of what POSTs built up, not only one request
    await put(sw, "/agg")
    assert (await sw.request("POST", "/agg", headers={"X-Container-Meta-A": "x" * 256}))[0] == 204
    big = {f"X-Container-Meta-K{i}": "y" * 250 for i in range(16)}
    st, h, body = await sw.request("POST", "/agg", headers=big)
    assert st == 400 and h["Content-Type"] == "text/html; charset=UTF-8"
    assert (await sw.request("POST", "", headers={"X-Account-Meta-A": "x" * 256}))[0] == 204
    assert (await sw.request("POST", "", headers={f"X-Account-Meta-K{i}": "y" * 250 for i in range(16)}))[0] == 400
    # an empty X-Storage-Policy asks for the default
    await put(sw, "/pol", headers={"X-Storage-Policy": ""})
    assert (await sw.request("PUT", "/pol2", headers={"X-Storage-Policy": "gold"}))[0] == 400
    # X-Delete-At beyond ten digits is capped as Swift caps it
    await put(sw, "/agg/far", b"", headers={"X-Delete-At": "1" * 100})
    assert (await sw.request("HEAD", "/agg/far"))[1]["X-Delete-At"] == "9999999999"
    # a POST without X-Object-Manifest turns a DLO back into the object it is
    await put(sw, "/agg/seg1", b"aa")
    await put(sw, "/agg/seg2", b"bb")
    await put(sw, "/agg/dlo", b"own", headers={"X-Object-Manifest": "agg/seg"})
    st, _, body = await sw.request("GET", "/agg/dlo", headers={"Range": "bytes=0-0,2-2"})
    assert st == 200 and body == b"aabb"  # a DLO serves several ranges as the whole object
    assert (await sw.request("POST", "/agg/dlo", headers={"X-Object-Meta-X": "1"}))[0] == 202
    st, h, body = await sw.request("GET", "/agg/dlo")
    assert body == b"own" and "X-Object-Manifest" not in h


async def test_slo_ranged_and_inline_segments_and_the_manifests_own_hash(sw):
    import base64
    await put(sw, "/rs")
    await put(sw, "/rs/%25ff%20odd", b"0123456789")  # a name with a literal '%ff'
    manifest = [{"path": "/rs/%ff odd", "range": "2-4"},  # manifest paths are plain names
                {"data": base64.b64encode(b"--").decode()},
                {"path": "/rs/%ff odd", "range": "-3"},
                {"path": "/rs/%ff odd", "range": "0-"}]  # the whole object: no range stored
    h = await put(sw, "/rs/m?multipart-manifest=put", json.dumps(manifest).encode())
    want = b"234" + b"--" + b"789" + b"0123456789"
    seg_md5 = hashlib.md5(b"0123456789").hexdigest()
    etag = hashlib.md5(f"{seg_md5}:2-4;{hashlib.md5(b'--').hexdigest()}{seg_md5}:7-9;{seg_md5}".encode()).hexdigest()
    assert h["ETag"] == f'"{etag}"'  # Swift's rule for ranged and inline segments
    st, rh, body = await sw.request("GET", "/rs/m")
    assert st == 200 and body == want and rh["ETag"] == f'"{etag}"'
    for rng, part in (("bytes=1-6", want[1:7]), ("bytes=-12", want[-12:]), ("bytes=3-4", want[3:5])):
        st, _, body = await sw.request("GET", "/rs/m", headers={"Range": rng})
        assert st == 206 and body == part, rng
    st, _, raw = await sw.request("GET", "/rs/m?multipart-manifest=get")
    stored = json.loads(raw)
    assert [e.get("range") for e in stored] == ["2-4", None, "7-9", None] and "data" in stored[1]
    # the listing shows the whole length and, as Swift's, the manifest's own md5 as its hash
    st, _, body = await sw.request("GET", "/rs?format=json&prefix=m")
    [entry] = json.loads(body)
    assert entry["bytes"] == len(want) and entry["hash"] == hashlib.md5(raw).hexdigest()
    assert entry["slo_etag"] == f'"{etag}"' and entry["content_type"] == "application/octet-stream"
    # a POST changing the type keeps the whole length and ETag in listings
    assert (await sw.request("POST", "/rs/m", headers={"Content-Type": "video/mp4"}))[0] == 202
    st, _, body = await sw.request("GET", "/rs?format=json&prefix=m")
    [entry] = json.loads(body)
    assert (entry["content_type"], entry["bytes"], entry["slo_etag"]) == ("video/mp4", len(want), f'"{etag}"')
    assert (await sw.request("HEAD", "/rs/m"))[1]["Content-Type"] == "video/mp4"
    # refused: a manifest naming itself, only inline data, two ranges, an unsatisfiable range
    for bad in ([{"path": "/rs/m"}], [{"data": "AA=="}], [{"path": "/rs/%ff odd", "range": "0-1,3-4"}],
                [{"path": "/rs/%ff odd", "range": "20-"}], [{"path": "/rs/%ff odd", "extra": 1}],
                [{"data": "not base64!"}, {"path": "/rs/%ff odd"}]):
        st, _, body = await sw.request("PUT", "/rs/m?multipart-manifest=put", data=json.dumps(bad).encode())
        assert st == 400, (bad, body)
    assert (await sw.request("GET", "/rs/m"))[2] == want  # the refused PUTs changed nothing


async def test_more_details_from_swifts_functional_suite(sw):
    await put(sw, "/more")
    h = await put(sw, "/more/o", b"x")
    # an empty metadata name is refused
    assert (await sw.request("PUT", "/more/o2", data=b"x", headers={"X-Object-Meta-": "v"}))[0] == 400
    assert (await sw.request("HEAD", "/more/o2"))[0] == 404
    # If-Match and If-Unmodified-Since are both checked
    past = "Thu, 01 Jan 2015 00:00:00 GMT"
    st, _, _ = await sw.request("GET", "/more/o", headers={"If-Match": h["ETag"], "If-Unmodified-Since": past})
    assert st == 412
    # the account listing names each container's policy
    st, _, body = await sw.request("GET", "?format=json")
    assert json.loads(body)[0]["storage_policy"] == "Policy-0"
    # 401 names the account as Swift's realm, quoted (a header can't be smuggled in)
    async with sw.http.get(f"{sw.base}/v1/AUTH_x%22%0AEvil:%201/c") as r:
        assert r.status == 401 and r.headers["WWW-Authenticate"] == 'Swift realm="AUTH_x%22%0AEvil%3A%201"'
        assert "Evil" not in r.headers
    # X-If-Delete-At: a DELETE only of the version due then
    at = str(int(time.time()) + 3600)
    await put(sw, "/more/due", b"x", headers={"X-Delete-At": at})
    assert (await sw.request("DELETE", "/more/due", headers={"X-If-Delete-At": "bad"}))[0] == 400
    assert (await sw.request("DELETE", "/more/due", headers={"X-If-Delete-At": "12345"}))[0] == 412
    assert (await sw.request("DELETE", "/more/o", headers={"X-If-Delete-At": at}))[0] == 412
    assert (await sw.request("DELETE", "/more/due", headers={"X-If-Delete-At": at}))[0] == 204
    # a PUT with neither Content-Length nor a chunked body: 411
    status, response = await _raw_no_length(sw, "/more/nolen")
    assert status == 411, response[:200]


async def _raw_no_length(sw: Swift, path: str) -> tuple[int, bytes]:
    url = urlsplit(sw.base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(f"PUT /swift/v1/{sw.account}{path} HTTP/1.1\r\nHost: x\r\n"
                     f"X-Auth-Token: {sw.token}\r\nConnection: close\r\n\r\n".encode())
        response = await reader.read()
    finally:
        writer.close()
    return int(response.split(b" ", 2)[1]), response


async def test_copy_between_accounts_follows_each_sides_acl(swift_daemon, sw):
    admin = await swift_daemon.admin_client()
    pid_b = await make_user(admin, "xb", "xena", "xena-pw")
    await put(sw, "/pub", headers={"X-Container-Read": f"{pid_b}:*"})
    await put(sw, "/priv")
    await put(sw, "/pub/o", b"shared bytes", headers={"X-Object-Meta-K": "v"})
    await put(sw, "/priv/o", b"private")
    xena = await login(swift_daemon, "xena", "xena-pw", "xb")
    as_b = Swift(sw.http, sw.base, xena.token, f"AUTH_{pid_b}")
    await put(as_b, "/mine")
    # pull from A into B: A's read ACL lets B read it
    st, h, _ = await as_b.request("PUT", "/mine/copy", data=b"",
                                  headers={"X-Copy-From": "pub/o", "X-Copy-From-Account": sw.account})
    assert st == 201 and h["X-Copied-From-Account"] == sw.account
    st, h, body = await as_b.request("GET", "/mine/copy")
    assert body == b"shared bytes" and h["X-Object-Meta-K"] == "v"
    st, _, _ = await as_b.request("PUT", "/mine/nope", data=b"",
                                  headers={"X-Copy-From": "priv/o", "X-Copy-From-Account": sw.account})
    assert st == 403
    # push from B into A with COPY: A grants B no write, so no
    st, _, _ = await as_b.request("COPY", "/mine/copy", headers={"Destination": "pub/back",
                                                                 "Destination-Account": sw.account})
    assert st == 403 and (await sw.request("HEAD", "/pub/back"))[0] == 404
    # the owner of both (admin) may push
    st, _, _ = await sw.request("COPY", "/priv/o", headers={"Destination": "mine/from-a",
                                                            "Destination-Account": f"AUTH_{pid_b}"})
    assert st == 201 and (await as_b.request("GET", "/mine/from-a"))[2] == b"private"
    await xena.close()
    await admin.close()
