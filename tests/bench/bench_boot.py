"""Boot cost: API create → domain running, divided by a raw libvirt createXML of the same
domain XML; and N = 10 and 20 concurrent boots through the API against the same N domain XMLs
started by N threads straight through libvirt (plus GET /servers latency during each burst).

Runs over libvirt test:///default (what the overhead of our API, store, scheduler and task
queue costs next to libvirt itself) and, whenever qemu:///system is reachable, on real TCG
guests booted from the guest test image uploaded through Glance ("running" = libvirt says
running, not the guest booted). MONOSTACK_BENCH_REAL=0 skips the real run. The daemon runs the
real image, volume and compute components.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import libvirt

from appliance.compute.libvirt.domain_xml import build_domain_xml
from tests.compute_support import (
    COMPONENTS,
    CONFIG_COMPONENTS,
    make_tiny_qcow2,
    upload_image,
)
from tests.daemon import InProcessDaemon, write_config

C = "/compute/v2.1"


async def _boot(client, manager, name: str, image_id: str, flavor: str,
                created: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    sid = (await client.post(f"{C}/servers", {"server": {
        "name": name, "imageRef": image_id, "flavorRef": flavor}}))["server"]["id"]
    created.append(sid)
    while True:
        inst = manager.instances.get(sid)
        if inst is not None and inst.status in ("ACTIVE", "ERROR"):
            break
        await asyncio.sleep(0.002)
    assert inst.status == "ACTIVE", inst.fault
    return time.perf_counter() - t0, sid


def _raw_create(uri: str, xml: str) -> float:
    conn = libvirt.open(uri)
    try:
        t0 = time.perf_counter()
        dom = conn.createXML(xml, 0)
        elapsed = time.perf_counter() - t0
        dom.destroy()
        return elapsed
    finally:
        conn.close()


async def _measure(base: Path, uri: str, image: Path | None, rounds: int) -> dict:
    extra = {"compute": {"libvirt_uri": uri, "instances_dir": str(base / "inst"),
                         "reserved_host_memory_mb": 0, "cpu_allocation_ratio": 16.0},
             "storage": {"images_dir": str(base / "images"),
                         "volumes_dir": str(base / "volumes")}}
    _, config = write_config(base / "daemon", components=CONFIG_COMPONENTS, extra=extra)
    async with InProcessDaemon(config, components=COMPONENTS) as daemon:
        comps = daemon.appliance.ctx.components
        manager = comps.compute.manager
        client = await daemon.admin_client()
        image_id = await upload_image(client, image or make_tiny_qcow2(base / "tiny.qcow2"),
                                      name="bench")
        created: list[str] = []
        try:
            pid = client.session.project_id
            await client.put(f"{C}/os-quota-sets/{pid}", {"quota_set": {
                "instances": -1, "cores": -1, "ram": -1}})
            f = (await client.post(f"{C}/flavors", {"flavor": {
                "name": "bench", "ram": 128, "vcpus": 1, "disk": 1, "id": None}}))["flavor"]["id"]
            def twin_xml(sid: str, label: str) -> str:
                """The domain XML of our instance `sid` under a new name and uuid, on a copy of
                its overlay: what a raw libvirt user would start for the same guest."""
                spec = manager.domain_spec(manager.instances.require(sid))
                twin = replace(spec, uuid=str(uuid.uuid4()), name=f"bench-raw-{label}",
                               metadata={}, console_log_path=None)
                if image is not None:  # its own overlay, like ours
                    d = base / "inst" / twin.uuid
                    d.mkdir(parents=True)
                    d.chmod(0o755)
                    overlay = d / "disk"
                    shutil.copyfile(manager.instances_dir / sid / "disk", overlay)
                    twin = replace(twin, disks=[replace(twin.disks[0], path=str(overlay))],
                                   nics=[], console_log_path=str(d / "console.log"))
                return build_domain_xml(twin, str(manager.driver.domain_type))

            api, raw = [], []
            for i in range(rounds):
                t, sid = await _boot(client, manager, f"b{i}", image_id, f, created)
                api.append(t)
                xml = twin_xml(sid, str(i))
                # a quiet host for the raw start too: our guest goes first
                await manager.delete(sid)
                await manager.wait_idle()
                raw.append(await asyncio.to_thread(_raw_create, uri, xml))
            one = sorted(api)[len(api) // 2]
            totals, concurrent = {}, {}
            for n in (10, 20):
                polls: list[float] = []
                burst = asyncio.Event()
                poller = asyncio.create_task(_poll_servers(client, burst, polls))
                t0 = time.perf_counter()
                many = await asyncio.gather(*(_boot(client, manager, f"c{n}-{i}", image_id, f,
                                                    created) for i in range(n)))
                totals[n] = time.perf_counter() - t0
                burst.set()
                await poller
                xmls = [twin_xml(sid, f"c{n}-{i}") for i, (_, sid) in enumerate(many)]
                for _, sid in many:
                    await manager.delete(sid)
                await manager.wait_idle()
                raw_total = await asyncio.to_thread(_raw_create_many, uri, xmls)
                concurrent[n] = {"api_total_s": totals[n], "raw_total_s": raw_total,
                                 "ratio_api_vs_raw": totals[n] / raw_total,
                                 "get_servers_p50_s": _pct(polls, 0.5),
                                 "get_servers_p99_s": _pct(polls, 0.99),
                                 "get_servers_samples": len(polls)}
        finally:  # never leave a domain behind, even when a boot failed
            for sid in created:
                if manager.instances.get(sid) is not None:
                    await manager.delete(sid)
            await manager.wait_idle(300)
            await client.close()
    api_med = sorted(api)[len(api) // 2]
    raw_med = sorted(raw)[len(raw) // 2]
    concurrent[1] = {"api_total_s": api_med, "raw_total_s": raw_med,
                     "ratio_api_vs_raw": api_med / raw_med}
    return {"api_to_running_s": api_med, "raw_createXML_s": raw_med,
            "ratio_api_vs_raw": api_med / raw_med, "one_boot_s": one,
            "concurrent": dict(sorted(concurrent.items())),
            "burst_get_servers_p99_s": concurrent[20]["get_servers_p99_s"],
            "ten_concurrent_total_s": totals[10], "ratio_10_concurrent_vs_1": totals[10] / one,
            "twenty_concurrent_total_s": totals[20], "ratio_20_concurrent_vs_1": totals[20] / one}


def _raw_create_many(uri: str, xmls: list[str]) -> float:
    """The same domains started by one thread each, each on its own connection (libvirt's
    client releases the GIL in calls): wall time until every createXML has returned."""
    conns = [libvirt.open(uri) for _ in xmls]
    doms: list = [None] * len(xmls)
    errors: list[BaseException] = []
    start = threading.Barrier(len(xmls) + 1)

    def one(i: int) -> None:
        start.wait()
        try:
            doms[i] = conns[i].createXML(xmls[i], 0)
        except BaseException as exc:  # reported below, after every domain is cleaned up
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(xmls))]
    for t in threads:
        t.start()
    try:
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        for t in threads:
            t.join()
        for dom in doms:
            if dom is not None:
                try:
                    dom.destroy()
                except libvirt.libvirtError:
                    pass
        for conn in conns:
            conn.close()
    if errors:
        raise errors[0]
    return elapsed


async def _poll_servers(client, done: asyncio.Event, out: list[float]) -> None:
    """GET /servers latencies, one after another, until `done` (the API's responsiveness while
    a burst of boots runs)."""
    while not done.is_set():
        t0 = time.perf_counter()
        await client.get(f"{C}/servers")
        out.append(time.perf_counter() - t0)
        await asyncio.sleep(0.01)


def _pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _print(label: str, r: dict) -> None:
    print(f"   [{label}] API→running {r['api_to_running_s'] * 1000:.1f} ms, raw createXML "
          f"{r['raw_createXML_s'] * 1000:.1f} ms → ratio {r['ratio_api_vs_raw']:.1f}")
    print(f"   [{label}] 10 concurrent boots {r['ten_concurrent_total_s'] * 1000:.0f} ms vs one "
          f"{r['one_boot_s'] * 1000:.0f} ms → ratio {r['ratio_10_concurrent_vs_1']:.2f}")
    print(f"   [{label}] 20 concurrent boots {r['twenty_concurrent_total_s'] * 1000:.0f} ms → "
          f"ratio {r['ratio_20_concurrent_vs_1']:.2f}")
    for n, c in r["concurrent"].items():
        line = (f"   [{label}] {n:>2} boots: API {c['api_total_s'] * 1000:.0f} ms, raw libvirt "
                f"({n} threads) {c['raw_total_s'] * 1000:.0f} ms → ratio {c['ratio_api_vs_raw']:.2f}")
        if c.get("get_servers_p99_s") is not None:
            line += (f"; GET /servers meanwhile p50 {c['get_servers_p50_s'] * 1000:.1f} ms, "
                     f"p99 {c['get_servers_p99_s'] * 1000:.1f} ms ({c['get_servers_samples']})")
        print(line)


def _real_libvirt() -> bool:
    if os.environ.get("MONOSTACK_BENCH_REAL", "1") in ("0", "", "no", "false"):
        return False
    try:
        libvirt.open("qemu:///system").close()
        return True
    except libvirt.libvirtError:
        return False


def run() -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["test"] = asyncio.run(_measure(Path(tmp), "test:///default", None, rounds=9))
    _print("test:///default", out["test"])
    if _real_libvirt():
        from tests.guest_image import ensure_guest_image, make_traversable_dir
        root = make_traversable_dir(Path("/var/lib/monostack-test")
                                    / ("bench-" + uuid.uuid4().hex[:8]))
        try:
            out["qemu"] = asyncio.run(_measure(root, "qemu:///system",
                                               ensure_guest_image().qcow2, rounds=3))
            _print("qemu:///system TCG", out["qemu"])
        finally:
            shutil.rmtree(root, ignore_errors=True)
    else:
        print("   [qemu:///system] not reachable (or MONOSTACK_BENCH_REAL=0): real TCG skipped")
    return out


if __name__ == "__main__":
    run()
