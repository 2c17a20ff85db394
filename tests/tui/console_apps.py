"""Small apps and deterministic guest output for the console tests, snapshots and benchmark."""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from tui.screens.console import ConsoleScreen, ConsoleTarget
from tui.widgets.console_transport import QueueTransport
from tui.widgets.serial_console import SerialConsole


class ConsoleTestApp(App[None]):
    """One SerialConsole filling the screen; records every console message it sees."""

    def __init__(self, transport: Any, **console_kwargs: Any) -> None:
        super().__init__()
        self.transport = transport
        self.console_kwargs = console_kwargs
        self.messages: list[SerialConsole._ConsoleMessage] = []

    def compose(self) -> ComposeResult:
        yield SerialConsole(self.transport, **self.console_kwargs)

    def on_mount(self) -> None:
        self.query_one(SerialConsole).focus()

    def on_serial_console_detach(self, message: SerialConsole.Detach) -> None:
        self.messages.append(message)

    def on_serial_console_next_console(self, message: SerialConsole.NextConsole) -> None:
        self.messages.append(message)

    def on_serial_console_previous_console(self, message: SerialConsole.PreviousConsole) -> None:
        self.messages.append(message)

    def on_serial_console_connected(self, message: SerialConsole.Connected) -> None:
        self.messages.append(message)

    def on_serial_console_disconnected(self, message: SerialConsole.Disconnected) -> None:
        self.messages.append(message)

    @property
    def terminal(self) -> SerialConsole:
        return self.query_one(SerialConsole)

    def kinds(self) -> list[str]:
        return [type(message).__name__ for message in self.messages]


class FakeGuests:
    """`open_transport` for ConsoleScreen: one QueueTransport per connect, preloaded output."""

    def __init__(self, greetings: dict[str, bytes] | None = None) -> None:
        self.greetings = greetings or {}
        self.opened: dict[str, list[QueueTransport]] = {}

    def __call__(self, instance_id: str) -> QueueTransport:
        transport = QueueTransport()
        transport.feed(self.greetings.get(instance_id, b""))
        self.opened.setdefault(instance_id, []).append(transport)
        return transport

    def current(self, instance_id: str) -> QueueTransport:
        return self.opened[instance_id][-1]


class ConsoleScreenApp(App[None]):
    """A stand-in for the monostack app: a main screen with the console screen pushed on top."""

    TITLE = "monostack"

    def __init__(self, guests: FakeGuests, targets: list[ConsoleTarget]) -> None:
        super().__init__()
        self.guests = guests
        self.targets = targets

    def compose(self) -> ComposeResult:
        yield Static("monostack main screen", id="main")

    def on_mount(self) -> None:
        self.install_screen(ConsoleScreen(self.guests, self.targets), "consoles")
        self.push_screen("consoles")


async def settle(pilot: Pilot[Any], *consoles: SerialConsole, timeout: float = 10.0) -> None:
    """Wait until every queued guest byte is parsed and drawn."""
    deadline = monotonic() + timeout
    while monotonic() < deadline:
        await pilot.pause(0.01)
        if all(_drained(console) for console in consoles):
            await pilot.pause()
            return
    raise AssertionError("console did not settle: " + ", ".join(
        f"received={c.bytes_received} rendered={c.bytes_rendered}" for c in consoles))


def _drained(console: SerialConsole) -> bool:
    queue = getattr(console.transport, "incoming", None)
    inner = getattr(console.transport, "_inner", None)
    if inner is not None:
        queue = getattr(inner, "incoming", queue)
    return console.idle and (queue is None or queue.empty())


async def wait_for(pilot: Pilot[Any], predicate: Any, timeout: float = 5.0) -> None:
    deadline = monotonic() + timeout
    while not predicate():
        if monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await pilot.pause(0.01)


# -- deterministic guest output -----------------------------------------------------------
def coloured_session() -> bytes:
    """A login and a few commands, with the colours a Linux guest actually prints."""
    prompt = b"\x1b[1;32mroot@web-1\x1b[0m:\x1b[1;34m~\x1b[0m# "
    out = [
        b"\r\nTinyGuest 1.0 web-1 ttyS0\r\n\r\n",
        b"web-1 login: root\r\n",
        b"Password: \r\n",
        b"[  OK  ] Started \x1b[1mOpenSSH server daemon\x1b[0m.\r\n",
        b"[\x1b[0;31mFAILED\x1b[0m] Failed to start \x1b[1mcloud-init final stage\x1b[0m.\r\n",
        prompt + b"ls --color /\r\n",
        b"\x1b[01;34mbin\x1b[0m  \x1b[01;34metc\x1b[0m  \x1b[01;36mlib\x1b[0m  "
        b"\x1b[30;42mtmp\x1b[0m  \x1b[01;32mrun.sh\x1b[0m  \x1b[01;31mbackup.tgz\x1b[0m\r\n",
        prompt + b"ip -4 -br addr\r\n",
        b"lo               \x1b[32mUNKNOWN        \x1b[0m\x1b[35m127.0.0.1\x1b[0m/8\r\n",
        b"eth0             \x1b[32mUP             \x1b[0m\x1b[35m10.0.0.11\x1b[0m/24\r\n",
        prompt + b"printf '\\e[38;5;208m256\\e[0m \\e[38;2;255;105;180mtrue\\e[0m \\e[7mrev\\e[0m "
        b"\\e[4munder\\e[0m\\n'\r\n",
        b"\x1b[38;5;208m256\x1b[0m \x1b[38;2;255;105;180mtrue\x1b[0m \x1b[7mrev\x1b[0m "
        b"\x1b[4munder\x1b[0m\r\n",
        prompt,
    ]
    return b"".join(out)


