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


class _Pipe:
    """A console stream standing in for a guest's serial port (test:///default has none)."""

    def __init__(self):
        import asyncio
        self.q: asyncio.Queue[bytes] = asyncio.Queue()
        self.written: list[bytes] = []

    async def read(self):
        return await self.q.get()

    async def write(self, data):
        self.written.append(data)
        self.q.put_nowait(b"echo:" + data)

    async def close(self):
        self.q.put_nowait(b"")


async def _until(ws, needle: bytes) -> bytes:
    seen = b""
    while needle not in seen:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        seen += msg.data
    return seen


async def test_second_console_client_is_told_who_holds_it_and_can_take_over(nova, compute_daemon):
    s = await boot(nova, "shared")
    comp = compute_daemon.appliance.ctx.components.compute
    pipe = _Pipe()

    async def open_stream(instance_id):
        return pipe
    comp.console_proxy._open = open_stream
    async with aiohttp.ClientSession() as http:
        first = await http.ws_connect(await _url(nova, s["id"]))
        await first.send_bytes(b"a")
        await _until(first, b"echo:a")
        second = await http.ws_connect(await _url(nova, s["id"]))
        told = await _until(second, b"takeover")
        assert b"held by admin" in told and b"read-only" in told
        await second.send_bytes(b"rm -rf /\r")  # read-only: never reaches the guest
        await second.send_bytes(b"takeover\r")
        assert b"You hold this console" in await _until(second, b"hold this console")
        assert b"took over" in await _until(first, b"took over")
        await second.send_bytes(b"b")
        await _until(second, b"echo:b")
        assert pipe.written == [b"a", b"b"]
        await first.close()
        await second.close()
