"""DISCOVER→ACK latency and leases/s: monostack's DHCP server against dnsmasq, side by side.

Run as root from the repository root:  python tests/bench/bench_dhcp.py [--leases 2000]

Setup (all in namespaces this script creates and removes): identical lanes, one per server,
each a data-plane namespace with one bridge (gateway 10.77.0.1/16) and a client namespace whose
veth is plugged into that bridge. Each server runs in its own process inside its lane's
data-plane namespace with the same N MAC→IP reservations (ours: `DhcpServer` with a dict lookup
and a no-op synchronous lease sink, the daemon's sink being a queue put; dnsmasq:
--dhcp-hostsfile, --leasefile-ro, --no-ping, so neither writes leases to disk). The client is a
small asyncio program speaking DHCP over a UDP socket on port 68 in the client namespace, using
a different chaddr per lease and the broadcast flag so every reply reaches it.

A third lane, monostack-daemon, runs our server wired as the daemon wires it: reservations built
by the network manager from port records in a real store, and its lease sink, whose writer makes
every lease record and event durable (fsync) on the same event loop. It shows what the durable
lease records cost (its latency is measured alone, after the paired samples, since its writer
works on after each exchange); dnsmasq stays the reference.

Latency: sequential full exchanges (DISCOVER→OFFER→REQUEST→ACK), the servers' exchanges
alternating one by one, so load from other work on the shared 2-core host falls on all alike.
Throughput: N exchanges with up to --window in flight, one server at a time. Each metric
reports its best of --rounds rounds (noise only ever makes a run slower). The servers' own CPU
per exchange (user+system, from /proc) is reported beside the wall-clock numbers.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from ipaddress import IPv4Address
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from appliance.dhcp.packet import (  # noqa: E402
    FLAG_BROADCAST,
    DhcpPacket,
    MessageType,
    Op,
    Option,
    encode,
    ip_bytes,
    parse,
)
from appliance.dhcp.server import DhcpServer, Reservation  # noqa: E402
from appliance.network.netlink import DataPlane  # noqa: E402
from appliance.network.nsexec import preexec_setns  # noqa: E402

GATEWAY = "10.77.0.1"
NETWORK = "10.77.0.0/16"
CLIENT_ADDR = "10.77.255.250/16"


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def reservation_table(count: int) -> dict[str, str]:
    """mac -> ip for `count` fake clients (deterministic, so both servers get the same table)."""
    table = {}
    for i in range(count):
        mac = "02:00:%02x:%02x:%02x:%02x" % ((i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)
        table[mac] = str(IPv4Address(GATEWAY) + 10 + i)
    return table


# ---- the servers -----------------------------------------------------------------------------


async def serve_monostack(namespace: str, bridge: str, count: int) -> None:
    """Child-process mode: run our server until SIGTERM."""
    res = {
        mac: Reservation(ip=ip, network=NETWORK, router=GATEWAY, dns_servers=(GATEWAY,), domain="bench.test",
                         mtu=1500, lease_time=3600)
        for mac, ip in reservation_table(count).items()
    }
    dp = DataPlane(namespace)

    def sink(event) -> None:  # synchronous, like the daemon's (a queue put)
        return None

    server = DhcpServer(bridge, GATEWAY, res.get, sink, socket_factory=lambda: dp.socket_in_namespace(bridge))
    await server.start()
    gc.collect()
    gc.freeze()  # as the daemon does once settled (appliance/service.py)
    print("READY", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()
    await dp.close()
    print(f"STATS {server.stats}", flush=True)


async def serve_monostack_daemon_edges(namespace: str, bridge: str, count: int) -> None:
    """Child-process mode: our server wired as the daemon wires it — reservations built by the
    network manager from port records in a real store, the manager's lookup, and its lease
    sink, whose writer commits every lease record and event durably (fsync) on this loop."""
    from appliance.events import EventBus
    from appliance.network.manager import NetworkManager
    from appliance.network.records import Port
    from appliance.quota import Quotas
    from appliance.state import Store
    from tests.daemon import write_config

    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="bench-dhcp-") as tmp:
        _, config = write_config(Path(tmp), components=["network"])
        store = Store(config.state_dir)
        await store.open()
        fsyncs: list[float] = []
        store.on_fsync = fsyncs.append
        # the bench made the namespace and bridge
        manager = NetworkManager(store, config.network, Quotas(), EventBus(store),
                                 dataplane=False)
        await manager.start()
        net = await manager.create_network("bench", name="bench")
        subnet = await manager.create_subnet("bench", net.id, cidr=NETWORK, gateway_ip=GATEWAY,
                                             dns_nameservers=[GATEWAY])
        # The ports in one transaction (through create_port, 2,000 would take half a minute).
        await store.commit([manager.ports.put_op(Port(
            id=str(uuid.uuid4()), name="", network_id=net.id, project_id="bench", mac_address=mac,
            fixed_ips=[{"subnet_id": subnet.id, "ip_address": ip}]))
            for mac, ip in reservation_table(count).items()])
        await manager.sync()  # without a data plane: the reservations only
        dp = DataPlane(namespace)
        sync = manager.dataplane
        server = DhcpServer(net.bridge, GATEWAY, lambda mac: sync._lookup(net.bridge, mac), sync._lease_sink,
                            socket_factory=lambda: dp.socket_in_namespace(bridge))
        await server.start()
        gc.collect()
        gc.freeze()
        print("READY", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop()
        await dp.close()
        await asyncio.wait_for(sync._lease_queue.join(), 30)
        progress(f"  monostack-daemon: {len(manager.leases.list())} lease records durable, "
                 f"{server.stats['acks']} ACKs, {len(fsyncs)} fsyncs, "
                 f"{sync.lease_events_dropped} lease events dropped")
        await manager.stop()
        await store.close()


async def start_monostack(namespace: str, bridge: str, count: int,
                          mode: str = "--serve") -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, mode, namespace, bridge, str(count),
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.strip() == b"READY", line
    return proc


async def start_dnsmasq(namespace: str, bridge: str, count: int, workdir: Path) -> asyncio.subprocess.Process:
    hosts = workdir / "hosts"
    hosts.write_text("".join(f"{mac},{ip}\n" for mac, ip in reservation_table(count).items()))
    argv = [
        "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", f"--interface={bridge}",
        "--bind-interfaces", f"--dhcp-range={IPv4Address(GATEWAY) + 1},static,255.255.0.0,3600",
        f"--dhcp-hostsfile={hosts}", "--no-ping", "--leasefile-ro",
        "--dhcp-lease-max=1000000",  # the default (1000) would refuse leases mid-run
        "--dhcp-authoritative",
        f"--dhcp-option=option:router,{GATEWAY}", f"--dhcp-option=option:dns-server,{GATEWAY}",
        "--dhcp-option=option:domain-name,bench.test", "--dhcp-option=option:mtu,1500",
        "--quiet-dhcp", "--log-facility=/dev/null", f"--pid-file={workdir / 'pid'}",
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, preexec_fn=preexec_setns(namespace), stderr=asyncio.subprocess.DEVNULL
    )
    await asyncio.sleep(1.0)  # dnsmasq has no readiness signal in --no-daemon mode
    assert proc.returncode is None, "dnsmasq exited"
    return proc


def process_cpu_s(pid: int) -> float:
    """User+system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the client ------------------------------------------------------------------------------


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[tuple[int, int], asyncio.Future] = {}
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            reply = parse(data)
            key = (reply.xid, reply.message_type)
        except Exception:
            return
        fut = self.waiting.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    async def ask(self, packet: DhcpPacket, expect: MessageType, timeout: float) -> DhcpPacket:
        fut = asyncio.get_running_loop().create_future()
        self.waiting[(packet.xid, expect)] = fut
        self.transport.sendto(encode(packet), ("255.255.255.255", 67))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.waiting.pop((packet.xid, expect), None)

    async def lease(self, mac: str, timeout: float = 2.0) -> float:
        """One full exchange; returns its duration in seconds."""
        chaddr = bytes(int(p, 16) for p in mac.split(":"))
        xid = random.getrandbits(32)
        start = time.perf_counter()
        discover = DhcpPacket(op=Op.BOOTREQUEST, xid=xid, chaddr=chaddr, flags=FLAG_BROADCAST)
        discover.options[Option.MESSAGE_TYPE] = bytes((MessageType.DISCOVER,))
        discover.options[Option.PARAMETER_REQUEST_LIST] = bytes((1, 3, 6, 15, 26))
        offer = await self.ask(discover, MessageType.OFFER, timeout)
        request = DhcpPacket(op=Op.BOOTREQUEST, xid=xid, chaddr=chaddr, flags=FLAG_BROADCAST)
        request.options[Option.MESSAGE_TYPE] = bytes((MessageType.REQUEST,))
        request.options[Option.REQUESTED_IP] = ip_bytes(offer.yiaddr)
        request.options[Option.SERVER_ID] = offer.options[Option.SERVER_ID]
        request.options[Option.PARAMETER_REQUEST_LIST] = bytes((1, 3, 6, 15, 26))
        await self.ask(request, MessageType.ACK, timeout)
        return time.perf_counter() - start


