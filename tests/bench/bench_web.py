"""The web console side by side with the terminal TUI (issue 17's targets).

    python -m tests.bench.bench_web [--keys 20] [--tabs 3]

Against a real daemon (identity only: the login screen is the page measured) and Debian's
headless chromium over TLS:
  1. first paint: navigation start → the login box on the browser's terminal (fresh tab,
     the server's spare session ready), and the terminal TUI's own: process start in a pty →
     the login box on its screen. Target: browser ≤ 1.5 s.
  2. keystroke → echo: one character typed into the login's User field until the field
     shows it, in the browser (measured inside the page: xterm input → parsed output) and in
     the terminal (pty write → pyte screen). Target: browser ≤ 1.2 × terminal (median).
  3. memory: PSS and RSS of each browser session's TUI process with `--tabs` tabs open, and
     of the spare. Target ≤ 60 MB a session.
Not collected by pytest (bench_*.py).
"""
from __future__ import annotations

import argparse
import fcntl
import ipaddress
import os
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pyte

from tests.tui import browser
from tests.tui.harness import ThreadDaemon

SIZE = (100, 30)

#: Types `ch` into the terminal (as a user would: xterm's input → onData → websocket) and
#: resolves with the milliseconds until the parsed output shows `want` on a row.
ECHO_JS = """
const [ch, want, done] = arguments;
const t = window.monostackTerminals[0];
const shows = () => {
  const b = t.buffer.active;
  for (let i = 0; i < t.rows; i++) {
    const l = b.getLine(b.viewportY + i);
    if (l && l.translateToString(true).includes(want)) return true;
  }
  return false;
};
const t0 = performance.now();
const sub = t.onWriteParsed(() => { if (shows()) { sub.dispose(); done(performance.now() - t0); } });
t.input(ch, true);
"""


def _memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB from /proc/pid/smaps_rollup."""
    pss = rss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
        elif line.startswith("Rss:"):
            rss = int(line.split()[1])
    return pss, rss


def _session_pids() -> list[int]:
    """TUI session processes started by this process's web console (`python -m tui`)."""
    me = os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if b"-m" in cmd and b"tui" in cmd:
            # started through `sh -c` by textual-serve: the shell's parent is us
            if ppid == me or _ppid(ppid) == me:
                out.append(int(d.name))
    return out


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


class TerminalTui:
    """The TUI in a pty, as `monostack tui` runs over SSH; its screen decoded by pyte."""

    def __init__(self, socket: Path) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "XDG_CONFIG_HOME": tempfile.mkdtemp()}
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "tui", "--socket", str(socket)],
                                     stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.screen = pyte.Screen(*SIZE)
        self.stream = pyte.ByteStream(self.screen)

    def wait_for(self, text: str, timeout: float = 60) -> float:
        """Seconds until the screen shows `text`."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if any(text in row for row in self.screen.display):
                return time.perf_counter()
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                self.stream.feed(os.read(self.master, 65536))
        raise TimeoutError(f"terminal TUI never showed {text!r}")

    def echo_ms(self, ch: str, want: str) -> float:
        t0 = time.perf_counter()
        os.write(self.master, ch.encode())
        return (self.wait_for(want) - t0) * 1000

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.master)


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=20, help="keystrokes to time")
    parser.add_argument("--tabs", type=int, default=3, help="browser sessions for memory")
    args = parser.parse_args(argv or [])
    if not browser.available():
        print("chromium/chromium-driver/selenium missing: skipped")
        return {"skipped": "no chromium"}
    from appliance.tls import TlsFiles, ensure_tls
    from tui.web import WebConsole, tls_context
    base = Path(tempfile.mkdtemp(prefix="bench-web-"))
    daemon = ThreadDaemon(base).start()
    ensure_tls(base / "tls", names=(("localhost",), (ipaddress.IPv4Address("127.0.0.1"),)))
    files = TlsFiles(base / "tls")
    web = WebConsole(host="127.0.0.1", port=0, socket_path=daemon.socket,
                     ssl_context=tls_context(files.server_cert, files.server_key),
                     max_sessions=args.tabs + 1)
    daemon.call(web.start())
    out: dict = {}
    letters = "abcdefghijklmnopqrstuvwxyz"[:args.keys]
    tabs: list[browser.Browser] = []
    try:
        # 1. first paint, terminal then browser
        term = TerminalTui(daemon.socket)
        try:
            term_paint = term.wait_for("Log in") - term.started
            term_echo = [term.echo_ms(ch, letters[:i + 1]) for i, ch in enumerate(letters)]
        finally:
            term.close()
        paints = []
        browser_echo: list[float] = []
        for i in range(args.tabs):
            while web._spare is None:  # the spare a new tab takes is ready
                time.sleep(0.05)
            b = browser.Browser(width=1000, height=640, trust_cert=files.server_cert.read_bytes())
            tabs.append(b)
            b.open(f"https://127.0.0.1:{web.port}/")
            b.wait_for(lambda t: "Log in" in t and "Password" in t)
            paints.append(b.first_paint_ms() / 1000)
            if i == 0:
                b.focus_terminal()
                browser_echo = [b.driver.execute_async_script(ECHO_JS, ch, letters[:j + 1])
                                for j, ch in enumerate(letters)]
        # 3. memory with every tab open
        time.sleep(1)
        sessions = _session_pids()
        mem = {pid: _memory_kb(pid) for pid in sessions}
    finally:
        for b in tabs:
            b.close()
        daemon.call(web.stop())
        daemon.stop()

    out["first_paint_s"] = {"browser_median": statistics.median(paints), "browser_all": paints,
                            "terminal": term_paint,
                            "ratio_browser_vs_terminal": statistics.median(paints) / term_paint}
    te, be = statistics.median(term_echo), statistics.median(browser_echo)
    out["echo_ms"] = {"terminal_median": te, "browser_median": be, "ratio": be / te,
                      "terminal_p90": sorted(term_echo)[int(0.9 * len(term_echo))],
                      "browser_p90": sorted(browser_echo)[int(0.9 * len(browser_echo))]}
    pss = [p / 1024 for p, _ in mem.values()]
    rss = [r / 1024 for _, r in mem.values()]
    out["memory_mb"] = {"processes": len(mem), "pss_each": pss, "rss_each": rss,
                        "pss_max": max(pss, default=0), "rss_max": max(rss, default=0)}
    print(f"first paint  : browser {statistics.median(paints):.2f} s (median of {len(paints)}; "
          f"target ≤ 1.5 s) · terminal TUI {term_paint:.2f} s · ratio "
          f"{out['first_paint_s']['ratio_browser_vs_terminal']:.2f}")
    print(f"key → echo   : browser {be:.1f} ms · terminal {te:.1f} ms (medians of "
          f"{len(letters)}) · ratio {be / te:.2f} (target ≤ 1.2)")
    print(f"memory       : {len(mem)} session processes ({args.tabs} tabs + spare) · PSS "
          f"{', '.join(f'{p:.0f}' for p in pss)} MB · RSS max {max(rss, default=0):.0f} MB "
          f"(target ≤ 60 MB a session)")
    print(f"load average : {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return out


if __name__ == "__main__":
    run(sys.argv[1:])
