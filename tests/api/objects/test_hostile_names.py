"""Hostile names over HTTP: stored safely as names (never paths) or refused with 400.

Requests are sent with the path exactly as written (yarl `encoded=True`), so neither the
client nor the server normalizes `..` away before the handler sees it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.objects.conftest import Swift


def snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize("raw, name", [
    ("../../etc/passwd", "../../etc/passwd"),
    ("%2e%2e/%2e%2e/etc/passwd", "../../etc/passwd"),
    ("%2e%2e%2f%2e%2e%2fescape", "../../escape"),
    ("./x/../../y", "./x/../../y"),
    ("/abs/path", "/abs/path"),
    ("sp%20ace%20%E2%9C%93", "sp ace \u2713"),
    ("..", ".."),
    ("%5C..%5Cwin", "\\..\\win"),
])
async def test_dot_dot_and_friends_are_stored_as_names(swift_daemon, sw: Swift, tmp_path, raw, name):
    assert (await sw.request("PUT", "/h"))[0] == 201
    outside = tmp_path  # everything the daemon owns lives under tmp_path/d
    before = snapshot(outside) - snapshot(outside / "d")
    st, _, body = await sw.request("PUT", f"/h/{raw}", data=b"payload", raw=True)
    assert st == 201, body
    st, _, body = await sw.request("GET", f"/h/{raw}", raw=True)
    assert st == 200 and body == b"payload"
    st, _, body = await sw.request("GET", "/h?format=json")
    assert [e["name"] for e in json.loads(body)] == [name]
    # no file appeared outside the daemon's directory, and none was named after the object
    assert snapshot(outside) - snapshot(outside / "d") == before
    assert not any("passwd" in p.name or "escape" in p.name for p in snapshot(outside))
    for dev in swift_daemon.config.storage.object_devices:
        for p in Path(dev).rglob("*"):
            assert p.resolve().is_relative_to(Path(dev).resolve())
    assert (await sw.request("DELETE", f"/h/{raw}", raw=True))[0] == 204


@pytest.mark.parametrize("raw", [
    "%00", "a%00b", "%ff%fe", "ok%c3", "%ed%a0%80",  # NUL, invalid UTF-8, a lone surrogate
    "x" * 1025,  # over 1024 bytes
    "%E2%9C%93" * 342,  # 1026 bytes of valid UTF-8
])
async def test_invalid_names_are_refused(sw: Swift, raw):
    assert (await sw.request("PUT", "/h"))[0] in (201, 202)
    st, _, _ = await sw.request("PUT", f"/h/{raw}", data=b"x", raw=True)
    assert st == 400
    st, _, body = await sw.request("GET", "/h?format=json")
    assert json.loads(body) == []


async def test_longest_name_is_accepted(sw: Swift):
    assert (await sw.request("PUT", "/h"))[0] == 201
    name = "\u00e9" * 512  # 1024 bytes
    assert (await sw.request("PUT", "/h/" + name, data=b"1"))[0] == 201
    assert (await sw.request("GET", "/h/" + name))[2] == b"1"


@pytest.mark.parametrize("raw", ["%ff", "a%00", "c%2Fd", "x" * 257])
async def test_invalid_container_names_are_refused(sw: Swift, raw):
    st, _, _ = await sw.request("PUT", f"/{raw}", raw=True)
    assert st in (400, 404)


async def test_invalid_account_names(sw: Swift):
    assert (await sw.as_account("AUTH_%ff").request("GET", raw=True))[0] in (400, 403)
    assert (await sw.as_account("notauth").request("GET"))[0] == 404
