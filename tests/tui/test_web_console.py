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


async def test_status_says_whether_the_web_console_is_up(tmp_path):
    """`monostack status` asks the console for its page over TLS where the installer put it
    ([web] listen): off when unset, up while it serves, not answering once it stops."""
    import asyncio

    from appliance.config import Config
    from appliance.doctor import check_web_console
    from appliance.tls import ensure_tls
    from tui.web import tls_context
    files = ensure_tls(tmp_path / "tls", ["localhost"]).files
    off = check_web_console(Config.for_state_dir(tmp_path))
    assert off.level == "ok" and off.detail.startswith("off")
    console = WebConsole(host="127.0.0.1", port=0, socket_path=tmp_path / "sock",
                         ssl_context=tls_context(files.server_cert, files.server_key),
                         keep_spare=False)
    await console.start()
    config = Config.for_state_dir(tmp_path, web={"listen": f"0.0.0.0:{console.port}"})
    try:
        up = await asyncio.to_thread(check_web_console, config)
        assert (up.level, up.detail) == ("ok", f"up on https://0.0.0.0:{console.port}/ "
                                               "(each tab logs in as in the TUI)")
    finally:
        await console.stop()
    down = await asyncio.to_thread(check_web_console, config)
    assert down.level == "warn" and down.detail.startswith("not answering") and down.fix
