"""Control plane: API latency and daemon footprint as the instance count grows.

Two real `monostack serve` daemons (images + network + compute on libvirt's test:///default
driver, so instances cost no guest memory), each seeded through the API:
  * small: 10 instances, each with a port on one network;
  * large: grown 10 → 100 → 1,000 instances (each with its port); at each step
    GET /compute/v2.1/servers/detail p50/p99 of SAMPLES_DETAIL calls and the daemon's RSS
    (/proc/<pid>/status VmRSS), plus idle before any instance.
Every seeded server must be ACTIVE (a NIC-less server, networks "none", goes to ERROR while the
network component runs: a cost measured over servers in ERROR would not be the cloud's).
Then, with the large one at 1,000, side by side: server create (POST /servers until its 202),
token validation (GET /identity/v3/auth/tokens with X-Subject-Token) and port create, each
sampled in alternation on the two daemons (small then large, large then small, ... the same
number of samples each) so load from other work on a shared host falls on both sides alike;
the ratio is the large side's median over the small side's. Measured one after the other on
one daemon, token validation (known flat) read 0.96 in one run and 1.94 in another on a host
at load 8–13. Each server made is awaited ACTIVE and deleted again, each port deleted again,
untimed, so both sides keep their size and no build runs behind the next sample.
Printed as a table; run() returns the numbers.
"""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.client import MonostackClient
from appliance.errors import NotFound
from tests.daemon import ADMIN_PASSWORD, DaemonProcess, remove_namespace, run_init, write_config

STEPS = (10, 100, 1_000)
SMALL = STEPS[0]
SAMPLES_DETAIL = 30
SAMPLES_TOKEN = 300
SAMPLES_CREATE = 30  # creates are 10–60 ms on a shared 2-core host: 10 samples made a noisy p50
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


async def _seed(client: MonostackClient, image_id: str, count: int,
                network_id: str | None = None) -> None:
    """`count` servers, 16 creates at a time; each with a port on `network_id` when given,
    without a NIC otherwise."""
    networks = [{"uuid": network_id}] if network_id else "none"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await client.post(f"{C}/servers", {"server": {
                "name": f"bench-{i}", "imageRef": image_id, "flavorRef": "bench-tiny",
                "networks": networks}}, headers=NOVA)

    await asyncio.gather(*[worker() for _ in range(SEED_CONCURRENCY)])


