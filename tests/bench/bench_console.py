"""Serial console throughput and UI stall, side by side with raw pyte.

    python -m tests.bench.bench_console [--mb 4] [--rate 200000] [--seconds 8]

Prints:
  1. raw parse speed: pyte.ByteStream + pyte.Screen / pyte.HistoryScreen, and our
     XtermByteStream + ScrollbackScreen (the model the widget runs), on the same payload;
  2. rendered throughput: bytes in → last byte on screen, SerialConsole in an App run headless
     (App.run_test), as MB/s and as a ratio to raw pyte.Screen;
  3. max UI stall during a paced 200 KB/s flood (gap between 10 ms UI timer ticks; target < 50 ms)
     and the time a key takes to reach the guest mid-flood;
  4. keystroke → echo, side by side: the TUI's console, a raw aiohttp websocket client and a
     bare Textual app (BareEchoApp: one widget, no monostack code, that sends a key over the
     same kind of websocket and draws the reply on a line — the framework's own floor), each
     typing into its own instance through the same daemon (in-process, libvirt
     test:///default) and the same console proxy and websocket path, taking turns keystroke by
     keystroke (bounded: --keystrokes, --gap seconds apart). The guest's serial port is an
     echo (a tty in echo mode without its own latency), so TUI / raw is what the TUI adds on
     top of the wire and TUI / bare what it adds on top of Textual. TUI and bare: the Key event
     posted → a frame painted with the echo in it (rendered to the bytes a terminal would
     get); raw: send_bytes → the echo frame received.
  5. the same into a real TCG guest's shell (qemu:///system, the test guest image; skip with
     --no-tcg-guest): one console has one writer, so the raw client types its block, leaves,
     then the TUI types its block; the domain is deleted whatever happens.
Not collected by pytest (bench_*.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path
from time import perf_counter
from urllib.parse import urlsplit

import pyte
from rich.segment import Segment
from textual.app import App
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from tests.tui.console_apps import ConsoleTestApp, feed_paced, flood_payload, settle, wait_for
from tui.widgets.console_transport import QueueTransport
from tui.widgets.terminal_screen import ScrollbackScreen, XtermByteStream

NOVA = {"OpenStack-API-Version": "compute 2.60"}
KEYS = "abcdefghijklmnopqrstuvwxyz"


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


# -- keystroke → echo, the TUI against a raw websocket client, through the daemon ----------------

class EchoGuest:
    """A guest serial port that echoes every byte at once, as a tty in echo mode does (minus
    the guest's own latency, so what is left is ours). One per instance; lives in the daemon's
    loop, behind the daemon's real console proxy and websocket."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def read(self) -> bytes:
        return await self.queue.get()

    async def write(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    async def close(self) -> None:
        self.queue.put_nowait(b"")


def _boot_echo_servers(daemon, names: tuple[str, ...]) -> list[str]:
    import subprocess
    import tempfile

    disk = Path(tempfile.mkdtemp()) / "echo.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)

    async def boot(admin) -> list[str]:
        image = await admin.post("/image/v2/images", {
            "name": "echo", "disk_format": "qcow2", "container_format": "bare",
            "visibility": "public"})
        await admin.upload("PUT", f"/image/v2/images/{image['id']}/file", disk.read_bytes())
        ids = []
        for name in names:
            body = {"server": {"name": name, "imageRef": image["id"], "flavorRef": "1",
                               "networks": "none"}}
            ids.append((await admin.post("/compute/v2.1/servers", body, headers=NOVA))
                       ["server"]["id"])
        for _ in range(600):
            states = [(await admin.get(f"/compute/v2.1/servers/{i}"))["server"]["status"]
                      for i in ids]
            if all(s == "ACTIVE" for s in states):
                return ids
            assert "ERROR" not in states, states
            await asyncio.sleep(0.05)
        raise TimeoutError(f"servers not ACTIVE: {states}")
    return daemon.admin_do(boot)


class BareEchoLine(Widget, can_focus=True):
    """The least a Textual app must do for a console: a key goes out on the websocket, the
    reply is appended to one line and that line refreshed. No monostack code."""

    DEFAULT_CSS = "BareEchoLine { height: 1fr; }"

    def __init__(self, ws) -> None:
        super().__init__()
        self.ws = ws
        self.text = ""
        self.bytes_received = 0
        self.received_at = 0.0

    def on_mount(self) -> None:
        self.focus()
        self.run_worker(self._read())

    async def on_key(self, event) -> None:
        if event.character:
            await self.ws.send_bytes(event.character.encode())

    async def _read(self) -> None:
        async for msg in self.ws:
            self.received_at = perf_counter()
            self.text = (self.text + msg.data.decode(errors="replace"))[-self.size.width:]
            self.bytes_received += len(msg.data)
            self.refresh(Region(0, 0, self.size.width, 1))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y:
            return Strip.blank(width, self.rich_style)
        return Strip([Segment(self.text, self.rich_style)]).crop_extend(0, width, self.rich_style)


class BareEchoApp(App[None]):
    def __init__(self, ws) -> None:
        super().__init__()
        self.ws = ws

    def compose(self):
        yield BareEchoLine(self.ws)


def _time_paints(app, rendered) -> tuple[asyncio.Event, list[int]]:
    """Set the event once a frame with `rendered() >= want[0]` reaches the terminal: the
    app's display hook, made to render the bytes a terminal driver would be sent."""
    painted = asyncio.Event()
    want = [0]
    display = app._display

    def paint(screen, renderable) -> None:
        if renderable is not None:
            renderable.render_segments(app.console)
        display(screen, renderable)
        if rendered() >= want[0]:
            painted.set()
    app._display = paint  # type: ignore[method-assign]
    return painted, want


async def _bare_key(app, line, painted: asyncio.Event, want: list[int],
                    char: str) -> tuple[float, float]:
    """One keystroke in the bare Textual app, timed as the TUI's are: (its start, ms from the
    Key event posted to the echo painted)."""
    from textual import events

    want[0] = line.bytes_received + 1
    painted.clear()
    t0 = perf_counter()
    with app._context():
        app.post_message(events.Key(char, char))
    await asyncio.wait_for(painted.wait(), 5)
    return t0, (perf_counter() - t0) * 1000


async def _ws(http, daemon, server_id: str):
    url = daemon.admin_do(lambda admin: admin.post(
        f"/compute/v2.1/servers/{server_id}/remote-consoles",
        {"remote_console": {"protocol": "serial", "type": "serial"}}, headers=NOVA))
    path = urlsplit(url["remote_console"]["url"])
    return await http.ws_connect(f"http://localhost{path.path}?{path.query}")


async def key_echo(daemon, server_ids: list[str], keystrokes: int, gap: float) -> dict:
    """Keystrokes in turn: one in the TUI's console, one from a raw websocket client, one in
    the bare Textual app, each to its own echo guest over the same daemon path; `gap` seconds
    between keystrokes (typing, not a flood). TUI and bare: Key event posted → the echo
    painted in a frame (rendered to terminal bytes); raw: send_bytes → the echo received.
    The moment the echo came off each app's websocket is stamped too (no polling: a loop
    spinning on it would slow the loop it measures)."""
    import tempfile

    import aiohttp
    from textual import events

    from tests.tui.harness import log_in
    from tui.screens.console import ConsoleScreen

    tui_id, raw_id, bare_id = server_ids
    app = daemon.make_app(Path(tempfile.mkdtemp()), live=False, refresh_seconds=3600)
    tui, raw, bare, received, bare_received = [], [], [], [], []
    connector = aiohttp.UnixConnector(path=str(daemon.socket))
    async with aiohttp.ClientSession(connector=connector) as http, \
            app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot)
        app.open_console(tui_id, "tui-echo")
        await wait_for(pilot, lambda: isinstance(app.screen, ConsoleScreen)
                       and app.screen.active_console is not None
                       and str(app.screen.active_console.link_state) == "connected", timeout=15)
        console = app.screen.active_console
        await pilot.pause(0.2)
        painted, want = _time_paints(app, lambda: console.bytes_rendered)
        link = console.transport._inner  # the TUI's own websocket to the daemon
        link_read, stamp = link.read, [0.0]

        async def timed_read() -> bytes:
            data = await link_read()
            stamp[0] = perf_counter()
            return data
        link.read = timed_read
        raw_ws = await _ws(http, daemon, raw_id)
        bare_app = BareEchoApp(await _ws(http, daemon, bare_id))
        async with bare_app.run_test(size=(100, 30)) as bare_pilot:
            line = bare_app.query_one(BareEchoLine)
            await wait_for(bare_pilot, lambda: bare_app.focused is line)
            await bare_pilot.pause(0.2)
            bare_painted, bare_want = _time_paints(bare_app, lambda: line.bytes_received)
            for i in range(keystrokes):
                char = KEYS[i % len(KEYS)]
                want[0] = console.bytes_received + 1
                painted.clear()
                t0 = perf_counter()
                with app._context():  # as the app's driver posts it
                    app.post_message(events.Key(char, char))
                await asyncio.wait_for(painted.wait(), 5)
                tui.append((perf_counter() - t0) * 1000)
                received.append((stamp[0] - t0) * 1000)
                await asyncio.sleep(gap)

                t0 = perf_counter()
                await raw_ws.send_bytes(char.encode())
                echo = b""
                while char.encode() not in echo:
                    msg = await asyncio.wait_for(raw_ws.receive(), 5)
                    assert msg.type == aiohttp.WSMsgType.BINARY, msg
                    echo += msg.data
                raw.append((perf_counter() - t0) * 1000)
                await asyncio.sleep(gap)

                t0, took = await _bare_key(bare_app, line, bare_painted, bare_want, char)
                bare.append(took)
                bare_received.append((line.received_at - t0) * 1000)
                await asyncio.sleep(gap)
            typed = "".join(KEYS[i % len(KEYS)] for i in range(keystrokes))
            assert line.text.endswith(typed[-20:]), line.text[-40:]
        await raw_ws.close()
        shown = "".join(console.screen_lines).replace(" ", "")
        assert typed[-20:] in shown, shown[-60:]
    q = lambda v, p: sorted(v)[min(len(v) - 1, int(len(v) * p))]  # noqa: E731
    return {"keystrokes": keystrokes, "gap_s": gap,
            "key_echo_ms": statistics.median(tui), "key_echo_p90_ms": q(tui, 0.9),
            "key_received_ms": statistics.median(received),
            "raw_key_echo_ms": statistics.median(raw), "raw_key_echo_p90_ms": q(raw, 0.9),
            "bare_textual_key_echo_ms": statistics.median(bare),
            "bare_textual_key_echo_p90_ms": q(bare, 0.9),
            "bare_textual_key_received_ms": statistics.median(bare_received)}


def key_echo_side_by_side(keystrokes: int = 60, gap: float = 0.05) -> dict:
    import tempfile

    from tests.tui.harness import ThreadDaemon

    daemon = ThreadDaemon(Path(tempfile.mkdtemp()), ["images", "compute"]).start()
    try:
        ids = _boot_echo_servers(daemon, ("tui-echo", "raw-echo", "bare-echo"))
        proxy = daemon.daemon.appliance.ctx.components.compute.console_proxy

        async def echo_guest(instance_id: str) -> EchoGuest:
            return EchoGuest()
        proxy._open = echo_guest  # the guest's serial port; everything above it is real
        return asyncio.run(key_echo(daemon, ids, keystrokes, gap))
    finally:
        daemon.stop()


async def _raw_block(daemon, server_id: str, keystrokes: int, gap: float) -> list[float]:
    """A raw aiohttp websocket client on the guest's console: key sent → its echo received."""
    import aiohttp

    url = daemon.admin_do(lambda admin: admin.post(
        f"/compute/v2.1/servers/{server_id}/remote-consoles",
        {"remote_console": {"protocol": "serial", "type": "serial"}}, headers=NOVA))
    path = urlsplit(url["remote_console"]["url"])
    raw = []
    connector = aiohttp.UnixConnector(path=str(daemon.socket))
    async with aiohttp.ClientSession(connector=connector) as http, \
            http.ws_connect(f"http://localhost{path.path}?{path.query}") as ws:
        await ws.send_bytes(b"\x15\r")
        await asyncio.sleep(1.0)
        while True:  # drain the prompt
            try:
                await asyncio.wait_for(ws.receive(), 0.3)
            except TimeoutError:
                break
        for i in range(keystrokes):
            char = KEYS[i % len(KEYS)].encode()
            t0 = perf_counter()
            await ws.send_bytes(char)
            echo = b""
            while char not in echo:
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                echo += msg.data
            raw.append((perf_counter() - t0) * 1000)
            await asyncio.sleep(gap)
        await ws.send_bytes(b"\x15")
    await asyncio.sleep(1.0)  # the hub lets the next client write once this one has left
    return raw


async def key_echo_real_guest(daemon, server_id: str, keystrokes: int, gap: float) -> dict:
    """The same two clients on one real TCG guest's shell. One console has one writer, so they
    take turns: a raw block, the TUI's block, another raw block (the raw median is over both,
    bracketing the TUI's in time); Ctrl+U clears the line after each. Inside the TUI's block
    its own websocket is timed too (key written → echo read), so each TUI keystroke also has
    its wire time beside it."""
    import tempfile

    from textual import events

    from tests.tui.harness import log_in
    from tui.screens.console import ConsoleScreen

    raw = await _raw_block(daemon, server_id, keystrokes // 2, gap)
    tui, wire = [], []
    app = daemon.make_app(Path(tempfile.mkdtemp()), live=False, refresh_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot)
        app.open_console(server_id, "guest")
        await wait_for(pilot, lambda: isinstance(app.screen, ConsoleScreen)
                       and app.screen.active_console is not None
                       and str(app.screen.active_console.link_state) == "connected", timeout=15)
        console = app.screen.active_console
        await pilot.pause(1.0)
        painted, want = _time_paints(app, lambda: console.bytes_rendered)
        link = console.transport._inner  # the TUI's own websocket to the daemon
        stamps: dict[str, float] = {}
        link_write, link_read = link.write, link.read

        async def timed_write(data: bytes) -> None:
            stamps.setdefault("write", perf_counter())
            await link_write(data)

        async def timed_read() -> bytes:
            data = await link_read()
            stamps.setdefault("read", perf_counter())
            return data
        link.write, link.read = timed_write, timed_read
        for i in range(keystrokes + 1):  # the first only arms the timed read
            char = KEYS[i % len(KEYS)]
            want[0] = console.bytes_received + 1
            painted.clear()
            stamps.clear()
            t0 = perf_counter()
            app.post_message(events.Key(char, char))
            await asyncio.wait_for(painted.wait(), 5)
            if i:
                tui.append((perf_counter() - t0) * 1000)
                wire.append((stamps["read"] - stamps["write"]) * 1000)
            await asyncio.sleep(gap)
        shown = "".join(console.screen_lines).replace(" ", "")
        typed = "".join(KEYS[i % len(KEYS)] for i in range(keystrokes + 1))
        assert typed[-20:] in shown, shown[-80:]
        app.post_message(events.Key("ctrl+u", None))
        await pilot.pause(0.2)
    await asyncio.sleep(1.0)
    bare = await _bare_block(daemon, server_id, keystrokes, gap)
    raw += await _raw_block(daemon, server_id, keystrokes - keystrokes // 2, gap)
    q = lambda v, p: sorted(v)[min(len(v) - 1, int(len(v) * p))]  # noqa: E731
    return {"keystrokes": keystrokes, "gap_s": gap,
            "key_echo_ms": statistics.median(tui), "key_echo_p90_ms": q(tui, 0.9),
            "key_echo_own_wire_ms": statistics.median(wire),
            "raw_key_echo_ms": statistics.median(raw), "raw_key_echo_p90_ms": q(raw, 0.9),
            "bare_textual_key_echo_ms": statistics.median(bare),
            "bare_textual_key_echo_p90_ms": q(bare, 0.9)}


async def _bare_block(daemon, server_id: str, keystrokes: int, gap: float) -> list[float]:
    """The bare Textual app's turn on the real guest's shell (between the TUI's block and the
    second raw block), timed as the TUI is: Key event posted → the echo painted."""
    import aiohttp

    bare: list[float] = []
    connector = aiohttp.UnixConnector(path=str(daemon.socket))
    async with aiohttp.ClientSession(connector=connector) as http:
        ws = await _ws(http, daemon, server_id)
        app = BareEchoApp(ws)
        async with app.run_test(size=(100, 30)) as pilot:
            line = app.query_one(BareEchoLine)
            await wait_for(pilot, lambda: app.focused is line)
            await ws.send_bytes(b"\x15\r")
            await pilot.pause(1.0)  # the prompt's bytes in before the first timed key
            painted, want = _time_paints(app, lambda: line.bytes_received)
            for i in range(keystrokes):
                bare.append((await _bare_key(app, line, painted, want, KEYS[i % len(KEYS)]))[1])
                await asyncio.sleep(gap)
            assert KEYS[(keystrokes - 1) % len(KEYS)] in line.text, line.text[-80:]
            await ws.send_bytes(b"\x15")
        await ws.close()
    await asyncio.sleep(1.0)  # the hub lets the next client write once this one has left
    return bare


def key_echo_tcg_guest(keystrokes: int = 60, gap: float = 0.05,
                       boot_timeout: float = 240.0) -> dict:
    """Boot the test guest image under TCG (qemu:///system) through the daemon, wait for its
    shell, measure, and delete the domain whatever happens."""
    import shutil
    import tempfile
    import time
    import uuid

    from tests.guest_image import PROMPT, READY_MARKER, TEST_ROOT, ensure_guest_image, \
        make_traversable_dir
    from tests.tui.harness import ThreadDaemon

    image = ensure_guest_image().qcow2
    qemu_dir = make_traversable_dir(TEST_ROOT / f"bench-echo-{uuid.uuid4().hex[:8]}")
    daemon = ThreadDaemon(Path(tempfile.mkdtemp()), ["images", "compute"], extra={
        "compute": {"libvirt_uri": "qemu:///system", "instances_dir": str(qemu_dir / "inst"),
                    "reserved_host_memory_mb": 0},
        "storage": {"images_dir": str(qemu_dir / "images")}}).start()
    made: list[str] = []
    try:
        async def boot(admin) -> None:
            body = await admin.post("/image/v2/images", {
                "name": "guest", "disk_format": "qcow2", "container_format": "bare"})
            await admin.upload("PUT", f"/image/v2/images/{body['id']}/file", image.read_bytes())
            flavor = (await admin.post("/compute/v2.1/flavors", {"flavor": {
                "name": "bench-echo", "ram": 256, "vcpus": 1, "disk": 1}}, headers=NOVA))
            server = (await admin.post("/compute/v2.1/servers", {"server": {
                "name": f"bench-echo-{uuid.uuid4().hex[:6]}", "imageRef": body["id"],
                "flavorRef": flavor["flavor"]["id"], "networks": "none"}}, headers=NOVA))
            made.append(server["server"]["id"])
        daemon.admin_do(boot)
        deadline = time.monotonic() + boot_timeout

        async def output(admin) -> str:
            body = await admin.post(f"/compute/v2.1/servers/{made[0]}/action",
                                    {"os-getConsoleOutput": {}}, headers=NOVA)
            return body.get("output", "")
        while True:
            text = daemon.admin_do(output)
            if READY_MARKER in text and PROMPT in text:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest did not boot in {boot_timeout:.0f} s")
            time.sleep(1)
        return asyncio.run(key_echo_real_guest(daemon, made[0], keystrokes, gap))
    finally:
        async def clean(admin) -> None:
            manager = daemon.daemon.appliance.ctx.components.compute.manager
            for sid in made:
                try:
                    await manager.delete(sid)
                except Exception:
                    pass
            await manager.wait_idle(60)
        try:
            daemon.admin_do(clean)
        finally:
            daemon.stop()
            shutil.rmtree(qemu_dir, ignore_errors=True)


def run(argv: list[str] | None = None) -> dict:
    """Also what `python -m tests.bench` calls (with the defaults)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=4.0, help="payload size for throughput")
    parser.add_argument("--rate", type=float, default=200_000, help="flood rate, bytes/s")
    parser.add_argument("--seconds", type=float, default=8.0, help="flood duration")
    parser.add_argument("--keystrokes", type=int, default=60, help="keystrokes each side")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between keystrokes")
    parser.add_argument("--echo-only", action="store_true", help="only keystroke → echo")
    parser.add_argument("--no-tcg-guest", dest="tcg_guest", action="store_false",
                        help="skip keystroke → echo into a real TCG guest's shell (boots one)")
    args = parser.parse_args(argv or [])
    out: dict = {}
    echo = key_echo_side_by_side(min(args.keystrokes, 500), args.gap)
    out.update(echo)
    print(f"keystroke → echo over {echo['keystrokes']} keys each, {args.gap * 1000:.0f} ms apart: "
          f"TUI {echo['key_echo_ms']:.2f} ms (p90 {echo['key_echo_p90_ms']:.2f}; echo off its "
          f"websocket at {echo['key_received_ms']:.2f}), raw websocket "
          f"{echo['raw_key_echo_ms']:.2f} ms (p90 {echo['raw_key_echo_p90_ms']:.2f}): "
          f"{echo['key_echo_ms'] / echo['raw_key_echo_ms']:.2f}x; bare Textual app "
          f"{echo['bare_textual_key_echo_ms']:.2f} ms (p90 {echo['bare_textual_key_echo_p90_ms']:.2f};"
          f" echo off its websocket at {echo['bare_textual_key_received_ms']:.2f}): TUI / bare "
          f"{echo['key_echo_ms'] / echo['bare_textual_key_echo_ms']:.2f}x, bare / raw "
          f"{echo['bare_textual_key_echo_ms'] / echo['raw_key_echo_ms']:.2f}x")
    real = None
    if args.tcg_guest:
        try:
            real = key_echo_tcg_guest(min(args.keystrokes, 500), args.gap)
        except Exception as exc:  # no qemu:///system, no guest image: the echo side still counts
            out["tcg_guest"] = {"error": repr(exc)}
            print(f"keystroke → echo into a TCG guest: failed: {exc!r}")
    if real is not None:
        out["tcg_guest"] = real
        print(f"keystroke → echo into a TCG guest's shell, {real['keystrokes']} keys each: TUI "
              f"{real['key_echo_ms']:.2f} ms (p90 {real['key_echo_p90_ms']:.2f}; its own websocket"
              f" round trip {real['key_echo_own_wire_ms']:.2f}), raw websocket "
              f"{real['raw_key_echo_ms']:.2f} ms (p90 {real['raw_key_echo_p90_ms']:.2f}): "
              f"{real['key_echo_ms'] / real['raw_key_echo_ms']:.2f}x; bare Textual app "
              f"{real['bare_textual_key_echo_ms']:.2f} ms: TUI / bare "
              f"{real['key_echo_ms'] / real['bare_textual_key_echo_ms']:.2f}x, bare / raw "
              f"{real['bare_textual_key_echo_ms'] / real['raw_key_echo_ms']:.2f}x")
    if args.echo_only:
        return out

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
