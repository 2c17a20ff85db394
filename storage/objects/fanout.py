"""A streamed body handed to long-lived threads: one per consumer (each replica's writer, the
md5, the block sums), each fed batches in order from a queue of its own.

Why not a thread hop per chunk: a 1 GiB PUT through `to_thread`/`run_in_executor` per 1 MiB
chunk made ~5,000 loop↔thread handoffs, and every chunk waited for its slowest replica and
for the md5 of the previous one, so the disk copies and the md5 took turns instead of
running side by side (0.53-0.70 of the same work in plain threads, measured). Here each
consumer runs at its own pace like those plain threads, the event loop wakes once per batch
(a few MiB), and a batch is freed when every consumer is done with it.

Bounded: at most `window` bytes are queued or being consumed; `put` waits for room before it
returns, so nothing more of the body is read meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

Pieces = Sequence["bytes | bytearray"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Consumer:
    """One thread's work on every batch: `consume(pieces, offset)` in order, then `finish()`
    once the body ended (not after an error, nor when the fan-out was stopped).

    An error stops this consumer only: `error` holds it, `on_error` runs in its thread (a
    writer closes its file there) and later batches pass it by; the others go on."""

    name: str
    consume: Callable[[Pieces, int], None]
    finish: Callable[[], None] | None = None
    on_error: Callable[[BaseException], None] | None = None
    error: BaseException | None = None
    queue: "queue.SimpleQueue[_Batch | None]" = field(default_factory=queue.SimpleQueue)


@dataclass(eq=False, slots=True)
class _Batch:
    pieces: Pieces | None
    nbytes: int
    offset: int
    left: int


class FanOut:
    """Feed batches of a body to every consumer's thread, at most `window` bytes in flight.

    `put` (event loop) queues a batch for all and waits while the window is full; `close`
    says the body ended and waits for every thread to finish; `stop` abandons the body
    (batches not yet started are skipped) — await `exited` before touching what the threads
    use, a cancelled await does not stop a thread."""

    def __init__(self, consumers: list[Consumer], window: int, *,
                 on_failure: Callable[[Consumer], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.consumers = consumers
        self._window = window
        self._inflight = 0
        self._room: asyncio.Future[None] | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._ended = False
        self._on_failure = on_failure
        _start_notifier()
        done = [self._loop.create_future() for _ in consumers]
        #: resolves once every thread has returned (whatever happened)
        self.exited: asyncio.Future = asyncio.gather(*done)
        try:
            for c, fut in zip(consumers, done):
                threading.Thread(target=self._run, args=(c, fut), name=f"put-{c.name}",
                                 daemon=True).start()
        except BaseException:  # no thread to be had: those started end (they hold nothing yet)
            self.stop()
            raise

    async def put(self, pieces: Pieces, nbytes: int, offset: int) -> None:
        """Queue `pieces` (`nbytes` long, at body `offset`) for every consumer; return once
        the bytes in flight fit the window again. The pieces must not change afterwards."""
        batch = _Batch(pieces, nbytes, offset, len(self.consumers))
        self._inflight += nbytes
        for c in self.consumers:
            c.queue.put(batch)
        while self._inflight > self._window:
            self._room = self._loop.create_future()
            await self._room

    async def close(self) -> None:
        """The body ended: wait for every consumer to take every batch and finish."""
        self._end()
        await asyncio.shield(self.exited)

    def stop(self) -> None:
        """Abandon the body: threads skip what they have not started and return."""
        self._stopping = True
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            for c in self.consumers:
                c.queue.put(None)

    def _run(self, c: Consumer, exited: asyncio.Future) -> None:
        try:
            while (batch := c.queue.get()) is not None:
                if c.error is None and not self._stopping:
                    try:
                        assert batch.pieces is not None
                        c.consume(batch.pieces, batch.offset)
                    except BaseException as exc:  # noqa: BLE001 - reported through c.error
                        self._fail(c, exc)
                with self._lock:
                    batch.left -= 1
                    last = batch.left == 0
                if last:
                    batch.pieces = None  # freed now, not when the loop gets to it
                    self._tell(self._done, batch.nbytes)
            if c.error is None and not self._stopping and c.finish is not None:
                try:
                    c.finish()
                except BaseException as exc:  # noqa: BLE001 - reported through c.error
                    self._fail(c, exc)
        finally:
            self._tell(_resolve, exited)

    def _fail(self, c: Consumer, exc: BaseException) -> None:
        c.error = exc
        if c.on_error is not None:
            try:
                c.on_error(exc)
            except Exception:  # noqa: BLE001 - the first error is the one that counts
                pass
        if self._on_failure is not None:
            self._tell(self._on_failure, c)

    def _tell(self, fn: Callable[..., None], *args: object) -> None:
        """Run `fn` on the event loop, through the notifier thread (see _notify)."""
        _notices.put((self._loop, fn, args))

    def _done(self, nbytes: int) -> None:
        self._inflight -= nbytes
        if self._room is not None and not self._room.done() and self._inflight <= self._window:
            self._room.set_result(None)


#: Why a thread of its own tells event loops that a batch is done: call_soon_threadsafe
#: writes to the loop's self-pipe, a syscall that lets go of the GIL, and the loop it wakes
#: takes it; the caller then waits for the loop's iteration to end (or for a whole switch
#: interval, or for a preempted loop to run again) before it can go on. Made by the md5
#: thread, the slowest consumer and so the last on each batch, it cost that thread 0.9-1.4 s
#: of a 1 GiB PUT (max 200 ms at once, measured). A SimpleQueue put keeps the GIL.
_notices: "queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, Callable[..., None], tuple]]" = queue.SimpleQueue()


def _notify() -> None:
    while True:
        loop, fn, args = _notices.get()
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is gone, its PUT with it
            pass
        except Exception:  # noqa: BLE001 - this thread serves every PUT: it must go on
            log.exception("could not tell an event loop that a batch is done")


_notifier_started = threading.Lock()
_notifier: list[threading.Thread] = []


def _start_notifier() -> None:
    with _notifier_started:
        if not _notifier:
            t = threading.Thread(target=_notify, name="objects-notifier", daemon=True)
            t.start()
            _notifier.append(t)


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