async def _wait_active(client: MonostackClient, total: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = (await client.get(f"{C}/servers/detail", headers=NOVA))["servers"]
        if len(servers) >= total and all(s["status"] != "BUILD" for s in servers):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("instances did not settle")


@dataclass
class _Cloud:
    """One daemon of the pair, with what the samples need of it."""

    name: str
    daemon: DaemonProcess
    client: MonostackClient
    image_id: str = ""
    network_id: str = ""
    servers: int = 0
    probes: int = 0

    async def grow(self, servers: int) -> float:
        """Seed up to `servers` instances, each with a port on the bench network (so as many
        ports as servers); the seconds it took."""
        t0 = time.monotonic()
        await _seed(self.client, self.image_id, servers - self.servers, self.network_id)
        await _wait_active(self.client, servers)
        took = time.monotonic() - t0
        listed = (await self.client.get(f"{C}/servers/detail", headers=NOVA))["servers"]
        broken = [s["fault"] for s in listed if s["status"] != "ACTIVE"]
        if broken:  # a flat cost over servers in ERROR would measure the wrong thing
            raise RuntimeError(f"{len(broken)} seeded servers are not ACTIVE: {broken[0]}")
        self.servers = servers
        return took


def _stop(daemon: DaemonProcess) -> None:
    """Stop a bench daemon whatever state it is in, and remove its namespace."""
    try:
        daemon.kill(signal.SIGTERM)
    except subprocess.TimeoutExpired:
        daemon.kill(signal.SIGKILL)
    finally:
        remove_namespace(daemon.config)


async def _open(stack: contextlib.AsyncExitStack, name: str) -> _Cloud:
    """A fresh daemon in its own temp dir (and namespace), removed when `stack` closes."""
    base = Path(tempfile.mkdtemp(prefix=f"bench-api-{name}-", dir="/var/tmp"))
    stack.callback(shutil.rmtree, base, ignore_errors=True)
    path, config = write_config(base, components=["images", "network", "compute"], extra={
        "compute": {"graceful_shutdown_timeout": 1, "ram_allocation_ratio": 10_000.0,
                    "cpu_allocation_ratio": 10_000.0, "disk_allocation_ratio": 10_000.0},
        "log": {"level": "ERROR"}})
    await asyncio.to_thread(run_init, path)
    daemon = DaemonProcess(path, config)
    stack.callback(_stop, daemon)  # before start: a start that fails half-way is stopped too
    await asyncio.to_thread(daemon.start)
    client = await stack.enter_async_context(
        MonostackClient(socket_path=config.api.socket, timeout=600))
    cloud = _Cloud(name, daemon, client)
    await client.login("admin", ADMIN_PASSWORD, "admin")
    pid = client.session.project_id
    await client.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {
        "instances": 100_000, "cores": 1_000_000, "ram": 100_000_000}})
    await client.put(f"/network/v2.0/quotas/{pid}", {"quota": {"port": -1}})
    net = (await client.post("/network/v2.0/networks", {"network": {"name": "bench"}}))["network"]
    await client.post("/network/v2.0/subnets", {"subnet": {
        "network_id": net["id"], "cidr": "10.96.0.0/16", "ip_version": 4}})
    await client.post(f"{C}/flavors", {"flavor": {"name": "bench-tiny", "id": "bench-tiny",
                                                  "vcpus": 1, "ram": 16, "disk": 1}})
    qcow = base / "tiny.qcow2"
    await asyncio.to_thread(subprocess.run, ["qemu-img", "create", "-q", "-f", "qcow2",
                                             str(qcow), "16M"], check=True)
    img = await client.post("/image/v2/images", {"name": "bench", "disk_format": "qcow2",
                                                 "container_format": "bare"})
    await client.upload("PUT", f"/image/v2/images/{img['id']}/file", qcow.read_bytes())
    cloud.image_id, cloud.network_id = img["id"], net["id"]
    return cloud


async def _measure_detail(client: MonostackClient) -> dict[str, float]:
    detail = []
    for _ in range(SAMPLES_DETAIL):
        t0 = time.perf_counter()
        await client.get(f"{C}/servers/detail", headers=NOVA)
        detail.append(time.perf_counter() - t0)
    d50, d99 = _pcts(detail)
    return {"detail_p50": d50, "detail_p99": d99}


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


async def _token_sample(cloud: _Cloud) -> float:
    client = cloud.client
    t0 = time.perf_counter()
    await client.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": client.token})
    return time.perf_counter() - t0


async def _create_sample(cloud: _Cloud) -> float:
    """POST /servers until its 202, timed; then (untimed) awaited ACTIVE and deleted."""
    client = cloud.client
    cloud.probes += 1
    t0 = time.perf_counter()
    server = (await client.post(f"{C}/servers", {"server": {
        "name": f"probe-{cloud.probes}", "imageRef": cloud.image_id, "flavorRef": "bench-tiny",
        "networks": [{"uuid": cloud.network_id}]}}, headers=NOVA))["server"]
    took = time.perf_counter() - t0
    url = f"{C}/servers/{server['id']}"

    async def built() -> bool:
        got = (await client.get(url, headers=NOVA))["server"]
        if got["status"] == "ERROR":
            raise RuntimeError(f"probe server {server['id']} went to ERROR: {got.get('fault')}")
        return got["status"] != "BUILD"

    async def gone() -> bool:
        try:
            await client.get(url, headers=NOVA)
        except NotFound:
            return True
        return False

    await _until(built, "probe server did not build")
    await client.delete(url)
    await _until(gone, "probe server was not deleted")
    return took


async def _port_sample(cloud: _Cloud) -> float:
    client = cloud.client
    t0 = time.perf_counter()
    port = (await client.post("/network/v2.0/ports",
                              {"port": {"network_id": cloud.network_id}}))["port"]
    took = time.perf_counter() - t0
    await client.delete(f"/network/v2.0/ports/{port['id']}")
    return took


