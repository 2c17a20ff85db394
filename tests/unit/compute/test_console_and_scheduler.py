"""Console tokens (single use, short-lived), console fan-out (one writer), scheduler filters."""
import asyncio

import pytest

from appliance.compute.console import ConsoleProxy, ConsoleTokens
from appliance.compute.driver import HostInfo, HostNumaCell, HypervisorType
from appliance.compute.records import FlavorSnapshot, Instance, TaskState, VmState, derive_status
from appliance.compute.scheduler import Claim, RequestSpec, Scheduler, disk_gb_of
from appliance.config import ComputeConfig
from appliance.errors import NoValidHost, Unauthorized


def test_console_token_single_use_and_expiry():
    tokens = ConsoleTokens(ttl=60)
    t = tokens.issue("i1", "p1")
    assert tokens.consume(t).instance_id == "i1"
    with pytest.raises(Unauthorized):
        tokens.consume(t)
    short = ConsoleTokens(ttl=-1)
    t2 = short.issue("i1", "p1")
    with pytest.raises(Unauthorized):
        short.consume(t2)
    assert t not in str(tokens._grants)  # only hashes are kept


class FakeStream:
    def __init__(self):
        self.q: asyncio.Queue[bytes] = asyncio.Queue()
        self.written: list[bytes] = []
        self.closed = False

    async def read(self):
        return await self.q.get()

    async def write(self, data):
        self.written.append(data)

    async def close(self):
        self.closed = True


async def test_console_fan_out_one_writer_and_close_with_last_watcher():
    streams: list[FakeStream] = []

    async def open_stream(iid):
        streams.append(FakeStream())
        return streams[-1]

    proxy = ConsoleProxy(open_stream)
    hub = proxy.hub("i1")
    a = await hub.attach("alice")
    b = await hub.attach("bob")
    assert len(streams) == 1  # one driver stream for every watcher
    notice = await b.read()  # the second one is told who holds it, and how to take over
    assert b"held by alice" in notice and b"read-only" in notice and b"takeover" in notice
    streams[0].q.put_nowait(b"login: ")
    assert await a.read() == b"login: " and await b.read() == b"login: "
    assert await hub.write(a, b"root\n") is True
    assert await hub.write(b, b"evil\n") is False
    assert streams[0].written == [b"root\n"]
    await hub.detach(a)
    assert b"alice left: you hold this console" in await b.read()
    assert await hub.write(b, b"now me\n") is True  # next oldest becomes the writer
    await hub.detach(b)
    assert streams[0].closed and "i1" not in proxy.hubs


async def test_console_read_only_watcher_takes_over_by_typing_takeover():
    streams: list[FakeStream] = []

    async def open_stream(iid):
        streams.append(FakeStream())
        return streams[-1]

    hub = ConsoleProxy(open_stream).hub("i1")
    a = await hub.attach("alice")
    b = await hub.attach("bob")
    await b.read()  # the "held by alice" notice
    for chunk in (b"ls\r", b"take", b"over", b"\r"):  # typed key by key, as terminals do
        assert await hub.write(b, chunk) is False
    assert hub.is_writer(b) and not hub.is_writer(a)
    assert b"bob took over" in await a.read() and b"You hold this console" in await b.read()
    assert await hub.write(a, b"takeover\r") is False  # alice is read-only now...
    assert hub.is_writer(a)  # ...and takes it back the same way
    assert await hub.write(b, b"x") is False and await hub.write(a, b"y") is True
    assert streams[0].written == [b"y"]  # no read-only key ever reached the guest
    await hub.detach(a)
    await hub.detach(b)


def _scheduler(**cfg):
    info = HostInfo(hostname="h", arch="x86_64", cpus=4, memory_mib=4096,
                    numa_cells=(HostNumaCell(0, (0, 1), 2048), HostNumaCell(1, (2, 3), 2048)),
                    hypervisor_type=HypervisorType.QEMU, libvirt_version="9.0.0",
                    hypervisor_version="8.0.0")
    s = Scheduler(ComputeConfig(**{"reserved_host_memory_mb": 0, **cfg}), info, "/tmp")
    s.disk_gb = 100
    return s


def _spec(**kw):
    flavor = FlavorSnapshot(**{"id": "f", "name": "f", "vcpus": 1, "ram": 512, "disk": 1,
                               **kw.pop("flavor", {})})
    return RequestSpec.for_flavor("x", flavor, **kw)


async def test_configured_disk_overrides_the_filesystem_size(tmp_path):
    measured = _scheduler()
    measured.instances_dir = tmp_path
    await measured.refresh_disk()
    fixed = _scheduler(disk_gb=7)
    await fixed.refresh_disk()
    assert fixed.disk_gb == 7 and measured.disk_gb == disk_gb_of(tmp_path) > 0
    with pytest.raises(NoValidHost, match=r"DiskFilter: 8 GiB asked, 7 free"):
        fixed.select(_spec(flavor={"disk": 8}))


