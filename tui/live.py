"""The live event feed: the daemon's /monostack/events/stream websocket, kept connected.

Knows nothing of widgets (like Toolong's watcher): it calls `on_event(CloudEvent)` for each
state change and `on_link(connected: bool, detail)` when the link drops or comes back, and
redials with backoff until cancelled. The app turns those calls into messages.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import aiohttp

from appliance.errors import MonostackError, Unauthorized
from tui.cloud import Cloud, CloudEvent

SESSION_EXPIRED = "session expired"

EventCallback = Callable[[CloudEvent], None]
LinkCallback = Callable[[bool, str], None]


class EventFeed:
    def __init__(self, cloud: Cloud, on_event: EventCallback, on_link: LinkCallback,
                 *, backoff: tuple[float, ...] = (0.5, 1, 2, 4, 8)) -> None:
        self.cloud = cloud
        self.on_event = on_event
        self.on_link = on_link
        self.backoff = backoff

    async def run(self) -> None:
        """Read events forever; each lost link is reported once, then redialled."""
        failures = 0
        connected: bool | None = None
        while True:
            try:
                ws = await self.cloud.event_stream()
            except Unauthorized as exc:
                self.on_link(False, SESSION_EXPIRED + f": {exc}")
                return
            except (MonostackError, aiohttp.ClientError, OSError) as exc:
                if connected is not False:
                    self.on_link(False, str(exc))
                    connected = False
                await asyncio.sleep(self.backoff[min(failures, len(self.backoff) - 1)])
                failures += 1
                continue
            failures = 0
            if connected is not True:
                self.on_link(True, "")
                connected = True
            try:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        try:
                            self.on_event(CloudEvent.from_api(json.loads(msg.data)))
                        except (ValueError, TypeError, KeyError):
                            continue
                    elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED,
                                      aiohttp.WSMsgType.CLOSE):
                        break
            except (aiohttp.ClientError, OSError):
                pass
            finally:
                await ws.close()
            self.on_link(False, "event stream closed")
            connected = False
            await asyncio.sleep(self.backoff[0])
