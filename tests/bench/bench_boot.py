"""Boot cost: N boots through the API against the same N guests started straight through
libvirt by N threads, for N = 1 (the median of 9 rounds) and bursts of N = 10 and 20 (the
median of MONOSTACK_BENCH_BOOT_BURST_ROUNDS rounds, 3 by default), the two sides taking turns
going first; plus GET /servers latency during one more API burst of each size (polling there
would take CPU from the API side's guests only).

Both sides do the same work for a guest and stop at the same point, each told of it, neither
polling:
- API: POST /servers, then our build (claim, a qcow2 overlay on the image's Glance file,
  defineXML + create of a persistent domain) until the server reads ACTIVE, which it does once
  libvirt's create has returned and the power state is read and stored (the bench sees the
  store apply that commit, the moment a client could first read it).
- raw: per guest one thread with its own libvirt connection makes the same qcow2 overlay with
  qemu-img on the same Glance file (same size), then defineXML + create of our domain XML
  (under a new name and uuid), until create has returned (the thread ends).
"Booted" is libvirt's "running" on both sides, not the guest's prompt. The daemon runs the
image, volume and compute components (no network: neither side has NICs, no config drive).
Each burst also records when its guests reached each step (median ms from the start: the
API's task_state as stored, the raw side's overlay, define and create): where the time goes.

Runs over libvirt test:///default (what our API, store, scheduler and task queue cost next to
libvirt itself) and, whenever qemu:///system is reachable, on real TCG guests from the guest
test image. MONOSTACK_BENCH_REAL=0 skips the real run; MONOSTACK_BENCH_BOOT_BURSTS="2,5" picks
other burst sizes (profiling on a shared host; the goals read 10 and 20).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import libvirt

from appliance.compute.libvirt.domain_xml import build_domain_xml
from appliance.compute.records import Instance
from appliance.state.repository import from_doc
from tests.compute_support import (
    COMPONENTS,
    CONFIG_COMPONENTS,
    make_tiny_qcow2,
    upload_image,
)
from tests.daemon import InProcessDaemon, write_config

C = "/compute/v2.1"


class Arrivals:
    """When each instance's record first reads ACTIVE or ERROR, taken from the store as it
    applies the commit: the moment any client could first see it, without polling (a burst of
    20 boots each polling its record every 2 ms woke the loop the daemon shares with this
    bench some 8,000 times a second). Also when each build step (task_state) was first
    stored: where a boot's time goes."""

    def __init__(self, store) -> None:
        self._seen: dict[str, tuple[float, Instance]] = {}
        self._waiting: dict[str, asyncio.Future[tuple[float, Instance]]] = {}
        #: instance id → step (task_state, or the status it ended in) → when first stored
        self.steps: dict[str, dict[str, float]] = {}
        store.watch("instances", self._changed)

    def _changed(self, iid: str, _old, new) -> None:
        if new is None or iid in self._seen:
            return
        inst = from_doc(Instance, new)
        now = time.perf_counter()
        self.steps.setdefault(iid, {}).setdefault(
            str(inst.task_state) if inst.task_state else inst.status, now)
        if inst.status in ("ACTIVE", "ERROR"):
            self._seen[iid] = (now, inst)
            waiter = self._waiting.pop(iid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(self._seen[iid])

    async def wait(self, iid: str) -> tuple[float, Instance]:
        if iid in self._seen:
            return self._seen[iid]
        self._waiting[iid] = asyncio.get_running_loop().create_future()
        return await self._waiting[iid]


async def _boot(client, arrivals: Arrivals, name: str, image_id: str, flavor: str,
                created: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    sid = (await client.post(f"{C}/servers", {"server": {
        "name": name, "imageRef": image_id, "flavorRef": flavor}}))["server"]["id"]
    arrivals.steps.setdefault(sid, {})["answered"] = time.perf_counter()
    created.append(sid)
    at, inst = await arrivals.wait(sid)
    assert inst.status == "ACTIVE", inst.fault
    return at - t0, sid


@dataclass(frozen=True)
class RawBoot:
    """One guest of the raw side: its overlay to make on `base`, then its domain XML."""

    xml: str
    overlay: Path
    base: Path
    base_format: str
    size: int


def _bursts() -> tuple[int, ...]:
    return tuple(int(n) for n in os.environ.get("MONOSTACK_BENCH_BOOT_BURSTS", "10,20").split(",")
                 if n.strip())


def _burst_rounds() -> int:
    return max(1, int(os.environ.get("MONOSTACK_BENCH_BOOT_BURST_ROUNDS", "3")))


#: the API side's steps in the order a build reaches them (task_state as first stored, or the
#: status it ended in); "answered" is when POST /servers returned
API_STEPS = ("scheduling", "answered", "networking", "block_device_mapping", "spawning", "ACTIVE")
RAW_STEPS = ("overlay", "defined", "running")


def _step_medians(offsets: list[dict[str, float]], order: tuple[str, ...]) -> dict[str, float]:
    """Per step, the median over the guests of when it was reached, in ms from the burst's
    start."""
    out = {}
    for step in order:
        seen = sorted(o[step] for o in offsets if step in o)
        if seen:
            out[step] = round(seen[len(seen) // 2] * 1000, 1)
    return out


async def _api_burst(client, arrivals: Arrivals, n: int, label: str, image_id: str,
                     flavor: str, created: list[str], *, poll: bool = False
                     ) -> tuple[float, list[str], list[float], list[dict[str, float]]]:
    """n concurrent boots through the API: the wall time until the last is ACTIVE, the
    servers, the latencies of GET /servers polled meanwhile (`poll`) and each boot's steps
    (s from the start)."""
    polls: list[float] = []
    burst = asyncio.Event()
    poller = asyncio.create_task(_poll_servers(client, burst, polls)) if poll else None
    t0 = time.perf_counter()
    many = await asyncio.gather(*(_boot(client, arrivals, f"{label}-{i}", image_id, flavor,
                                        created) for i in range(n)))
    total = time.perf_counter() - t0
    burst.set()
    if poller is not None:
        await poller
    sids = [sid for _, sid in many]
    steps = [{k: t - t0 for k, t in arrivals.steps.get(sid, {}).items()} for sid in sids]
    return total, sids, polls, steps


async def _measure(base: Path, uri: str, image: Path | None, rounds: int) -> dict:
    extra = {"compute": {"libvirt_uri": uri, "instances_dir": str(base / "inst"),
                         "reserved_host_memory_mb": 0, "cpu_allocation_ratio": 16.0},
             "storage": {"images_dir": str(base / "images"),
                         "volumes_dir": str(base / "volumes")}}
    _, config = write_config(base / "daemon", components=CONFIG_COMPONENTS, extra=extra)
    async with InProcessDaemon(config, components=COMPONENTS) as daemon:
        comps = daemon.appliance.ctx.components
        manager = comps.compute.manager
        arrivals = Arrivals(daemon.appliance.ctx.store)
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
            source = await manager.build.boot_image(image_id, pid)  # the file our overlays use
            tag = uuid.uuid4().hex[:8]  # domain names no other bench run on this host uses

            def twin(sid: str, label: str) -> RawBoot:
                """Our instance `sid`'s domain XML under a new name and uuid, on an overlay of
                its own (made by the raw side's thread): what a raw libvirt user starts for
                the same guest."""
                inst = manager.instances.require(sid)
                spec = manager.domain_spec(inst)
                assert not spec.nics and len(spec.disks) == 1, "both sides boot one disk only"
                d = base / "raw" / f"{tag}-{label}"
                d.mkdir(parents=True)
                d.chmod(0o755)
                twin = replace(spec, uuid=str(uuid.uuid4()), name=f"bench-raw-{tag}-{label}",
                               metadata={}, disks=[replace(spec.disks[0], path=str(d / "disk"))],
                               console_log_path=(str(d / "console.log")
                                                 if spec.console_log_path else None))
                size = max(int(inst.flavor.disk) << 30, source.virtual_size or 0)
                return RawBoot(build_domain_xml(twin, str(manager.driver.domain_type)),
                               d / "disk", source.path, source.disk_format, size)

            api, raw = [], []
            # one guest at a time on a quiet host, in turns: ours then raw, then raw (the twin
            # of the previous round's guest) then ours, so neither side always boots on the
            # host the other just left; the median of each side
            spare: RawBoot | None = None
            for i in range(rounds):
                if spare is not None:
                    raw.append((await asyncio.to_thread(_raw_boot_many, uri, [spare]))[0])
                    spare = None
                t, sid = await _boot(client, arrivals, f"b{i}", image_id, f, created)
                api.append(t)
                guest = twin(sid, str(i)) if len(raw) < len(api) else None
                if guest is not None and i + 1 < rounds:
                    spare = twin(sid, f"{i}-next")
                await manager.delete(sid)
                await manager.wait_idle()
                if guest is not None:
                    raw.append((await asyncio.to_thread(_raw_boot_many, uri, [guest]))[0])
            one = sorted(api)[len(api) // 2]
            totals, concurrent = {}, {}
            # each burst size in rounds, the two sides taking turns going first as for one
            # boot (ours then raw, raw then ours, …): one burst of 10 TCG guests took
            # 1.7-2.5 s from run to run on this shared host, more than the ratio's margin;
            # the median of each side
            # GET /servers is polled in a burst of its own: its requests (some 75 a second)
            # took CPU from the guests on the API side only, which the raw side never pays
            rounds_n = _burst_rounds()
            for n in _bursts():
                api_runs: list[float] = []
                raw_runs: list[float] = []
                api_steps: list[dict[str, float]] = []
                raw_steps: list[dict[str, float]] = []
                spares: list[RawBoot] | None = None
                for r in range(rounds_n):
                    if spares is not None:  # raw first: the twins of the last round's guests
                        t, st = await asyncio.to_thread(_raw_boot_many, uri, spares)
                        raw_runs.append(t)
                        raw_steps += st
                        spares = None
                    t, sids, _, st = await _api_burst(client, arrivals, n, f"c{n}-{r}",
                                                      image_id, f, created)
                    api_runs.append(t)
                    api_steps += st
                    guests = None
                    if len(raw_runs) < len(api_runs):
                        guests = [twin(sid, f"c{n}-{r}-{i}") for i, sid in enumerate(sids)]
                        if r + 1 < rounds_n:
                            spares = [twin(sid, f"c{n}-{r}-{i}-next")
                                      for i, sid in enumerate(sids)]
                    for sid in sids:
                        await manager.delete(sid)
                    await manager.wait_idle()
                    if guests is not None:
                        t, st = await asyncio.to_thread(_raw_boot_many, uri, guests)
                        raw_runs.append(t)
                        raw_steps += st
                polled, sids, polls, _ = await _api_burst(client, arrivals, n, f"p{n}",
                                                          image_id, f, created, poll=True)
                for sid in sids:
                    await manager.delete(sid)
                await manager.wait_idle()
                api_total = sorted(api_runs)[len(api_runs) // 2]
                raw_total = sorted(raw_runs)[len(raw_runs) // 2]
                totals[n] = api_total
                concurrent[n] = {"api_total_s": api_total, "raw_total_s": raw_total,
                                 "ratio_api_vs_raw": api_total / raw_total,
                                 "api_rounds_s": api_runs, "raw_rounds_s": raw_runs,
                                 "steps_ms_from_start": {
                                     "api": _step_medians(api_steps, API_STEPS),
                                     "raw": _step_medians(raw_steps, RAW_STEPS)},
                                 "api_total_polled_s": polled,
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
                     "ratio_api_vs_raw": api_med / raw_med,
                     "api_rounds_s": api, "raw_rounds_s": raw}
    out = {"api_to_running_s": api_med, "raw_to_running_s": raw_med,
           "ratio_api_vs_raw": api_med / raw_med, "one_boot_s": one,
           "raw_side": "per guest: qemu-img create of a qcow2 overlay on the same Glance file, "
                       "defineXML + create, its own thread and connection",
           "concurrent": dict(sorted(concurrent.items()))}
    if 20 in concurrent:
        out["burst_get_servers_p99_s"] = concurrent[20]["get_servers_p99_s"]
    for n, key in ((10, "ten"), (20, "twenty")):
        if n in totals:
            out[f"{key}_concurrent_total_s"] = totals[n]
            out[f"ratio_{n}_concurrent_vs_1"] = totals[n] / one
    return out


def _make_overlay(guest: RawBoot) -> None:
    """What a raw libvirt user does for a guest's disk: a qcow2 overlay on the image, formats
    named (qemu never probes)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(guest.base),
                    "-F", guest.base_format, str(guest.overlay), str(guest.size)],
                   check=True, capture_output=True)
    os.chmod(guest.overlay, 0o644)


def _raw_boot_many(uri: str, guests: list[RawBoot]) -> tuple[float, list[dict[str, float]]]:
    """The same guests started by one thread each, each on its own connection (libvirt's
    client releases the GIL in calls): wall time until every overlay is made and every
    domain defined and created, and when each guest reached each step (s from the start).
    Every domain is destroyed and undefined afterwards."""
    conns = [libvirt.open(uri) for _ in guests]
    doms: list = [None] * len(guests)
    steps: list[dict[str, float]] = [{} for _ in guests]
    errors: list[BaseException] = []
    start = threading.Barrier(len(guests) + 1)

    def one(i: int) -> None:
        start.wait()
        try:
            _make_overlay(guests[i])
            steps[i]["overlay"] = time.perf_counter()
            doms[i] = conns[i].defineXML(guests[i].xml)
            steps[i]["defined"] = time.perf_counter()
            doms[i].create()
            steps[i]["running"] = time.perf_counter()
        except BaseException as exc:  # reported below, after every domain is cleaned up
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(guests))]
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
                for gone in (dom.destroy, dom.undefine):
                    try:
                        gone()
                    except libvirt.libvirtError:
                        pass
        for conn in conns:
            conn.close()
    if errors:
        raise errors[0]
    return elapsed, [{k: t - t0 for k, t in st.items()} for st in steps]


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
    print(f"   [{label}] API→running {r['api_to_running_s'] * 1000:.1f} ms, raw overlay + "
          f"define + create {r['raw_to_running_s'] * 1000:.1f} ms → ratio "
          f"{r['ratio_api_vs_raw']:.2f}")
    for n, key in ((10, "ten"), (20, "twenty")):
        if f"{key}_concurrent_total_s" in r:
            print(f"   [{label}] {n} concurrent boots {r[f'{key}_concurrent_total_s'] * 1000:.0f} "
                  f"ms vs one {r['one_boot_s'] * 1000:.0f} ms → ratio "
                  f"{r[f'ratio_{n}_concurrent_vs_1']:.2f}")
    for n, c in r["concurrent"].items():
        line = (f"   [{label}] {n:>2} boots: API {c['api_total_s'] * 1000:.0f} ms, raw libvirt "
                f"({n} threads) {c['raw_total_s'] * 1000:.0f} ms → ratio {c['ratio_api_vs_raw']:.2f}")
        if "api_rounds_s" in c and n != 1:
            line += (f" (medians of {len(c['api_rounds_s'])} / {len(c['raw_rounds_s'])} "
                     f"rounds)")
        if c.get("get_servers_p99_s") is not None:
            line += (f"; GET /servers during another API burst "
                     f"({c['api_total_polled_s'] * 1000:.0f} ms) p50 {c['get_servers_p50_s'] * 1000:.1f} ms, "
                     f"p99 {c['get_servers_p99_s'] * 1000:.1f} ms ({c['get_servers_samples']})")
        print(line)
        if "steps_ms_from_start" in c:
            for side, st in c["steps_ms_from_start"].items():
                print(f"   [{label}] {n:>2} boots, {side} steps (median ms from start): "
                      + ", ".join(f"{k} {v:.0f}" for k, v in st.items()))


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
                                               ensure_guest_image().qcow2, rounds=9))
            _print("qemu:///system TCG", out["qemu"])
        finally:
            shutil.rmtree(root, ignore_errors=True)
    else:
        print("   [qemu:///system] not reachable (or MONOSTACK_BENCH_REAL=0): real TCG skipped")
    return out


if __name__ == "__main__":
    run()
