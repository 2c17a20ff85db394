"""Daemon start to ready: how long the API is away on a restart.

A real `monostack serve` (images + compute), restarted again and again; each start is timed
from spawning the process to
  * answering: GET /healthz answers on the unix socket (the API is back);
  * settled: compute reports its start-up reconciliation over (every guest restarted).
Side by side, interleaved with the daemon's starts so all three see the same load on a shared
host, the floors any start pays:
  * app floor: a minimal aiohttp application answering GET /healthz on a unix socket (the
    interpreter, aiohttp and one listening socket: what no daemon written like ours beats);
  * import floor: the interpreter importing the daemon's modules (the monolithic start before
    the lazy imports; today's daemon imports less before it answers).

  * on qemu:///system with an empty state: cold (no KVM probe verdict cached: where KVM cannot
    run guests the probe waits its whole timeout) and warm (the verdict cached). Goal: warm
    ≤ 3 s to answering.
  * every component on qemu:///system, warm: what an installed appliance pays (network
    builds its namespace, bridges, nftables and DHCP listeners before the API answers).
  * on test:///default with 1,000 instances in state (ACTIVE, so reconciliation starts 1,000
    domains on every start: the test driver keeps none across connections). Goal: ≤ 5 s to
    answering, settled whenever reconciliation is done. The 1,000 records are one real
    instance (created through the API) cloned into the store while the daemon is down: what
    a start reads is the same, without 1,000 API creates to wait for.

Every process measured runs from compiled bytecode, as an installed appliance does (pip
compiles it): a checkout run with PYTHONDONTWRITEBYTECODE recompiles ~140 modules of ours on
every start (about 1.5 s of it on this host), which no installed daemon pays. The caches go to
a scratch PYTHONPYCACHEPREFIX, written by one unmeasured import first.
"""
from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

from appliance.client import MonostackClient
from appliance.state import Store
from appliance.state.store import Put
from tests.bench.bench_api import _seed, _wait_active
from tests.compute_support import TEST_IMAGE_ID, seed_test_image
from tests.daemon import (
    ADMIN_PASSWORD, ROOT, DaemonProcess, _env, monostack_cmd, remove_namespace, run_init,
    write_config)

WARM_RUNS = 3
INSTANCES = 1_000
COMPONENTS = ["images", "compute"]
IMPORTS = ("import appliance.service, appliance.api.app, appliance.compute.component, "
           "appliance.images.component, appliance.compute.libvirt.driver")
#: the app floor: aiohttp answering GET /healthz on a unix socket, nothing else
MINIMAL_APP = """
import sys
from aiohttp import web
async def healthz(request):
    return web.json_response({"status": "ok"})
app = web.Application()
app.router.add_get("/healthz", healthz)
web.run_app(app, path=sys.argv[1], print=None, handle_signals=True)
"""


_ENV: dict[str, str] = {}


def _env_compiled(base: Path) -> dict[str, str]:
    env = _env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    return env


def _answers(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(sock))
            s.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


def _import_floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], cwd=ROOT, env=_ENV, check=True)
    return time.perf_counter() - t0


def _app_floor(base: Path) -> float:
    sock = base / "floor.sock"
    sock.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", MINIMAL_APP, str(sock)], cwd=ROOT, env=_ENV)
    try:
        while not _answers(sock):
            assert proc.poll() is None, "the minimal aiohttp app died"
            time.sleep(0.01)
        return time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _timed_start(daemon: DaemonProcess, timeout: float = 600) -> tuple[float, float]:
    """(seconds to answering, seconds to settled) of one start."""
    log = open(daemon.config_path.parent / "daemon.log", "ab")
    t0 = time.perf_counter()
    daemon.proc = subprocess.Popen(monostack_cmd("--config", str(daemon.config_path), "serve"),
                                   cwd=ROOT, env=_ENV, stdout=log, stderr=log)
    answering = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.proc.poll() is None, (daemon.config_path.parent / "daemon.log").read_text()
        health = daemon.health()
        if health:
            if answering is None:
                answering = time.perf_counter() - t0
            compute = health.get("components", {}).get("compute", "")
            if compute.startswith("ok"):
                return answering, time.perf_counter() - t0
        time.sleep(0.01)
    raise TimeoutError(f"daemon did not settle: {daemon.health()}")


def _stop(daemon: DaemonProcess) -> None:
    daemon.kill(15)


def _side_by_side(base: Path, start: Callable[[], tuple[float, float]]) -> dict[str, float]:
    """WARM_RUNS rounds of (app floor, import floor, daemon start), medians of each."""
    rounds = []
    for _ in range(WARM_RUNS):
        rounds.append((_app_floor(base), _import_floor(), *start()))
    app, imports, answering, settled = (statistics.median(col) for col in zip(*rounds))
    return {"app_floor_s": app, "import_floor_s": imports, "answering_s": answering,
            "settled_s": settled, "answering_vs_app_floor": answering / app}


def _all_components_runs(base: Path) -> dict[str, object]:
    """Every component, as an installed appliance runs (network builds its namespace, bridges,
    nftables and DHCP listeners before the API answers), warm."""
    cfg, config = write_config(base, extra={"compute": {"libvirt_uri": "qemu:///system"}})
    run_init(cfg)
    daemon = DaemonProcess(cfg, config)
    try:
        _timed_start(daemon)  # the KVM probe's verdict cached
        _stop(daemon)

        def warm() -> tuple[float, float]:
            try:
                return _timed_start(daemon)
            finally:
                _stop(daemon)

        return _side_by_side(base, warm)
    finally:
        _stop(daemon)
        remove_namespace(config)


