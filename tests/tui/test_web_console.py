"""`monostack web` without a browser: the page brings everything from the appliance, each
websocket is one TUI session behind its own login, sessions are capped, cross-site pages are
refused, and plain HTTP is refused off loopback."""
from __future__ import annotations

import re

import aiohttp
import pytest

from tui.web import WebConsole


@pytest.fixture
async def web(tui_daemon):
    console = WebConsole(host="127.0.0.1", port=0, socket_path=tui_daemon.socket,
                         max_sessions=1)
    await console.start()
    try:
        yield console
    finally:
        await console.stop()


async def _until_text(ws, needle: str, timeout: float = 30) -> str:
    """Read the session's terminal output until `needle` shows up."""
    seen = ""
    async with __import__("asyncio").timeout(timeout):
        while needle not in seen:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            seen += msg.data.decode("utf-8", "replace")
    return seen


async def test_page_is_self_contained_and_a_session_starts_at_the_tui_login(web):
    base = f"http://127.0.0.1:{web.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/") as r:
            page = await r.text()
            assert r.status == 200 and r.headers["X-Frame-Options"] == "DENY"
        assert not re.findall(r"(?:src|href)=\"https?://", page)  # nothing from elsewhere
        async with http.get(base + "/static/js/textual.js") as r:
            assert "monostackTerminals" in await r.text()
        async with http.ws_connect(base + "/ws?width=80&height=24") as ws:
            assert "Log in" in await _until_text(ws, "Log in")
            assert web.sessions == 1


async def test_sessions_are_capped_and_cross_site_pages_refused(web):
    base = f"http://127.0.0.1:{web.port}"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(base + "/ws", headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        async with http.ws_connect(base + "/ws") as first:
            await _until_text(first, "Log in")
            async with http.ws_connect(base + "/ws") as second:  # max_sessions=1
                msg = await second.receive()
                assert msg.type == aiohttp.WSMsgType.CLOSE and second.close_code == 1013
            async with http.get(base + "/") as r:
                assert r.status == 503 and "in use" in await r.text()
        for _ in range(100):  # the first session's process has ended: room again
            if web.sessions == 0:
                break
            await __import__("asyncio").sleep(0.05)
        async with http.get(base + "/") as r:
            assert r.status == 200


def test_plain_http_only_on_loopback(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        WebConsole(host="0.0.0.0", port=0, socket_path=tmp_path / "sock")
