"""The serial console transport for the daemon: Nova's remote-console URL, dialled as a
websocket through the same MonostackClient (so it works over the unix socket and TCP alike).

`POST /compute/v2.1/servers/{id}/remote-consoles` (protocol serial) answers a ws:// URL; we
keep its path and query and let the client add the host and the token. Frames may be binary
or text; both become bytes for the terminal.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from tui.cloud import Cloud


class WebSocketConsole:
    """A `ConsoleTransport` over one aiohttp client websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            try:
                msg = await self.ws.receive()
            except (aiohttp.ClientError, OSError) as exc:
                raise ConnectionError(str(exc)) from exc
            if msg.type == aiohttp.WSMsgType.BINARY:
                return msg.data
            if msg.type == aiohttp.WSMsgType.TEXT:
                return msg.data.encode("utf-8", "surrogateescape")
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                return b""

    async def write(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionError("console link closed")
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        await self.ws.close()


async def open_serial_console(cloud: Cloud, server_id: str) -> WebSocketConsole:
    url = await cloud.serial_console_url(server_id)
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return WebSocketConsole(await cloud.client.websocket(path))
