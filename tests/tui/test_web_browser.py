"""The operator console in a real headless Debian chromium, through `monostack web` with the
appliance's TLS: log in with the TUI's own login, open Instances, open a real TCG guest's
serial console, type into its shell and see the answer, in the browser's terminal and in a
screenshot taken of it. Nothing but the browser on the operator's side."""
from __future__ import annotations

import ipaddress
import time

import pytest

from tests.daemon import ADMIN_PASSWORD
from tests.guest_image import PROMPT, READY_MARKER
from tests.integration.realguest import REAL_GUEST_MARKS
from tests.tui import browser
from tests.tui.test_console_real_guest import BOOT_TIMEOUT, _console_text, guest_cloud  # noqa: F401

pytestmark = [*REAL_GUEST_MARKS, pytest.mark.skipif(
    not browser.available(), reason="needs chromium and chromium-driver (tests/run.sh)")]


@pytest.fixture
def web_console(guest_cloud, tmp_path):  # noqa: F811
    from appliance.tls import TlsFiles, ensure_tls
    from tui.web import WebConsole, tls_context
    daemon, name, sid = guest_cloud
    ensure_tls(tmp_path / "tls", names=(("localhost",), (ipaddress.IPv4Address("127.0.0.1"),)))
    files = TlsFiles(tmp_path / "tls")
    web = WebConsole(host="127.0.0.1", port=0, socket_path=daemon.socket,
                     ssl_context=tls_context(files.server_cert, files.server_key),
                     max_sessions=2)
    daemon.call(web.start())
    b = browser.Browser(width=1100, height=700, trust_cert=files.server_cert.read_bytes())
    try:
        yield daemon, name, sid, web, b
    finally:
        try:
            b.close()
        finally:
            daemon.call(web.stop())


def test_a_browser_reaches_a_guest_shell_through_the_appliance(web_console, tmp_path):
    from selenium.webdriver.common.keys import Keys
    daemon, name, sid, web, b = web_console
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        text = _console_text(daemon, sid)
        if READY_MARKER in text and PROMPT in text:
            break
        assert time.monotonic() < deadline, f"guest did not boot in time:\n{text[-800:]}"
        time.sleep(1)

    b.open(f"https://127.0.0.1:{web.port}/")  # TLS: the appliance's own certificate
    b.wait_for(lambda t: "Log in" in t and "Password" in t)
    b.focus_terminal()
    b.type("admin", Keys.ENTER)
    b.type(ADMIN_PASSWORD, Keys.ENTER)  # Enter in the password logs in (default project)
    b.wait_for(lambda t: "admin@admin" in t and "Recent events" in t)
    b.type("2")
    b.wait_for(lambda t: name in t and "ACTIVE" in t)
    b.type("c")
    b.wait_for(lambda t: "connected" in t and name in t)
    b.type(Keys.ENTER)
    b.wait_for(lambda t: PROMPT.strip() in t)
    b.type("echo web-$((6*7))", Keys.ENTER)
    screen = b.wait_for(lambda t: any(line.strip() == "web-42" for line in t.splitlines()))
    assert "echo web-$((6*7))" in screen
    png = b.screenshot(tmp_path / "web-console.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert b.screen_text() == screen or "web-42" in b.screen_text()  # what the shot shows
    assert web.sessions == 1

    # A second client (`openstack console url show --serial`, a bare websocket) is told that
    # the browser's session holds the console; it takes it over, and the browser is told.
    import asyncio
    from urllib.parse import urlsplit

    async def second_client(admin) -> str:
        body = await admin.post(f"/compute/v2.1/servers/{sid}/remote-consoles", {
            "remote_console": {"protocol": "serial", "type": "serial"}},
            headers={"OpenStack-API-Version": "compute 2.60"})
        parts = urlsplit(body["remote_console"]["url"])
        ws = await admin.websocket(f"{parts.path}?{parts.query}")  # the daemon's own socket
        seen = b""
        try:
            async with asyncio.timeout(20):
                while b"takeover" not in seen:
                    seen += (await ws.receive()).data
                await ws.send_bytes(b"takeover\r")
                while b"You hold this console" not in seen:
                    seen += (await ws.receive()).data
        finally:
            await ws.close()
        return seen.decode("utf-8", "replace")
    told = daemon.admin_do(second_client)
    assert "held by admin" in told and "read-only" in told
    b.wait_for(lambda t: "took over this console" in t)
