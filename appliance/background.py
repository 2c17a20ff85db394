"""Background work a component owns: started fire-and-forget, cancelled together at stop.

Keeping the tasks in one set stops asyncio from garbage-collecting a running task and lets a
component's stop() cancel and await everything it started, so shutdown leaves nothing running.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Awaitable


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def __len__(self) -> int:
        return len(self._tasks)
