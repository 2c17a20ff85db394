"""A program driven through a real pseudo-terminal of a fixed size, its screen rendered with
pyte: what an operator at an 80x24 terminal sees, read back as text."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import threading
import time

import pyte


class PtySession:
    def __init__(self, argv: list[str], *, columns: int = 80, lines: int = 24) -> None:
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        self.transcript = bytearray()
        self.last_output = time.monotonic()
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.2)
                if not ready:
                    if self.proc.poll() is not None:
                        return
                    continue
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every slave end is closed
                return
            if not data:
                return
            with self._lock:
                self.transcript += data
                self.stream.feed(data)
                self.last_output = time.monotonic()

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.screen.display)

    def send(self, data: str | bytes) -> None:
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def type(self, text: str, *, pause: float = 0.02) -> None:
        """Key by key, as a person types (a burst can arrive as one paste)."""
        for ch in text:
            self.send(ch)
            time.sleep(pause)

    def wait_for(self, *texts: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = self.text()
        while time.monotonic() < deadline:
            screen = self.text()
            if all(t in screen for t in texts):
                return screen
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"never saw {texts!r}; the screen:\n{screen}\n--- last output:\n"
                             f"{bytes(self.transcript[-1500:])!r}")

    def settle(self, quiet: float = 0.3, timeout: float = 15.0) -> None:
        """Wait until the program has drawn what a key made it draw: no output for `quiet`
        seconds. A key typed while a focus change is still being drawn can land in the old
        widget."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_output < quiet:
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never settled:\n{self.text()}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        try:
            os.close(self.master)
        except OSError:
            pass
