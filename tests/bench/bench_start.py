"""Daemon start to ready: how long the API is away on a restart.

A real `monostack serve` (images + compute), restarted again and again; each start is timed
from spawning the process to
  * answering: GET /healthz answers on the unix socket (the API is back);
  * settled: compute reports its start-up reconciliation over (every guest restarted).
Side by side with the floor any start pays: the interpreter importing the daemon's modules.

  * on qemu:///system with an empty state: cold (no KVM probe verdict cached: where KVM cannot
    run guests the probe waits its whole timeout) and warm (the verdict cached). Goal: warm
    ≤ 3 s to answering.
  * on test:///default with 1,000 instances in state (ACTIVE, so reconciliation starts 1,000
    domains on every start: the test driver keeps none across connections). Goal: ≤ 5 s to
    answering, settled whenever reconciliation is done.
"""
from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from appliance.client import MonostackClient
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


def _floor() -> float:
    runs = []
    for _ in range(WARM_RUNS):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS], cwd=ROOT, env=_env(), check=True)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def _timed_start(daemon: DaemonProcess, timeout: float = 600) -> tuple[float, float]:
    """(seconds to answering, seconds to settled) of one start."""
    log = open(daemon.config_path.parent / "daemon.log", "ab")
    t0 = time.perf_counter()
    daemon.proc = subprocess.Popen(monostack_cmd("--config", str(daemon.config_path), "serve"),
                                   cwd=ROOT, env=_env(), stdout=log, stderr=log)
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
        warm = []
        for _ in range(WARM_RUNS):
            warm.append(_timed_start(daemon))
            _stop(daemon)
        return {"cold_answering_s": cold[0], "cold_settled_s": cold[1],
                "warm_answering_s": statistics.median(w[0] for w in warm),
                "warm_settled_s": statistics.median(w[1] for w in warm),
                "probe_verdict_cached": cache.exists()}
    finally:
        _stop(daemon)
        remove_namespace(config)


async def _seed_instances(daemon: DaemonProcess, count: int) -> None:
    async with MonostackClient(socket_path=daemon.config.api.socket, timeout=600) as client:
        await client.login("admin", ADMIN_PASSWORD, "admin")
        await client.put(f"/compute/v2.1/os-quota-sets/{client.session.project_id}",
                         {"quota_set": {"instances": 100_000, "cores": 1_000_000,
                                        "ram": 100_000_000}})
        await client.post("/compute/v2.1/flavors", {"flavor": {
            "name": "bench-tiny", "id": "bench-tiny", "vcpus": 1, "ram": 16, "disk": 1}})
        await seed_test_image(client, daemon.config_path.parent)
        await _seed(client, TEST_IMAGE_ID, count)
        await _wait_active(client, count)


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
        asyncio.run(_seed_instances(daemon, INSTANCES))
        _stop(daemon)
        runs = []
        for _ in range(WARM_RUNS):
            runs.append(_timed_start(daemon))
            _stop(daemon)
        return {"answering_s": statistics.median(r[0] for r in runs),
                "settled_s": statistics.median(r[1] for r in runs)}
    finally:
        _stop(daemon)
        remove_namespace(config)


def run() -> dict[str, object]:
    base = Path(tempfile.mkdtemp(prefix="bench-start-"))
    try:
        floor = _floor()
        system = _system_runs(base / "system")
        loaded = _loaded_runs(base / "loaded")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rows = [
        ("import floor (python + the daemon's modules)", floor, None),
        ("qemu:///system, empty, cold probe: answering", system["cold_answering_s"], floor),
        ("qemu:///system, empty, warm: answering (goal ≤ 3 s)", system["warm_answering_s"],
         floor),
        ("qemu:///system, empty, warm: settled", system["warm_settled_s"], floor),
        (f"test driver, {INSTANCES} instances: answering (goal ≤ 5 s)", loaded["answering_s"],
         floor),
        (f"test driver, {INSTANCES} instances: settled", loaded["settled_s"], floor),
    ]
    for label, seconds, against in rows:
        ratio = f"{seconds / against:6.1f}× floor" if against else ""
        print(f"   {label:<58} {seconds:7.2f} s  {ratio}")
    return {"floor_s": floor, "system": system, "loaded": loaded}


if __name__ == "__main__":
    run()
