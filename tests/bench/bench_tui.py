"""TUI: first frame of the app (the login screen) and refresh of a 1,000-instance table.

- import: `python -c "import tui.app"` in a fresh interpreter (what `monostack tui` pays first).
- first frame: MonostackApp constructed → login screen mounted and painted (headless).
- table: InstancesScreen fed 1,000 servers directly (no daemon): first fill, an event-driven
  refresh where 10 statuses changed (cells updated in place), and one filter keystroke.
Each is the median of several runs, in milliseconds.
"""
from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from appliance.client import MonostackClient
from tui.app import MonostackApp
from tui.cloud import Server
from tui.screens.instances import InstancesScreen
from tui.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ROWS = 1_000
STATUSES = ["ACTIVE", "ACTIVE", "ACTIVE", "SHUTOFF", "BUILD", "ERROR", "PAUSED"]


def servers(n: int = ROWS, flip: int = 0) -> list[Server]:
    out = []
    for i in range(n):
        status = STATUSES[i % len(STATUSES)]
        if i < flip:
            status = "REBOOT"
        out.append(Server(
            id=f"00000000-0000-4000-8000-{i:012d}", name=f"web-{i:04d}", status=status,
            task_state=None, power_state=1, flavor="m1.small", image="tinyguest",
            addresses=[f"10.0.{i // 250}.{i % 250 + 2}"], networks=["private"],
            security_groups=["default"], key_name=None, locked=False, fault="", host="h",
            created="2026-01-01T00:00:00Z", volumes=[]))
    return out


def _app(tmp: Path) -> MonostackApp:
    return MonostackApp(lambda: MonostackClient(socket_path=tmp / "none.sock"),
                        settings=Settings(path=tmp / "tui.json"), live=False,
                        refresh_seconds=3600, cursor_blink=False)


async def _first_frame(tmp: Path) -> float:
    start = time.perf_counter()
    app = _app(tmp)
    async with app.run_test(size=(80, 24)) as pilot:
        while not app.screen.query("#password"):
            await pilot.pause(0)
        await pilot.pause()
        return (time.perf_counter() - start) * 1000


async def _table(tmp: Path) -> dict[str, float]:
    app = _app(tmp)
    fill, update, keystroke = [], [], []
    async with app.run_test(size=(160, 48)) as pilot:
        screen = InstancesScreen()
        await app.push_screen(screen)
        await pilot.pause()
        table = screen.query_one("#servers")
        for round_ in range(5):
            screen.servers = []
            table.clear()
            await pilot.pause()
            t0 = time.perf_counter()
            screen.show(servers())
            await pilot.pause()
            fill.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            screen.show(servers(flip=10 + round_))
            await pilot.pause()
            update.append((time.perf_counter() - t0) * 1000)
            filt = screen.query_one("#filter")
            t0 = time.perf_counter()
            filt.value = "web-00"
            await pilot.pause()
            keystroke.append((time.perf_counter() - t0) * 1000)
            filt.value = ""
            await pilot.pause()
        assert table.row_count == ROWS
    return {"fill_1000_ms": statistics.median(fill),
            "refresh_10_changed_ms": statistics.median(update),
            "filter_keystroke_ms": statistics.median(keystroke)}


def run() -> dict:
    import tempfile
    tmp = Path(tempfile.mkdtemp())
    imports = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import tui.app"], cwd=ROOT, check=True)
        imports.append((time.perf_counter() - t0) * 1000)
    frames = [asyncio.run(_first_frame(tmp)) for _ in range(5)]
    table = asyncio.run(_table(tmp))
    result = {"import_tui_ms": round(statistics.median(imports), 1),
              "first_frame_ms": round(statistics.median(frames), 1),
              **{k: round(v, 1) for k, v in table.items()}}
    print(f"   import tui.app (fresh interpreter): {result['import_tui_ms']:8.1f} ms")
    print(f"   first frame (login screen):         {result['first_frame_ms']:8.1f} ms")
    print(f"   instance table, fill {ROWS} rows:     {result['fill_1000_ms']:8.1f} ms")
    print(f"   refresh, 10 statuses changed:       {result['refresh_10_changed_ms']:8.1f} ms")
    print(f"   filter keystroke over {ROWS} rows:    {result['filter_keystroke_ms']:8.1f} ms")
    return result


if __name__ == "__main__":
    run()
