"""Raw libvirt createXML-to-running time vs LibvirtDriver.spawn time, same domain XML.

    python -m tests.bench.bench_driver [--uri test:///default] [--runs N]

On qemu:///system it boots the integration test guest (direct kernel boot, TCG) and counts
until libvirt reports the domain running (not until the guest prints anything), so the ratio
is the driver's own overhead: the existence check, define-then-start instead of a transient
createXML, the thread hops."""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid as uuidlib

import libvirt

from appliance.compute.driver import DirectBoot, DiskSpec, DomainSpec, HypervisorType
from appliance.compute.libvirt.domain_xml import build_domain_xml
from appliance.compute.libvirt.driver import LibvirtDriver


def make_spec(uri: str) -> tuple[DomainSpec, object | None]:
    uuid = str(uuidlib.uuid4())
    if uri.startswith("test:"):
        return DomainSpec(uuid=uuid, name=f"bench-{uuid[:8]}", vcpus=1, memory_mib=64,
                          disks=[DiskSpec(f"/nonexistent/{uuid}.qcow2")]), None
    from tests.integration.compute.guest import make_guest_files
    files = make_guest_files(uuid)
    return DomainSpec(uuid=uuid, name=f"bench-{uuid[:8]}", vcpus=1, memory_mib=128,
                      disks=[DiskSpec(files.disk)],
                      direct_boot=DirectBoot(files.kernel, files.initrd,
                                             "console=ttyS0 quiet")), files


def raw_run(conn: libvirt.virConnect, xml: str) -> float:
    t = time.perf_counter()
    dom = conn.createXML(xml, 0)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    elapsed = time.perf_counter() - t
    dom.destroy()
    return elapsed


async def main(uri: str, runs: int) -> dict:
    dtype = HypervisorType.TEST if uri.startswith("test:") else HypervisorType.QEMU
    driver = LibvirtDriver(uri, domain_type=dtype)
    await driver.connect()
    conn = libvirt.open(uri)
    raw: list[float] = []
    spawn: list[float] = []
    try:
        for _ in range(runs):
            spec, files = make_spec(uri)
            try:
                xml = build_domain_xml(spec, str(dtype))
                raw.append(await asyncio.to_thread(raw_run, conn, xml))
                t = time.perf_counter()
                await driver.spawn(spec)
                spawn.append(time.perf_counter() - t)
                await driver.destroy(spec.uuid)
            finally:
                await driver.destroy(spec.uuid)
                if files is not None:
                    files.remove()  # type: ignore[attr-defined]
    finally:
        conn.close()
        await driver.close()
    r, s = statistics.median(raw), statistics.median(spawn)
    print(f"uri={uri} runs={runs}")
    print(f"raw createXML -> running: median {r * 1000:.1f} ms")
    print(f"driver.spawn  -> running: median {s * 1000:.1f} ms")
    print(f"ratio spawn/raw: {s / r:.2f}")
    return {"uri": uri, "raw_createXML_ms": r * 1000, "spawn_ms": s * 1000, "ratio": s / r}


def run() -> dict:
    """`python -m tests.bench`: the driver's own overhead on test:///default."""
    return asyncio.run(main("test:///default", 20))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--uri", default="test:///default")
    p.add_argument("--runs", type=int, default=20)
    a = p.parse_args()
    asyncio.run(main(a.uri, a.runs))
