"""Serial console throughput and UI stall, side by side with raw pyte.

    python -m tests.bench.bench_console [--mb 4] [--rate 200000] [--seconds 8]

Prints:
  1. raw parse speed: pyte.ByteStream + pyte.Screen / pyte.HistoryScreen, and our
     XtermByteStream + ScrollbackScreen (the model the widget runs), on the same payload;
  2. rendered throughput: bytes in → last byte on screen, SerialConsole in an App run headless
     (App.run_test), as MB/s and as a ratio to raw pyte.Screen;
  3. max UI stall during a paced 200 KB/s flood (gap between 10 ms UI timer ticks; target < 50 ms)
     and the time a key takes to reach the guest mid-flood.
Not collected by pytest (bench_*.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from time import perf_counter

import pyte

from tests.tui.console_apps import ConsoleTestApp, feed_paced, flood_payload, settle, wait_for
from tui.widgets.console_transport import QueueTransport
from tui.widgets.terminal_screen import ScrollbackScreen, XtermByteStream


def last_text(console) -> str:
    """The last non-blank row (100-byte lines wrap onto two rows at 80 columns)."""
    return [row.rstrip() for row in console.screen_lines if row.strip()][-1]


def raw_speed(payload: bytes, make_screen, make_stream=pyte.ByteStream, chunk: int = 65536) -> float:
    screen = make_screen()
    stream = make_stream(screen)
    start = perf_counter()
    for offset in range(0, len(payload), chunk):
        stream.feed(payload[offset : offset + chunk])
    return len(payload) / (perf_counter() - start) / 1e6


async def rendered_speed(payload: bytes, last_line: str, size: tuple[int, int]) -> float:
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.1)
        console = app.terminal
        start = perf_counter()
        for offset in range(0, len(payload), 65536):
            transport.feed(payload[offset : offset + 65536])
        await settle(pilot, console, timeout=300)
        elapsed = perf_counter() - start
        assert console.bytes_rendered == len(payload)
        assert last_text(console) == last_line, "\n".join(console.screen_lines[-5:])
        return len(payload) / elapsed / 1e6


async def flood_stall(rate: float, seconds: float, size: tuple[int, int]) -> dict[str, float]:
    payload, last_line = flood_payload(int(rate * seconds))
    transport = QueueTransport()
    app = ConsoleTestApp(transport)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        console = app.terminal
        gaps: list[float] = []
        ticks = [perf_counter()]

        def tick() -> None:
            now = perf_counter()
            gaps.append(now - ticks[-1])
            ticks.append(now)

        app.set_interval(0.01, tick)
        feeder = asyncio.create_task(feed_paced(transport, payload, rate))
        await asyncio.sleep(seconds / 2)
        from textual import events

        pressed = perf_counter()
        app.post_message(events.Key("k", "k"))
        await wait_for(pilot, lambda: transport.sent == b"k", timeout=5)
        key_latency = perf_counter() - pressed
        await feeder
        await settle(pilot, console, timeout=120)
        lag = perf_counter() - ticks[0] - seconds
        await asyncio.sleep(1.5)  # the quiet after a flood counts too (deferred work lands there)
        assert last_text(console) == last_line
        return {
            "max_gap_ms": max(gaps) * 1000,
            "p99_gap_ms": sorted(gaps)[int(len(gaps) * 0.99)] * 1000,
            "median_gap_ms": statistics.median(gaps) * 1000,
            "key_ms": key_latency * 1000,
            "drain_lag_s": lag,
        }


def run(argv: list[str] | None = None) -> dict:
    """Also what `python -m tests.bench` calls (with the defaults)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=4.0, help="payload size for throughput")
    parser.add_argument("--rate", type=float, default=200_000, help="flood rate, bytes/s")
    parser.add_argument("--seconds", type=float, default=8.0, help="flood duration")
    args = parser.parse_args(argv or [])
    out: dict = {}

    payload, last_line = flood_payload(int(args.mb * 1024 * 1024))
    mb = len(payload) / 1e6
    print(f"payload: {mb:.1f} MB of coloured 100-byte log lines")
    screen_speed = raw_speed(payload, lambda: pyte.Screen(80, 24))
    history_speed = raw_speed(payload, lambda: pyte.HistoryScreen(80, 24, history=10000))
    ours_speed = raw_speed(payload, lambda: ScrollbackScreen(80, 24), XtermByteStream)
    print(f"raw pyte.ByteStream + pyte.Screen        : {screen_speed:6.2f} MB/s")
    print(f"raw pyte.ByteStream + pyte.HistoryScreen : {history_speed:6.2f} MB/s")
    print(f"raw XtermByteStream + ScrollbackScreen   : {ours_speed:6.2f} MB/s")
    out["raw_mb_s"] = {"pyte_screen": screen_speed, "pyte_history": history_speed,
                       "ours": ours_speed}
    for size in ((80, 24), (160, 48)):
        rendered = asyncio.run(rendered_speed(payload, last_line, size))
        out[f"rendered_mb_s_{size[0]}x{size[1]}"] = rendered
        out[f"ratio_rendered_vs_pyte_{size[0]}x{size[1]}"] = rendered / screen_speed
        print(
            f"rendered by SerialConsole {size[0]}x{size[1]:<3}        : {rendered:6.2f} MB/s"
            f"  = {rendered / screen_speed:4.2f}x raw pyte.Screen,"
            f" {rendered / ours_speed:4.2f}x our raw model"
        )
    for size in ((80, 24), (160, 48)):
        stats = asyncio.run(flood_stall(args.rate, args.seconds, size))
        out[f"flood_{size[0]}x{size[1]}"] = stats
        verdict = "OK" if stats["max_gap_ms"] < 50 else "OVER 50 ms"
        print(
            f"flood {args.rate / 1000:.0f} KB/s for {args.seconds:.0f}s at {size[0]}x{size[1]}: "
            f"max UI stall {stats['max_gap_ms']:.1f} ms ({verdict}), "
            f"p99 {stats['p99_gap_ms']:.1f} ms, median tick {stats['median_gap_ms']:.1f} ms, "
            f"key→guest {stats['key_ms']:.1f} ms, drained {stats['drain_lag_s']:.2f}s after the flood"
        )
    return out


if __name__ == "__main__":
    import sys

    run(sys.argv[1:])
