"""Temporary URLs as Swift's tempurl middleware defines them: signed by hand (HMAC-SHA1/256/512,
hex and base64), by `swift tempurl` and by openstacksdk, then used without a token."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from urllib.parse import quote

import aiohttp
import openstack

from tests.api.objects.conftest import Swift, login, make_user, run_cli, swift_args
from tests.daemon import ADMIN_PASSWORD


def sign(key: str, method: str, expires: int, path: str, digest=hashlib.sha256, *, b64=False,
         ip: str | None = None) -> str:
    body = f"{method}\n{expires}\n{path}"
    if ip:
        body = f"ip={ip}\n{body}"
    mac = hmac.new(key.encode(), body.encode(), digest)
    if b64:
        return f"{mac.name.split('-')[1]}:" + base64.urlsafe_b64encode(mac.digest()).decode()
    return mac.hexdigest()


async def anon(http: aiohttp.ClientSession, method: str, url: str, data: bytes | None = None,
               headers: dict | None = None) -> tuple[int, dict, bytes]:
    async with http.request(method, url, data=data, headers=headers or {}) as r:
        return r.status, r.headers, await r.read()


async def setup(sw: Swift) -> None:
    assert (await sw.request("POST", "", headers={"X-Account-Meta-Temp-URL-Key": "akey",
                                                  "X-Account-Meta-Temp-URL-Key-2": "akey2"}))[0] == 204
    for c in ("c", "other"):
        assert (await sw.request("PUT", f"/{c}"))[0] == 201
    st, _, _ = await sw.request("PUT", "/c/dir/report.pdf", data=b"secret-bytes", headers={
        "X-Object-Meta-Private": "no", "X-Object-Meta-Public-Tag": "yes"})
    assert st == 201
    assert (await sw.request("PUT", "/other/x", data=b"other"))[0] == 201


async def test_signed_get_head_put_delete_and_what_the_holder_sees(sw):
    await setup(sw)
    exp = int(time.time()) + 60
    path = f"/v1/{sw.account}/c/dir/report.pdf"
    async with aiohttp.ClientSession() as http:
        # sha256 hex over Swift's /v1 path, used under /v1 and under /swift/v1 alike
        sig = sign("akey", "GET", exp, path)
        for base in (f"{sw.base}/v1/{sw.account}", f"{sw.base}/swift/v1/{sw.account}"):
            st, h, body = await anon(http, "GET", f"{base}/c/dir/report.pdf?temp_url_sig={sig}&temp_url_expires={exp}")
            assert st == 200 and body == b"secret-bytes", base
            assert h["Content-Disposition"] == \
                "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
            assert h["Expires"] == time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(exp))
            assert "X-Object-Meta-Private" not in h and h["X-Object-Meta-Public-Tag"] == "yes"
        url = f"{sw.base}{path}?temp_url_sig={sig}&temp_url_expires={exp}"
        # HEAD rides on a GET signature; a range works; other methods do not
        assert (await anon(http, "HEAD", url))[0] == 200
        st, _, body = await anon(http, "GET", url, headers={"Range": "bytes=0-5"})
        assert st == 206 and body == b"secret"
        assert (await anon(http, "PUT", url, data=b"x"))[0] == 401
        assert (await anon(http, "DELETE", url))[0] == 401
        # filename and inline
        st, h, _ = await anon(http, "GET", url + "&filename=My%20File.pdf")
        assert h["Content-Disposition"] == "attachment; filename=\"My File.pdf\"; filename*=UTF-8''My%20File.pdf"
        st, h, _ = await anon(http, "GET", url + "&inline")
        assert h["Content-Disposition"] == "inline"
        st, h, _ = await anon(http, "GET", url + "&inline&filename=a.pdf")
        assert h["Content-Disposition"].startswith('inline; filename="a.pdf"')
        # sha1 and sha512 (base64, as swiftclient writes it), the second account key
        for digest, b64, key in ((hashlib.sha1, False, "akey"), (hashlib.sha512, True, "akey2"),
                                 (hashlib.sha256, True, "akey")):
            s = sign(key, "GET", exp, path, digest, b64=b64)
            st, _, body = await anon(http, "GET", f"{sw.base}{path}?temp_url_sig={quote(s)}&temp_url_expires={exp}")
            assert st == 200 and body == b"secret-bytes", digest
        # ISO 8601 in the URL, the epoch in the signature
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
        assert (await anon(http, "GET", f"{sw.base}{path}?temp_url_sig={sig}&temp_url_expires={iso}"))[0] == 200
        # PUT then DELETE with their own signatures
        new = f"/v1/{sw.account}/c/upload.bin"
        put_url = f"{sw.base}{new}?temp_url_sig={sign('akey', 'PUT', exp, new)}&temp_url_expires={exp}"
        st, h, _ = await anon(http, "PUT", put_url, data=b"uploaded")
        assert st == 201 and h["ETag"] == hashlib.md5(b"uploaded").hexdigest()
        assert (await anon(http, "HEAD", put_url))[0] == 200  # HEAD rides on PUT too
        assert (await anon(http, "PUT", put_url, data=b"x", headers={"X-Object-Manifest": "other/"}))[0] == 400
        assert (await sw.request("GET", "/c/upload.bin"))[2] == b"uploaded"
        # a temp URL does not pass ?multipart-manifest on: a PUT stores the bytes as they are
        st, _, _ = await anon(http, "PUT", put_url + "&multipart-manifest=put", data=b"[]")
        assert st == 201 and (await sw.request("GET", "/c/upload.bin"))[2] == b"[]"
        del_url = f"{sw.base}{new}?temp_url_sig={sign('akey', 'DELETE', exp, new)}&temp_url_expires={exp}"
        assert (await anon(http, "DELETE", del_url))[0] == 204
        assert (await sw.request("HEAD", "/c/upload.bin"))[0] == 404


async def test_invalid_temp_urls_are_401_and_scopes_hold(sw):
    await setup(sw)
    exp = int(time.time()) + 60
    path = f"/v1/{sw.account}/c/dir/report.pdf"
    good = sign("akey", "GET", exp, path)
    async with aiohttp.ClientSession() as http:
        def url(p: str = path, s: str = good, e: object = exp, extra: str = "") -> str:
            return f"{sw.base}{p}?temp_url_sig={s}&temp_url_expires={e}{extra}"
        past = int(time.time()) - 1
        for bad in (url(s=sign("wrong", "GET", exp, path)), url(e=exp + 1), url(e="soon"),
                    url(e=past, s=sign("akey", "GET", past, path)), url(s="zz" * 32),
                    url(s="md5:" + "a" * 20), url(p=f"/v1/{sw.account}/c/dir/other.pdf"),
                    f"{sw.base}{path}?temp_url_sig={good}", f"{sw.base}{path}?temp_url_expires={exp}",
                    url(extra="&temp_url_ip_range=10.0.0.0/8"), url(extra="&temp_url_prefix=dir/")):
            st, _, body = await anon(http, "GET", bad)
            assert st == 401 and b"Temp URL invalid" in body, bad
        # a valid token does not rescue an invalid temp URL (as in Swift)
        st, _, _ = await anon(http, "GET", url(e=exp + 1), headers={"X-Auth-Token": sw.token})
        assert st == 401
        # container and account paths are not temp URL targets
        cpath = f"/v1/{sw.account}/c"
        assert (await anon(http, "GET", url(p=cpath, s=sign("akey", "GET", exp, cpath))))[0] == 401
        # ip-bound signatures
        ip_sig = sign("akey", "GET", exp, path, ip="127.0.0.0/8")
        assert (await anon(http, "GET", url(s=ip_sig, extra="&temp_url_ip_range=127.0.0.0/8")))[0] == 200
        # a prefix signature covers every object under the prefix, nothing else
        pre = sign("akey", "GET", exp, f"prefix:/v1/{sw.account}/c/dir/")
        assert (await anon(http, "GET", url(s=pre, extra="&temp_url_prefix=dir/")))[0] == 200
        other = f"/v1/{sw.account}/other/x"
        assert (await anon(http, "GET", url(p=other, s=pre, extra="&temp_url_prefix=dir/")))[0] == 401
        # container keys reach only their container; account keys the whole account
        assert (await sw.request("POST", "/other", headers={"X-Container-Meta-Temp-URL-Key": "ckey"}))[0] == 204
        cs = sign("ckey", "GET", exp, other)
        st, _, body = await anon(http, "GET", url(p=other, s=cs))
        assert st == 200 and body == b"other"
        assert (await anon(http, "GET", url(s=sign("ckey", "GET", exp, path))))[0] == 401
        # a key removed stops working at once
        assert (await sw.request("POST", "", headers={"X-Remove-Account-Meta-Temp-URL-Key": "x"}))[0] == 204
        assert (await anon(http, "GET", url()))[0] == 401
    # /info advertises the middleware with Swift's defaults
    async with aiohttp.ClientSession() as http:
        async with http.get(sw.base + "/info") as r:
            t = (await r.json())["tempurl"]
    assert t["methods"] == ["GET", "HEAD", "PUT", "POST", "DELETE"]
    assert t["allowed_digests"] == ["sha1", "sha256", "sha512"]
    assert t["outgoing_remove_headers"] == ["x-object-meta-*"]


async def test_keys_are_the_owners(swift_daemon, sw):
    """A reader can neither read nor set the keys (Swift: only the account's owner roles)."""
    admin = await swift_daemon.admin_client()
    pid = await make_user(admin, "tu-ro", "tara", "tara-pw", role="reader")
    owner = sw.as_account(f"AUTH_{pid}")
    await setup(owner)
    tara = await login(swift_daemon, "tara", "tara-pw", "tu-ro")
    as_tara = Swift(sw.http, sw.base, tara.token, f"AUTH_{pid}")
    st, h, _ = await as_tara.request("HEAD")
    assert st == 204 and not [k for k in h if "temp-url" in k.lower()]
    assert (await as_tara.request("POST", "", headers={"X-Account-Meta-Temp-URL-Key": "mine"}))[0] == 403
    st, h, _ = await owner.request("HEAD")
    assert h["X-Account-Meta-Temp-Url-Key"] == "akey"
    await tara.close()
    await admin.close()


async def test_swift_cli_post_key_and_tempurl(swift_daemon, sw, tmp_path):
    args = swift_args(swift_daemon)
    await run_cli(*args, "post", "-m", "Temp-URL-Key:cli-secret")
    (tmp_path / "f.txt").write_bytes(b"from the cli")
    await run_cli(*args, "upload", "tc", "f.txt", cwd=tmp_path)
    path = f"/v1/{sw.account}/tc/f.txt"
    async with aiohttp.ClientSession() as http:
        for extra in ((), ("--digest", "sha512"), ("--digest", "sha1"), ("--iso8601",)):
            signed = (await run_cli(*args, "tempurl", *extra, "GET", "60", path, "cli-secret")).strip()
            st, _, body = await anon(http, "GET", sw.base + signed)
            assert st == 200 and body == b"from the cli", extra
        # prefix-based, and a full URL under the catalog's /swift/v1 path
        signed = (await run_cli(*args, "tempurl", "--prefix-based", "GET", "60",
                                f"/v1/{sw.account}/tc/f", "cli-secret")).strip()
        st, _, body = await anon(http, "GET", f"{sw.base}/v1/{sw.account}/tc/f.txt?{signed.split('?', 1)[1]}")
        assert st == 200 and body == b"from the cli"
        full = f"{sw.base}/swift/v1/{sw.account}/tc/f.txt"
        signed = (await run_cli(*args, "tempurl", "GET", "60", full, "cli-secret")).strip()
        st, _, body = await anon(http, "GET", signed if signed.startswith("http") else sw.base + signed)
        assert st == 200 and body == b"from the cli"
        signed = (await run_cli(*args, "tempurl", "PUT", "60", f"/v1/{sw.account}/tc/put.txt",
                                "cli-secret")).strip()
        assert (await anon(http, "PUT", sw.base + signed, data=b"put by link"))[0] == 201
    out = tmp_path / "put.txt"
    await run_cli(*args, "download", "tc", "put.txt", "-o", str(out), cwd=tmp_path)
    assert out.read_bytes() == b"put by link"
    # the CLI downloads ranges too
    await run_cli(*args, "download", "tc", "f.txt", "-o", str(tmp_path / "part"),
                  "--header", "Range:bytes=5-7", cwd=tmp_path)
    assert (tmp_path / "part").read_bytes() == b"the"


async def test_openstacksdk_temp_url_and_object_store(swift_daemon, sw):
    def work() -> tuple[str, str]:
        conn = openstack.connect(auth_url=swift_daemon.url + "/identity", username="admin",
                                 password=ADMIN_PASSWORD, project_name="admin",
                                 user_domain_name="Default", project_domain_name="Default",
                                 region_name="RegionOne", load_envvars=False, load_yaml_config=False)
        try:
            store = conn.object_store
            store.create_container("sdk")
            store.upload_object("sdk", "hello.txt", data=b"hello from the sdk")
            store.set_account_temp_url_key("sdk-key")
            endpoint = store.get_endpoint()
            account_path = endpoint[endpoint.index("/swift/v1/") + len("/swift"):]
            signed = store.generate_temp_url(f"{account_path}/sdk/hello.txt", 60, "GET")
            meta = store.get_object_metadata("hello.txt", "sdk")
            assert meta.content_length == 18
            return signed, store.get_account_metadata().meta_temp_url_key
        finally:
            conn.close()

    signed, key = await asyncio.to_thread(work)
    assert key == "sdk-key"
    async with aiohttp.ClientSession() as http:
        st, _, body = await anon(http, "GET", sw.base + signed)
    assert st == 200 and body == b"hello from the sdk"
