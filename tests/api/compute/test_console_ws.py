"""The serial console websocket: token single use, foreign Origin refused, and a clear close
when the driver offers no console (test:///default)."""
import aiohttp

from tests.api.compute.test_servers import boot

C = "/compute/v2.1"


async def _url(nova, sid):
    r = await nova.post(f"{C}/servers/{sid}/remote-consoles",
                        {"remote_console": {"protocol": "serial", "type": "serial"}},
                        headers={"OpenStack-API-Version": "compute 2.60"})
    return r["remote_console"]["url"]


async def test_console_websocket_token_origin_and_unsupported_driver(nova, compute_daemon):
    s = await boot(nova, "cons")
    async with aiohttp.ClientSession() as http:
        url = await _url(nova, s["id"])
        try:
            await http.ws_connect(url, headers={"Origin": "http://evil.example"})
            raise AssertionError("foreign origin accepted")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403
        # the refused attempt did not burn the token: the origin is checked first
        async with http.ws_connect(url, headers={"Origin": compute_daemon.url}) as ws:
            msg = await ws.receive()
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1011  # test:///default has no serial console
        try:
            await http.ws_connect(url)
            raise AssertionError("token used twice")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 401
        legacy = await nova.post(f"{C}/servers/{s['id']}/action",
                                 {"os-getSerialConsole": {"type": "serial"}})
        assert legacy["console"]["url"].startswith("ws://")