def _system_runs(base: Path) -> dict[str, object]:
    cfg, config = write_config(base, components=COMPONENTS,
                               extra={"compute": {"libvirt_uri": "qemu:///system"}})
    run_init(cfg)
    daemon = DaemonProcess(cfg, config)
    try:
        cache = Path(config.state_dir) / "kvm-probe.json"
        cache.unlink(missing_ok=True)
        cold = _timed_start(daemon)
        _stop(daemon)

        def warm() -> tuple[float, float]:
            try:
                return _timed_start(daemon)
            finally:
                _stop(daemon)

        out: dict[str, object] = {"cold_answering_s": cold[0], "cold_settled_s": cold[1],
                                  "probe_verdict_cached": cache.exists()}
        side = _side_by_side(base, warm)
        out.update({"warm_answering_s": side["answering_s"],
                    "warm_settled_s": side["settled_s"], **side})
        return out
    finally:
        _stop(daemon)
        remove_namespace(config)


async def _seed_one(daemon: DaemonProcess) -> None:
    async with MonostackClient(socket_path=daemon.config.api.socket, timeout=600) as client:
        await client.login("admin", ADMIN_PASSWORD, "admin")
        await client.put(f"/compute/v2.1/os-quota-sets/{client.session.project_id}",
                         {"quota_set": {"instances": 100_000, "cores": 1_000_000,
                                        "ram": 100_000_000}})
        await client.post("/compute/v2.1/flavors", {"flavor": {
            "name": "bench-tiny", "id": "bench-tiny", "vcpus": 1, "ram": 16, "disk": 1}})
        await seed_test_image(client, daemon.config_path.parent)
        await _seed(client, TEST_IMAGE_ID, 1)
        await _wait_active(client, 1)


async def _clone_instances(state_dir: Path, count: int) -> None:
    """The daemon is down: its one instance becomes `count`, committed as a real daemon does
    (journal, fsync), so the next start replays them."""
    store = Store(state_dir)
    await store.open()
    try:
        (model,) = store.all("instances")
        ops = []
        for i in range(count - 1):
            doc = {**model, "id": str(uuid.uuid4()), "name": f"bench-{i + 1}"}
            if "hostname" in doc:
                doc["hostname"] = f"bench-{i + 1}"
            ops.append(Put("instances", doc["id"], doc))
        for i in range(0, len(ops), 100):
            await store.commit(ops[i:i + 100])
    finally:
        await store.close()


def _loaded_runs(base: Path) -> dict[str, object]:
    cfg, config = write_config(base, components=COMPONENTS,
                               extra={"compute": {"graceful_shutdown_timeout": 1,
                                                  "ram_allocation_ratio": 10_000.0,
                                                  "cpu_allocation_ratio": 10_000.0,
                                                  "disk_allocation_ratio": 10_000.0},
                                      "log": {"level": "ERROR"}})
    run_init(cfg)
    daemon = DaemonProcess(cfg, config)
    try:
        daemon.start(timeout=120)
        asyncio.run(_seed_one(daemon))
        _stop(daemon)
        asyncio.run(_clone_instances(Path(config.state_dir), INSTANCES))

        def start() -> tuple[float, float]:
            try:
                return _timed_start(daemon)
            finally:
                _stop(daemon)

        return _side_by_side(base, start)
    finally:
        _stop(daemon)
        remove_namespace(config)


def run() -> dict[str, object]:
    base = Path(tempfile.mkdtemp(prefix="bench-start-"))
    _ENV.clear()
    _ENV.update(_env_compiled(base))
    try:
        _import_floor()  # writes the bytecode caches
        subprocess.run([sys.executable, "-c", "import appliance.cli, appliance.logging_setup, "
                        "appliance.images.component, appliance.compute.component"],
                       cwd=ROOT, env=_ENV, check=True)
        system = _system_runs(base / "system")
        every = _all_components_runs(base / "all")
        loaded = _loaded_runs(base / "loaded")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rows: list[tuple[str, float, float | None]] = [
        ("qemu:///system, empty, cold probe: answering", system["cold_answering_s"], None),
        ("qemu:///system, empty, cold probe: settled", system["cold_settled_s"], None),
    ]
    for label, side, goal in (("qemu:///system, empty, warm", system, " (goal ≤ 3 s)"),
                              ("every component, qemu:///system, warm", every, ""),
                              (f"test driver, {INSTANCES} instances", loaded, " (goal ≤ 5 s)")):
        app = side["app_floor_s"]
        rows += [(f"{label}: app floor (minimal aiohttp)", app, None),
                 (f"{label}: import floor (daemon's modules)", side["import_floor_s"], app),
                 (f"{label}: answering{goal}", side["answering_s"], app),
                 (f"{label}: settled", side["settled_s"], app)]
    for label, seconds, against in rows:
        ratio = f"{seconds / against:6.2f}× app floor" if against else ""
        print(f"   {label:<62} {seconds:7.2f} s  {ratio}")
    return {"system": system, "all_components": every, "loaded": loaded}


if __name__ == "__main__":
    run()