async def warm_up(client: Client, macs: list[str]) -> None:
    for mac in macs[:20]:  # ARP, caches
        await client.lease(mac)


async def throughput(client: Client, macs: list[str], window: int) -> dict[str, float]:
    """`len(macs)` exchanges, at most `window` in flight: a burst bounded in count and time."""
    sem = asyncio.Semaphore(window)
    failures = 0

    async def one(mac: str) -> None:
        nonlocal failures
        async with sem:
            try:
                await client.lease(mac, timeout=5.0)
            except asyncio.TimeoutError:
                failures += 1

    start = time.perf_counter()
    await asyncio.gather(*(one(mac) for mac in macs))
    elapsed = time.perf_counter() - start
    return {"leases_per_s": (len(macs) - failures) / elapsed, "failures": failures}


def latency_summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "median_ms": statistics.median(samples) * 1000,
        "p95_ms": samples[int(len(samples) * 0.95) - 1] * 1000,
        "p99_ms": samples[int(len(samples) * 0.99) - 1] * 1000,
    }


class Lane:
    """One server's world: a data-plane namespace with the bridge (gateway 10.77.0.1/16) and a
    client namespace whose veth is plugged into it. Both lanes are built the same way."""

    def __init__(self, tag: str, letter: str) -> None:
        self.dp = DataPlane(f"msbench{letter}-{tag}")
        self.cl = DataPlane(f"msbenchc{letter}-{tag}")
        self.bridge = f"br{letter}{tag}"
        self.veth = f"v{letter}{tag}"
        self.client: Client | None = None

    async def build(self) -> None:
        await self.dp.ensure_namespace()
        await self.cl.ensure_namespace()
        await self.dp.ensure_bridge(self.bridge, 1500, f"{GATEWAY}/16")
        await self.dp.make_veth_pair(self.bridge, self.veth, self.cl.namespace, "eth0")
        await self.cl.add_address("eth0", CLIENT_ADDR)
        sock = await self.cl.socket_in_namespace("eth0", port=68)
        _, self.client = await asyncio.get_running_loop().create_datagram_endpoint(Client, sock=sock)

    async def remove(self) -> None:
        if self.client is not None and self.client.transport is not None:
            self.client.transport.close()
        try:
            await self.cl.delete_namespace()
        finally:
            await self.dp.delete_namespace()