def test_filters_name_themselves_and_say_why():
    s = _scheduler()
    with pytest.raises(NoValidHost, match=r"RamFilter: 8192 MiB asked, 4096 free"):
        s.select(_spec(flavor={"ram": 8192}))
    with pytest.raises(NoValidHost, match=r"VcpuFilter: 17 vCPUs asked, 16 free"):
        s.select(_spec(flavor={"vcpus": 17}))
    with pytest.raises(NoValidHost, match=r"DiskFilter: 101 GiB asked, 100 free"):
        s.select(_spec(flavor={"disk": 101}))
    with pytest.raises(NoValidHost, match="ImagePropertiesFilter: image architecture aarch64"):
        s.select(_spec(image_properties={"architecture": "aarch64"}))
    s.select(_spec(image_properties={"architecture": "amd64", "hypervisor_type": "qemu"}))
    with pytest.raises(NoValidHost, match="ImagePropertiesFilter: image needs min_ram"):
        s.select(_spec(image_min_ram=1024))
    with pytest.raises(NoValidHost, match="ExtraSpecsFilter: capabilities:arch"):
        s.select(_spec(flavor={"extra_specs": {"capabilities:arch": "ppc64le"}}))


async def test_claims_are_atomic_and_pins_never_double_booked():
    s = _scheduler()
    dedicated = {"vcpus": 2, "ram": 256, "extra_specs": {"hw:cpu_policy": "dedicated"}}
    held = []

    def persist_for(i):
        async def persist(claim: Claim):
            await asyncio.sleep(0)  # a store commit yields to the loop
            inst = Instance(id=f"i{i}", name="n", project_id="p", user_id="u", flavor=FlavorSnapshot("f", "f", 1, 64, 1),
                            claim=claim)
            s.sync(inst)
            held.append(claim)
        return persist

    results = await asyncio.gather(*(s.claim(_spec(flavor=dedicated), persist_for(i))
                                     for i in range(3)), return_exceptions=True)
    assert sum(isinstance(r, Claim) for r in results) == 2
    assert isinstance([r for r in results if not isinstance(r, Claim)][0], NoValidHost)
    pcpus = [p for c in held for p in c.pcpus]
    assert sorted(pcpus) == [0, 1, 2, 3]
    s.forget("i0")
    assert s.claim_count() == 1


async def test_a_claim_being_committed_counts_and_one_whose_commit_failed_does_not():
    """Claims are decided under the lock but committed outside it (their commits share
    fsyncs): a decision made while another claim's commit is in flight counts that claim."""
    s = _scheduler(cpu_allocation_ratio=1.0)  # 4 vCPUs
    three = {"vcpus": 3}
    committing, commit = asyncio.Event(), asyncio.Event()

    async def slow(claim: Claim):
        committing.set()
        await commit.wait()
        s.sync(Instance(id="a", name="n", project_id="p", user_id="u",
                        flavor=FlavorSnapshot("f", "f", 3, 512, 1), claim=claim))

    def spec(iid: str) -> RequestSpec:
        return RequestSpec.for_flavor(iid, FlavorSnapshot(id="f", name="f", vcpus=3, ram=512,
                                                          disk=1))

    first = asyncio.create_task(s.claim(spec("a"), slow))
    await committing.wait()
    assert s.host_state().used_vcpus == 3  # not in any record yet, but counted
    with pytest.raises(NoValidHost, match="VcpuFilter"):
        await s.claim(spec("b"), slow)
    commit.set()
    await first
    assert s.host_state().used_vcpus == 3 and s.claim_count() == 1  # once, in its record

    async def refused(claim: Claim):
        raise OSError("disk full")

    s.forget("a")
    with pytest.raises(OSError):
        await s.claim(_spec(flavor=three), refused)
    assert s.host_state().used_vcpus == 0


def test_status_derivation_like_nova():
    assert derive_status(VmState.BUILDING, TaskState.SPAWNING) == "BUILD"
    assert derive_status(VmState.ACTIVE, TaskState.REBOOTING_HARD) == "HARD_REBOOT"
    assert derive_status(VmState.ACTIVE, TaskState.RESIZE_PREP) == "RESIZE"
    assert derive_status(VmState.RESIZED, None) == "VERIFY_RESIZE"
    assert derive_status(VmState.STOPPED, None) == "SHUTOFF"
    assert derive_status(VmState.ACTIVE, TaskState.POWERING_OFF) == "ACTIVE"


async def test_claims_of_a_burst_read_the_disk_size_side_by_side_not_in_turn(tmp_path,
                                                                             monkeypatch):
    """The disk's size is read in a thread before the claim lock: a burst of claims each
    waited there in turn for that hop (queued behind the store's fsyncs) before."""
    import threading

    from appliance.compute import scheduler as scheduler_module

    reading, release = [], threading.Event()

    def slow_disk_gb(path):
        reading.append(path)
        release.wait(10)
        return 100

    monkeypatch.setattr(scheduler_module, "disk_gb_of", slow_disk_gb)
    s = _scheduler()
    s.instances_dir = tmp_path

    async def persist(claim: Claim) -> None:
        await asyncio.sleep(0)

    claims = [asyncio.create_task(s.claim(_spec(), persist)) for _ in range(3)]
    try:
        async with asyncio.timeout(5):
            while len(reading) < 3:  # every claim is reading at once
                await asyncio.sleep(0.005)
    finally:
        release.set()
    assert all(isinstance(c, Claim) for c in await asyncio.gather(*claims))
    assert s.disk_gb == 100