async def _side_by_side(small: _Cloud, large: _Cloud,
                        sample: Callable[[_Cloud], Awaitable[float]], n: int) -> dict:
    """`n` samples on each side, alternating which goes first; the medians and their ratio."""
    times: dict[str, list[float]] = {small.name: [], large.name: []}
    for i in range(n):
        for cloud in ((small, large) if i % 2 == 0 else (large, small)):
            times[cloud.name].append(await sample(cloud))
    a, b = statistics.median(times[small.name]), statistics.median(times[large.name])
    return {f"p50_at_{small.servers}": a, f"p50_at_{large.servers}": b, "ratio": b / a,
            "samples": n}


async def _bench() -> dict:
    results: dict = {"steps": {}}
    async with contextlib.AsyncExitStack() as stack:
        # one after the other: a failed open must not leave the other half-started
        small = await _open(stack, "small")
        large = await _open(stack, "large")
        for cloud in (small, large):  # warm up
            await _measure_detail(cloud.client)
            for _ in range(20):
                await _token_sample(cloud)
        results["rss_idle_mib"] = rss_mib(large.daemon.proc.pid)
        results["small_seed_seconds"] = await small.grow(SMALL)
        for step in STEPS:
            seeded = await large.grow(step)
            m = await _measure_detail(large.client)
            m["ports"] = len((await large.client.get("/network/v2.0/ports"))["ports"])
            m["rss_mib"] = rss_mib(large.daemon.proc.pid)
            m["seed_seconds"] = seeded
            results["steps"][step] = m
        side = results["side_by_side"] = {}
        side["token"] = await _side_by_side(small, large, _token_sample, SAMPLES_TOKEN)
        side["create"] = await _side_by_side(small, large, _create_sample, SAMPLES_CREATE)
        side["port_create"] = await _side_by_side(small, large, _port_sample, SAMPLES_CREATE)
    return results


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run() -> dict:
    # a SIGTERM (a timeout, a kill) unwinds like ^C does, so the daemons, their namespaces and
    # temp dirs go too
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        results = asyncio.run(_bench())
    finally:
        signal.signal(signal.SIGTERM, previous)
    first, last = results["steps"][STEPS[0]], results["steps"][STEPS[-1]]
    print(f"   daemon RSS idle: {results['rss_idle_mib']:.0f} MiB")
    print(f"   {'instances':>9} {'ports':>6} {'detail p50':>11} {'p99':>8} {'x10':>6} "
          f"{'RSS MiB':>8} {'seed s':>7}")
    for step, m in results["steps"].items():
        print(f"   {step:>9} {m['ports']:>6} {m['detail_p50'] * 1000:>9.1f}ms "
              f"{m['detail_p99'] * 1000:>6.1f}ms {m['detail_p50'] / first['detail_p50']:>6.1f} "
              f"{m['rss_mib']:>8.0f} {m['seed_seconds']:>7.1f}")
    results["ratio_detail_p50_1000_vs_10"] = last["detail_p50"] / first["detail_p50"]
    print(f"   side by side, alternating, {SMALL} vs {STEPS[-1]} instances "
          f"({SMALL} vs {last['ports']} ports):")
    for key, label in (("token", "token validation"), ("create", "server create"),
                       ("port_create", "port create")):
        s = results["side_by_side"][key]
        a, b = s[f"p50_at_{SMALL}"], s[f"p50_at_{STEPS[-1]}"]
        results[f"ratio_{key}_p50_1000_vs_10"] = s["ratio"]
        print(f"   {label:>17} p50 {a * 1000:7.2f} ms at {SMALL}, {b * 1000:7.2f} ms at "
              f"{STEPS[-1]}: ×{s['ratio']:.2f} ({s['samples']} samples each)")
    results["rss_per_instance_kib"] = ((results["steps"][STEPS[1]]["rss_mib"] - results["rss_idle_mib"])
                                       * 1024 / STEPS[1])
    print(f"   RSS per instance (idle → 100): {results['rss_per_instance_kib']:.0f} KiB")
    return results


if __name__ == "__main__":
    run()