def best_of(prev: dict | None, r: dict) -> dict:
    """Best of rounds per metric: the machine is shared, noise only ever slows a run."""
    if prev is None:
        return r
    out = {key: min(prev[key], r[key]) for key in ("median_ms", "p95_ms", "p99_ms", "server_cpu_us_per_lease")}
    out["leases_per_s"] = max(prev["leases_per_s"], r["leases_per_s"])
    out["failures"] = prev["failures"] + r["failures"]
    return out


async def main(args) -> dict:
    tag = uuid.uuid4().hex[:6]
    names = list(args.order)
    lanes = {name: Lane(tag, letter) for name, letter in zip(names, "abc")}
    macs = list(reservation_table(args.leases))
    results: dict[str, dict] = {}
    try:
        for lane in lanes.values():
            await lane.build()
        with tempfile.TemporaryDirectory() as tmp:
            for round_no in range(args.rounds):
                progress(f"round {round_no + 1}: starting both servers")
                procs = {}
                try:
                    for name, lane in lanes.items():
                        if name == "monostack":
                            procs[name] = await start_monostack(lane.dp.namespace, lane.bridge, args.leases)
                        elif name == "monostack-daemon":
                            procs[name] = await start_monostack(lane.dp.namespace, lane.bridge, args.leases,
                                                                "--serve-daemon-edges")
                        else:
                            procs[name] = await start_dnsmasq(lane.dp.namespace, lane.bridge, args.leases,
                                                              Path(tmp))
                    cpu_before = {name: process_cpu_s(proc.pid) for name, proc in procs.items()}
                    for name in names:
                        await warm_up(lanes[name].client, macs)
                    # Latency: the two servers' exchanges alternate one by one (which goes first
                    # alternates too), so whatever else the shared host runs meanwhile falls on
                    # both alike: samples paired in time, not rounds minutes apart.
                    # The daemon-edges lane goes alone, after: its lease writer keeps working
                    # after each of its exchanges and would slow whichever lane came next.
                    paired = [name for name in names if name != "monostack-daemon"]
                    alone = [name for name in names if name == "monostack-daemon"]
                    samples: dict[str, list[float]] = {name: [] for name in names}
                    for i, mac in enumerate(macs[:args.latency]):
                        for name in paired[i % len(paired):] + paired[:i % len(paired)]:
                            samples[name].append(await lanes[name].client.lease(mac))
                    for name in alone:
                        samples[name] = [await lanes[name].client.lease(mac) for mac in macs[:args.latency]]
                    # Throughput: one server's burst at a time (both at once would share the
                    # 2 CPUs), the order alternating by round, the daemon-edges lane last.
                    bursts = {}
                    k = round_no % len(paired)
                    for name in paired[k:] + paired[:k] + alone:
                        bursts[name] = await throughput(lanes[name].client, macs, args.window)
                    exchanges = len(macs) + min(args.latency, len(macs)) + min(20, len(macs))
                    for name, proc in procs.items():
                        r = latency_summary(samples[name]) | bursts[name]
                        # The server's own CPU (user+sys) per exchange: what the wall-clock
                        # numbers cannot show on a shared host, where they include waiting.
                        r["server_cpu_us_per_lease"] = (process_cpu_s(proc.pid) - cpu_before[name]) / exchanges * 1e6
                        results[name] = best_of(results.get(name), r)
                finally:
                    for proc in procs.values():
                        proc.terminate()
                        await proc.wait()
    finally:
        for lane in lanes.values():
            await lane.remove()

    ours, theirs = results["monostack"], results["dnsmasq"]
    print(f"\nDHCP bench: {args.leases} leases, window {args.window}, latency over {args.latency} sequential exchanges")
    print(f"{'metric':<28}{'monostack':>12}{'dnsmasq':>12}{'ours/dnsmasq':>14}")
    for key, label in (("median_ms", "DISCOVER→ACK median (ms)"), ("p95_ms", "DISCOVER→ACK p95 (ms)"),
                       ("p99_ms", "DISCOVER→ACK p99 (ms)"),
                       ("leases_per_s", "leases per second")):
        print(f"{label:<28}{ours[key]:>12.3f}{theirs[key]:>12.3f}{ours[key] / theirs[key]:>14.2f}")
    key, label = "server_cpu_us_per_lease", "server CPU per lease (us)"
    print(f"{label:<28}{ours[key]:>12.1f}{theirs[key]:>12.1f}{ours[key] / max(theirs[key], 1e-9):>14.2f}")
    print(f"{'failures (timeouts)':<28}{ours['failures']:>12}{theirs['failures']:>12}")
    daemon = results.get("monostack-daemon")
    if daemon is not None:
        print("monostack with the daemon's edges (store-backed reservations, durable lease writer):")
        for key, label in (("median_ms", "DISCOVER→ACK median (ms)"), ("p99_ms", "DISCOVER→ACK p99 (ms)"),
                           ("leases_per_s", "leases per second"), ("server_cpu_us_per_lease", "server CPU per lease (us)")):
            print(f"{label:<28}{daemon[key]:>12.3f}{theirs[key]:>12.3f}{daemon[key] / max(theirs[key], 1e-9):>14.2f}")
    return results


def run() -> dict:
    """`python -m tests.bench`: the defaults below, in namespaces of its own (root only)."""
    if os.geteuid() != 0:
        print("   needs root (network namespaces): skipped")
        return {"skipped": True}
    return asyncio.run(main(_parser().parse_args([])))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=2000)
    parser.add_argument("--latency", type=int, default=300, help="sequential exchanges for latency")
    parser.add_argument("--window", type=int, default=32, help="exchanges in flight for throughput")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--order", nargs="+", default=["monostack", "dnsmasq", "monostack-daemon"],
                        help="servers, each in its own lane; monostack-daemon is ours with the "
                             "daemon's store-backed reservations and durable lease writer")
    return parser


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--serve", "--serve-daemon-edges"):
        serve = serve_monostack if sys.argv[1] == "--serve" else serve_monostack_daemon_edges
        asyncio.run(serve(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        sys.exit(0)
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    # `timeout`/kill -TERM: unwind through the finally blocks so the namespaces go away.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    asyncio.run(main(_parser().parse_args()))
