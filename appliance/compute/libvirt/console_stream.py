"""A guest's serial console as an async byte stream (virDomainOpenConsole), fed by the libvirt
event thread (appliance/compute/libvirt/events.py)."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import time

import libvirt

from appliance.compute.libvirt.errors import translate
from appliance.errors import Conflict, HypervisorError

class LibvirtConsole:
    """A libvirt console stream (virDomainOpenConsole), non-blocking, fed by the libvirt event
    thread. Output a slow reader has not taken is bounded (`max_pending` bytes, oldest dropped):
    the console log file keeps everything, this is only the live view."""

    def __init__(self, conn: libvirt.virConnect, dom: libvirt.virDomain, force: bool,
                 loop: asyncio.AbstractEventLoop, max_pending: int = 1 << 20) -> None:
        self._loop = loop
        self._chunks: collections.deque[bytes] = collections.deque()
        self._pending = 0
        self._max_pending = max_pending
        self._eof = False
        self._wakeup = asyncio.Event()
        self._closed = False
        self._stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        flags = libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else libvirt.VIR_DOMAIN_CONSOLE_SAFE
        try:
            dom.openConsole(None, self._stream, flags)
            self._stream.eventAddCallback(
                libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR
                | libvirt.VIR_STREAM_EVENT_HANGUP, self._on_event, None)
        except libvirt.libvirtError:
            with contextlib.suppress(libvirt.libvirtError):
                self._stream.abort()
            raise

    # libvirt event thread
    def _on_event(self, stream: libvirt.virStream, events: int, _opaque: object) -> None:
        while True:
            try:
                data = stream.recv(65536)
            except libvirt.libvirtError:
                data = b""
            if data == -2:  # EAGAIN
                return
            if not data:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.eventRemoveCallback()
                self._post(b"")
                return
            self._post(data)

    def _post(self, data: bytes) -> None:
        try:
            self._loop.call_soon_threadsafe(self._feed, data)
        except RuntimeError:
            pass

    # event loop
    def _feed(self, data: bytes) -> None:
        if not data:
            self._eof = True
        else:
            self._chunks.append(data)
            self._pending += len(data)
            while self._pending > self._max_pending and len(self._chunks) > 1:
                self._pending -= len(self._chunks.popleft())
        self._wakeup.set()

    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof or self._closed:
                return b""
            self._wakeup.clear()
            await self._wakeup.wait()
        data = self._chunks.popleft()
        self._pending -= len(data)
        return data

    async def write(self, data: bytes) -> None:
        if self._closed or self._eof:
            raise Conflict("console stream is closed")
        await asyncio.to_thread(self._send_all, bytes(data))

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 10
        while view:
            try:
                n = self._stream.send(bytes(view))
            except libvirt.libvirtError as e:
                raise translate(e, "console write") from e
            if n == -2:
                if time.monotonic() > deadline:
                    raise HypervisorError("console write timed out")
                time.sleep(0.01)
                continue
            view = view[n:]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()

        def _close() -> None:
            with contextlib.suppress(libvirt.libvirtError):
                self._stream.eventRemoveCallback()
            with contextlib.suppress(libvirt.libvirtError):
                self._stream.abort()

        await asyncio.to_thread(_close)
