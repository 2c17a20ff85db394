"""Control plane: API latency and daemon footprint as the instance count grows.

One real `monostack serve` (images + network + compute on libvirt's test:///default driver, so
instances cost no guest memory), seeded through the API. At 10, 100 and 1,000 instances (and as
many ports on one network):
  * GET /compute/v2.1/servers/detail — p50/p99 of SAMPLES_DETAIL calls;
  * token validation (GET /identity/v3/auth/tokens with X-Subject-Token) — p50/p99;
  * server create (POST /servers until its 202) and port create — p50 of SAMPLES_CREATE each
    (the servers made count towards the next step; the ports are deleted again), ports seeded
    up to PORTS_MAX;
  * daemon RSS (/proc/<pid>/status VmRSS), plus idle before any instance.
Printed as a table with ratios to the 10-instance row; run() returns the numbers.
"""
from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from appliance.client import MonostackClient
from tests.daemon import ADMIN_PASSWORD, DaemonProcess, remove_namespace, run_init, write_config

STEPS = (10, 100, 1_000)
SAMPLES_DETAIL = 30
SAMPLES_TOKEN = 300
SAMPLES_CREATE = 30  # creates are 10–60 ms on a shared 2-core host: 10 samples made a noisy p50
#: ports seeded per step stop here (as many ports as instances: a port create changes only
#: that port's part of the data plane, so the cost of seeding is linear)
PORTS_MAX = 1_000
SEED_CONCURRENCY = 16
C = "/compute/v2.1"
NOVA = {"OpenStack-API-Version": "compute 2.60"}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pcts(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


async def _seed(client: MonostackClient, image_id: str, count: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await client.post(f"{C}/servers", {"server": {
                "name": f"bench-{i}", "imageRef": image_id, "flavorRef": "bench-tiny",
                "networks": "none"}}, headers=NOVA)

    await asyncio.gather(*[worker() for _ in range(SEED_CONCURRENCY)])


async def _wait_active(client: MonostackClient, total: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = (await client.get(f"{C}/servers/detail", headers=NOVA))["servers"]
        if len(servers) >= total and all(s["status"] != "BUILD" for s in servers):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("instances did not settle")


async def _seed_ports(client: MonostackClient, network_id: str, count: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            await client.post("/network/v2.0/ports", {"port": {"network_id": network_id}})

    await asyncio.gather(*[worker() for _ in range(SEED_CONCURRENCY)])


async def _measure_creates(client: MonostackClient, image_id: str, network_id: str,
                           step: int) -> dict[str, float]:
    create, port = [], []
    for i in range(SAMPLES_CREATE):
        t0 = time.perf_counter()
        await client.post(f"{C}/servers", {"server": {
            "name": f"probe-{step}-{i}", "imageRef": image_id, "flavorRef": "bench-tiny",
            "networks": "none"}}, headers=NOVA)
        create.append(time.perf_counter() - t0)
    made = []
    for _ in range(SAMPLES_CREATE):
        t0 = time.perf_counter()
        made.append((await client.post("/network/v2.0/ports",
                                       {"port": {"network_id": network_id}}))["port"]["id"])
        port.append(time.perf_counter() - t0)
    for pid in made:
        await client.delete(f"/network/v2.0/ports/{pid}")
    return {"create_p50": statistics.median(create), "port_create_p50": statistics.median(port)}


async def _measure(client: MonostackClient) -> dict[str, float]:
    detail = []
    for _ in range(SAMPLES_DETAIL):
        t0 = time.perf_counter()
        await client.get(f"{C}/servers/detail", headers=NOVA)
        detail.append(time.perf_counter() - t0)
    token = []
    for _ in range(SAMPLES_TOKEN):
        t0 = time.perf_counter()
        await client.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": client.token})
        token.append(time.perf_counter() - t0)
    d50, d99 = _pcts(detail)
    t50, t99 = _pcts(token)
    return {"detail_p50": d50, "detail_p99": d99, "token_p50": t50, "token_p99": t99}


async def _bench(base: Path) -> dict:
    path, config = write_config(base, components=["images", "network", "compute"], extra={
        "compute": {"graceful_shutdown_timeout": 1, "ram_allocation_ratio": 10_000.0,
                    "cpu_allocation_ratio": 10_000.0, "disk_allocation_ratio": 10_000.0},
        "log": {"level": "ERROR"}})
    run_init(path)
    daemon = DaemonProcess(path, config)
    await asyncio.to_thread(daemon.start)
    results: dict = {"steps": {}}
    try:
        async with MonostackClient(socket_path=config.api.socket, timeout=600) as client:
            await client.login("admin", ADMIN_PASSWORD, "admin")
            pid = client.session.project_id
            await client.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {
                "instances": 100_000, "cores": 1_000_000, "ram": 100_000_000}})
            await client.put(f"/network/v2.0/quotas/{pid}", {"quota": {"port": -1}})
            net = (await client.post("/network/v2.0/networks",
                                     {"network": {"name": "bench"}}))["network"]
            await client.post("/network/v2.0/subnets", {"subnet": {
                "network_id": net["id"], "cidr": "10.96.0.0/16", "ip_version": 4}})
            await client.post(f"{C}/flavors", {"flavor": {"name": "bench-tiny", "id": "bench-tiny",
                                                          "vcpus": 1, "ram": 16, "disk": 1}})
            qcow = base / "tiny.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "16M"], check=True)
            img = await client.post("/image/v2/images", {"name": "bench", "disk_format": "qcow2",
                                                         "container_format": "bare"})
            await client.upload("PUT", f"/image/v2/images/{img['id']}/file", qcow.read_bytes())
            await _measure(client)  # warm up
            results["rss_idle_mib"] = rss_mib(daemon.proc.pid)
            have = ports = 0
            for step in STEPS:
                t0 = time.monotonic()
                await _seed(client, img["id"], step - have)
                await _seed_ports(client, net["id"], min(step, PORTS_MAX) - ports)
                await _wait_active(client, step)
                seeded = time.monotonic() - t0
                ports = min(step, PORTS_MAX)
                m = await _measure(client)
                m["ports"] = ports
                m.update(await _measure_creates(client, img["id"], net["id"], step))
                have = step + SAMPLES_CREATE
                await _wait_active(client, have)
                m["rss_mib"] = rss_mib(daemon.proc.pid)
                m["seed_seconds"] = seeded
                results["steps"][step] = m
    finally:
        daemon.stop()
        remove_namespace(config)
    return results


def run() -> dict:
    base = Path(tempfile.mkdtemp(prefix="bench-api-", dir="/var/tmp"))
    try:
        results = asyncio.run(_bench(base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    first = results["steps"][STEPS[0]]
    print(f"   daemon RSS idle: {results['rss_idle_mib']:.0f} MiB")
    print(f"   {'instances':>9} {'detail p50':>11} {'p99':>8} {'x10':>6} {'token p50':>10} "
          f"{'p99':>8} {'x10':>6} {'RSS MiB':>8} {'seed s':>7}")
    for step, m in results["steps"].items():
        print(f"   {step:>9} {m['detail_p50'] * 1000:>9.1f}ms {m['detail_p99'] * 1000:>6.1f}ms "
              f"{m['detail_p50'] / first['detail_p50']:>6.1f} {m['token_p50'] * 1000:>8.2f}ms "
              f"{m['token_p99'] * 1000:>6.2f}ms {m['token_p50'] / first['token_p50']:>6.1f} "
              f"{m['rss_mib']:>8.0f} {m['seed_seconds']:>7.1f}")
    last = results["steps"][STEPS[-1]]
    results["ratio_detail_p50_1000_vs_10"] = last["detail_p50"] / first["detail_p50"]
    results["ratio_token_p50_1000_vs_10"] = last["token_p50"] / first["token_p50"]
    results["ratio_create_p50_1000_vs_10"] = last["create_p50"] / first["create_p50"]
    results["ratio_port_create_p50_1000_vs_10"] = (last["port_create_p50"]
                                                   / first["port_create_p50"])
    print(f"   server create p50 {first['create_p50'] * 1000:.1f} ms at {STEPS[0]}, "
          f"{last['create_p50'] * 1000:.1f} ms at {STEPS[-1]} "
          f"(×{results['ratio_create_p50_1000_vs_10']:.2f}); port create p50 "
          f"{first['port_create_p50'] * 1000:.1f} → {last['port_create_p50'] * 1000:.1f} ms "
          f"(×{results['ratio_port_create_p50_1000_vs_10']:.2f})")
    results["rss_per_instance_kib"] = ((results["steps"][STEPS[1]]["rss_mib"] - results["rss_idle_mib"])
                                       * 1024 / STEPS[1])
    print(f"   RSS per instance (idle → 100): {results['rss_per_instance_kib']:.0f} KiB")
    return results


if __name__ == "__main__":
    run()