def full_screen_program(columns: int, lines: int) -> bytes:
    """A top/mc-like full-screen layout drawn with cursor addressing for a columns×lines tty."""
    esc = "\x1b"
    parts = [f"{esc}[?1049h{esc}[?25l{esc}[H{esc}[2J"]

    def at(row: int, col: int) -> str:
        return f"{esc}[{row};{col}H"

    title = " top - 12:00:00 up 3 days,  2 users,  load average: 0.08, 0.03, 0.01"
    parts.append(at(1, 1) + f"{esc}[7m" + title[:columns].ljust(columns) + f"{esc}[0m")
    bar = max(10, columns // 2 - 12)
    for row, (label, used) in enumerate((("CPU", 0.62), ("Mem", 0.41), ("Swp", 0.05)), start=2):
        green = int(bar * used * 0.7)
        red = int(bar * used) - green
        parts.append(
            at(row, 2) + f"{esc}[1;36m{label}{esc}[0m [" + f"{esc}[38;5;46m" + "|" * green
            + f"{esc}[38;5;196m" + "|" * red + f"{esc}[0m" + " " * (bar - green - red)
            + f"] {esc}[1m{int(used * 100):3d}%{esc}[0m"
        )
    header = "  PID USER      PR  NI    VIRT    RES  S  %CPU  %MEM     TIME+ COMMAND"
    parts.append(at(6, 1) + f"{esc}[30;42m" + header[:columns].ljust(columns) + f"{esc}[0m")
    procs = ["systemd", "kthreadd", "sshd", "nginx", "postgres", "cron", "dhclient", "agetty"]
    for i in range(max(0, lines - 8)):
        name = procs[i % len(procs)]
        line = f"{100 + i * 7:5d} root      20   0  {1024 * (i + 3):6d} {512 * (i + 1):6d}  S  {i % 5:4.1f}  {i % 3:4.1f}   0:0{i % 10}.00 {name}"
        style = f"{esc}[48;2;40;60;120m{esc}[1m" if i == 2 else ""
        parts.append(at(7 + i, 1) + style + line[:columns].ljust(columns) + f"{esc}[0m")
    # A dialog box in DEC line drawing over the table.
    width, height = min(40, columns - 4), 5
    top, left = max(3, lines // 2 - 2), max(1, (columns - width) // 2)
    parts.append(at(top, left) + f"{esc}[44;97m{esc}(0l" + "q" * (width - 2) + f"k{esc}(B")
    for r in range(1, height - 1):
        parts.append(at(top + r, left) + f"{esc}(0x{esc}(B" + " " * (width - 2) + f"{esc}(0x{esc}(B")
    parts.append(at(top + height - 1, left) + f"{esc}(0m" + "q" * (width - 2) + f"j{esc}(B")
    parts.append(at(top + 2, left + 2) + f"{esc}[1;93mKill PID 121 (nginx)?{esc}[22;97m  [Y/n]")
    parts.append(f"{esc}[0m")
    keys = ["Help", "Setup", "Search", "Filter", "Tree", "SortBy", "Nice-", "Nice+", "Kill", "Quit"]
    footer = ""
    for n, label in enumerate(keys, start=1):
        footer += f"{esc}[0mF{n}{esc}[30;46m{label:<6}"
    footer_cells = "".join(f"F{n}{label:<6}" for n, label in enumerate(keys, start=1))
    if len(footer_cells) > columns:  # do not write the last cell: that would scroll the screen
        footer = footer[: len(footer) - (len(footer_cells) - columns) - 1]
    parts.append(at(lines, 1) + footer + f"{esc}[0m")
    return "".join(parts).encode()


def flood_payload(total: int, line_bytes: int = 100) -> tuple[bytes, str]:
    """Numbered coloured log lines adding up to ~`total` bytes, and the last line's text."""
    chunks, size, i = [], 0, 0
    last = ""
    while size < total:
        text = f"[{i:7d}] kernel: flood {'x' * 20} {i * 7919 % 100000:05d} done"
        line = f"\x1b[3{i % 7 + 1}m{text[:9]}\x1b[0m{text[9:]}".ljust(line_bytes - 2) + "\r\n"
        chunks.append(line)
        size += len(line)
        last = text
        i += 1
    return "".join(chunks).encode(), last


async def feed_paced(transport: QueueTransport, data: bytes, rate: float, chunk: int = 4096) -> None:
    """Feed `data` at `rate` bytes/s in `chunk`-byte writes (a guest printing steadily)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for offset in range(0, len(data), chunk):
        transport.feed(data[offset : offset + chunk])
        due = start + (offset + chunk) / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
