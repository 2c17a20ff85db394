"""libvirt's events, handed to asyncio: the process-wide event loop thread, lifecycle events
as our LifecycleEvent, and the subscriptions a driver delivers them to.

libvirt delivers lifecycle events and console-stream readiness through an event loop
implementation registered once per process, before the first connection. We run libvirt's
default implementation in one daemon thread and hand events to asyncio with
`call_soon_threadsafe`, instead of `libvirtaio`: libvirt cannot change its event
implementation once registered, and libvirtaio binds it to the one asyncio loop current at
registration, so a second loop in the same process (every pytest test, a restart of the
daemon's loop) would never see an event again. The thread costs nothing while idle.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

import libvirt

from appliance.compute.driver import LifecycleEvent, LifecycleEventKind

log = logging.getLogger("appliance.compute.libvirt.driver")

_event_lock = threading.Lock()
_event_thread: threading.Thread | None = None


def _ignore_libvirt_error(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; we raise them as exceptions instead."""


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and run it in a daemon thread (once)."""
    global _event_thread
    with _event_lock:
        if _event_thread is not None:
            return
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except Exception:  # never let the event thread die
                    log.exception("libvirt event loop iteration failed")
                    time.sleep(0.1)

        _event_thread = threading.Thread(target=run, name="libvirt-events", daemon=True)
        _event_thread.start()


_EVENTS: dict[int, tuple[LifecycleEventKind, tuple[str, ...]]] = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: (LifecycleEventKind.DEFINED,
                                       ("added", "updated", "renamed", "from_snapshot")),
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: (LifecycleEventKind.UNDEFINED, ("removed", "renamed")),
    libvirt.VIR_DOMAIN_EVENT_STARTED: (LifecycleEventKind.STARTED,
                                       ("booted", "migrated", "restored", "from_snapshot",
                                        "wakeup")),
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: (LifecycleEventKind.SUSPENDED,
                                         ("paused", "migrated", "ioerror", "watchdog",
                                          "restored", "from_snapshot", "api_error", "postcopy",
                                          "postcopy_failed")),
    libvirt.VIR_DOMAIN_EVENT_RESUMED: (LifecycleEventKind.RESUMED,
                                       ("unpaused", "migrated", "from_snapshot", "postcopy")),
    libvirt.VIR_DOMAIN_EVENT_STOPPED: (LifecycleEventKind.STOPPED,
                                       ("shutdown", "destroyed", "crashed", "migrated", "saved",
                                        "failed", "from_snapshot")),
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: (LifecycleEventKind.SHUTDOWN,
                                        ("finished", "guest", "host")),
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: (LifecycleEventKind.PMSUSPENDED, ("memory", "disk")),
    libvirt.VIR_DOMAIN_EVENT_CRASHED: (LifecycleEventKind.CRASHED, ("panicked", "crashloaded")),
}


def lifecycle_event(uuid: str, event: int, detail: int) -> LifecycleEvent:
    kind, details = _EVENTS.get(event, (LifecycleEventKind.UNKNOWN, ()))
    text = details[detail] if 0 <= detail < len(details) else str(detail)
    return LifecycleEvent(uuid=uuid, event=kind, detail=text)


class EventSubscription:
    """An async iterator of LifecycleEvents, registered at creation (no event is missed between
    `driver.events()` and the first `await`) in the driver's set of subscribers, which the
    libvirt event thread delivers to."""

    def __init__(self, subscribers: set[EventSubscription]) -> None:
        self._subscribers = subscribers
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[LifecycleEvent | None] = asyncio.Queue()
        self._closed = False
        subscribers.add(self)

    def __aiter__(self) -> EventSubscription:
        return self

    async def __anext__(self) -> LifecycleEvent:
        if self._closed:
            raise StopAsyncIteration
        ev = await self.queue.get()
        if ev is None:
            await self.aclose()
            raise StopAsyncIteration
        return ev

    def deliver(self, ev: LifecycleEvent | None) -> None:
        """Called from the libvirt event thread."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, ev)
        except RuntimeError:  # the subscriber's loop is closed
            self._subscribers.discard(self)

    async def aclose(self) -> None:
        self._closed = True
        self._subscribers.discard(self)
