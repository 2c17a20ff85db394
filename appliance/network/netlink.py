"""The data plane: one network namespace holding every guest bridge, tap and DHCP socket.

This is the only module that imports pyroute2, so the one door to the kernel's network
configuration is here. Everything is netlink (no `ip` processes), and every `ensure_*` verb is
idempotent: a restarted daemon calls them again and reuses what already exists.

Why a namespace of its own: guest traffic, the DHCP listeners, NAT and filtering then never touch
the host's interfaces, routes or firewall, and one `delete_namespace()` removes all of it.

Why the taps move: libvirt's `<interface type='ethernet'><target dev='tapX'/>` creates the tap in
the root namespace at every domain start (and deletes it at stop), so after each start the
network manager calls `attach_tap()` to move it here and enslave it to its network's bridge.

pyroute2's `AsyncIPRoute` is natively asyncio, so netlink requests never block the event loop.
The few blocking steps (namespace creation forks a helper, socket creation inside the namespace
uses setns) run through `asyncio.to_thread`.
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from appliance.errors import Conflict, Invalid, MonostackError, NotFound


# pyroute2 is imported on first use, not with this module: its package imports ~160 modules
# (a third of a network daemon's start), and the network component imports it in a thread,
# off the event loop, while the API already answers (load_pyroute2).


class _NotLoaded(Exception):
    """Stands for pyroute2's NetlinkError until pyroute2 is imported; nothing raises it (every
    netlink call goes through `netns` or `AsyncIPRoute`, which import pyroute2 first)."""


NetlinkError: type[Exception] = _NotLoaded


def load_pyroute2() -> None:
    """Import pyroute2 (blocking: call it in a thread to keep the loop free)."""
    global NetlinkError
    if NetlinkError is _NotLoaded:
        import pyroute2.netns  # noqa: F401 - the package, its netns helpers
        from pyroute2.netlink.exceptions import NetlinkError as real
        NetlinkError = real


class _Netns:
    """pyroute2.netns, imported when first used."""

    def __getattr__(self, name: str) -> Any:
        load_pyroute2()
        import pyroute2.netns
        return getattr(pyroute2.netns, name)


netns: Any = _Netns()


def AsyncIPRoute(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - pyroute2's class, lazily
    load_pyroute2()
    from pyroute2 import AsyncIPRoute as cls
    return cls(*args, **kwargs)

# Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
IFNAMSIZ = 15
_IFF_UP = 0x1


@dataclass(frozen=True)
class BridgeInfo:
    """A bridge found in the data-plane namespace (for reconciliation against records)."""

    name: str
    index: int
    mtu: int
    up: bool
    addresses: tuple[str, ...] = ()  # IPv4 interfaces as "a.b.c.d/len"


@dataclass(frozen=True)
class PortInfo:
    """A link enslaved to a bridge in the data-plane namespace (a guest tap or a veth end)."""

    name: str
    index: int
    bridge: str
    mac: str
    mtu: int
    up: bool
    kind: str | None = None


def _check_ifname(name: str) -> None:
    if not name or len(name.encode()) > IFNAMSIZ or "/" in name or any(c.isspace() for c in name):
        raise Invalid(f"invalid interface name {name!r} (1..{IFNAMSIZ} bytes, no spaces or '/')")


def _netns_path(namespace: str) -> str:
    return os.path.join(netns.NETNS_RUN_DIR, namespace)


def _kind(msg) -> str | None:
    return msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")


def _setns_thread(namespace: str, fn):
    """Run `fn()` in a fresh OS thread that has joined `namespace`, and return its result.

    setns(CLONE_NEWNET) changes only the calling thread, so a throw-away thread keeps the event
    loop's thread (and the shared to_thread pool) in the root namespace no matter what fails.
    Sockets keep the namespace they were created in for their whole life.
    """
    result: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(_netns_path(namespace), os.O_RDONLY)
            try:
                netns.setns(fd, flags=0)
            finally:
                os.close(fd)
            result["value"] = fn()
        except BaseException as exc:  # handed back to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=run, name=f"setns-{namespace}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


class DataPlane:
    """Bridges and ports inside one named network namespace.

    Construct with the namespace name from config, call `await ensure_namespace()` once at start
    and `await close()` at stop. Only `delete_namespace()` ever removes the namespace.
    """

    def __init__(self, namespace: str) -> None:
        if not namespace or "/" in namespace or namespace in (".", ".."):
            raise Invalid(f"invalid namespace name {namespace!r}")
        self.namespace = namespace
        self._ns_ipr: AsyncIPRoute | None = None
        self._root_ipr: AsyncIPRoute | None = None
        self._lock = asyncio.Lock()

    # ---- lifecycle -------------------------------------------------------------------------

    async def ensure_namespace(self) -> None:
        """Create the namespace if it does not exist; bring its loopback up."""
        if self.namespace not in await asyncio.to_thread(netns.listnetns):
            try:
                await asyncio.to_thread(netns.create, self.namespace)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise MonostackError(f"cannot create namespace {self.namespace}: {exc}") from exc
        ipr = await self._ns()
        lo = await ipr.link_lookup(ifname="lo")
        if lo:
            await ipr.link("set", index=lo[0], state="up")

    async def namespace_exists(self) -> bool:
        return self.namespace in await asyncio.to_thread(netns.listnetns)

    async def delete_namespace(self) -> None:
        """Remove the namespace and everything in it. Explicit teardown only."""
        await self.close()
        if self.namespace in await asyncio.to_thread(netns.listnetns):
            await asyncio.to_thread(netns.remove, self.namespace)

    async def close(self) -> None:
        for ipr in (self._ns_ipr, self._root_ipr):
            if ipr is not None:
                ipr.close()
        self._ns_ipr = self._root_ipr = None

    async def _ns(self) -> AsyncIPRoute:
        if self._ns_ipr is None:
            if self.namespace not in await asyncio.to_thread(netns.listnetns):
                raise NotFound(f"network namespace {self.namespace} does not exist")
            # The netlink socket is created inside the namespace by a setns thread (no fork,
            # nothing blocks the loop); pyroute2's asyncio core then takes over its fd.
            fd = await asyncio.to_thread(
                _setns_thread,
                self.namespace,
                lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0).detach(),
            )
            self._ns_ipr = AsyncIPRoute(fileno=fd)
            await self._ns_ipr.setup_endpoint()
        return self._ns_ipr

    async def _root(self) -> AsyncIPRoute:
        if self._root_ipr is None:
            self._root_ipr = AsyncIPRoute()
            await self._root_ipr.setup_endpoint()
        return self._root_ipr

    async def _get_link(self, ipr: AsyncIPRoute, name: str):
        idx = await ipr.link_lookup(ifname=name)
        if not idx:
            return None
        try:
            msgs = await ipr.link("get", index=idx[0])
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise
        for msg in msgs:
            return msg
        return None

    # ---- bridges ---------------------------------------------------------------------------

    async def ensure_bridge(self, name: str, mtu: int, gateway_cidr: str | None,
                            extra_cidrs: tuple[str, ...] | list[str] = ()) -> BridgeInfo:
        """Make bridge `name` exist, up, with `mtu` and exactly the gateway IPv4 address (if any)
        plus `extra_cidrs` (router gateways, floating IPs, DHCP server addresses).

        Stale IPv4 addresses (a changed gateway) are removed, so calling this again with the
        record's values is how a restart reconciles.
        """
        _check_ifname(name)
        gateway = ipaddress.IPv4Interface(gateway_cidr) if gateway_cidr else None
        extras = {str(ipaddress.IPv4Interface(c)) for c in extra_cidrs}
        ipr = await self._ns()
        async with self._lock:
            link = await self._get_link(ipr, name)
            if link is None:
                try:
                    await ipr.link("add", ifname=name, kind="bridge", br_forward_delay=0, br_stp_state=0)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise MonostackError(f"cannot create bridge {name}: {exc}") from exc
                link = await self._get_link(ipr, name)
            if _kind(link) != "bridge":
                raise Conflict(f"interface {name} exists in {self.namespace} and is not a bridge")
            index = link["index"]
            await ipr.link("set", index=index, mtu=mtu, state="up")
            have = {}
            async for addr in await ipr.addr("dump", index=index, family=socket.AF_INET):
                have[f"{addr.get('IFA_ADDRESS')}/{addr['prefixlen']}"] = addr
            want = ({str(gateway)} if gateway else set()) | extras
            for cidr in set(have) - want:
                iface = ipaddress.IPv4Interface(cidr)
                await ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
            for cidr in want - set(have):
                iface = ipaddress.IPv4Interface(cidr)
                try:
                    await ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise MonostackError(f"cannot add {cidr} to {name}: {exc}") from exc
        return BridgeInfo(name=name, index=index, mtu=mtu, up=True, addresses=tuple(sorted(want)))

    async def delete_bridge(self, name: str) -> None:
        """Remove bridge `name` (its ports are released, not deleted). Missing is fine."""
        ipr = await self._ns()
        async with self._lock:
            link = await self._get_link(ipr, name)
            if link is None:
                return
            if _kind(link) != "bridge":
                raise Conflict(f"interface {name} is not a bridge")
            try:
                await ipr.link("del", index=link["index"])
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise MonostackError(f"cannot delete bridge {name}: {exc}") from exc

    async def list_bridges(self) -> list[BridgeInfo]:
        ipr = await self._ns()
        addrs: dict[int, list[str]] = {}
        async for addr in await ipr.addr("dump", family=socket.AF_INET):
            addrs.setdefault(addr["index"], []).append(f"{addr.get('IFA_ADDRESS')}/{addr['prefixlen']}")
        out = []
        async for link in await ipr.link("dump"):
            if _kind(link) == "bridge":
                out.append(
                    BridgeInfo(
                        name=link.get("IFLA_IFNAME"),
                        index=link["index"],
                        mtu=link.get("IFLA_MTU"),
                        up=bool(link["flags"] & _IFF_UP),
                        addresses=tuple(sorted(addrs.get(link["index"], []))),
                    )
                )
        return sorted(out, key=lambda b: b.name)

    async def list_ports(self, bridge: str | None = None) -> list[PortInfo]:
        """Links enslaved to a bridge in the namespace (optionally only to `bridge`)."""
        ipr = await self._ns()
        links = [link async for link in await ipr.link("dump")]
        names = {link["index"]: link.get("IFLA_IFNAME") for link in links}
        out = []
        for link in links:
            master = link.get("IFLA_MASTER")
            if not master or master not in names:
                continue
            if bridge is not None and names[master] != bridge:
                continue
            out.append(
                PortInfo(
                    name=link.get("IFLA_IFNAME"),
                    index=link["index"],
                    bridge=names[master],
                    mac=link.get("IFLA_ADDRESS"),
                    mtu=link.get("IFLA_MTU"),
                    up=bool(link["flags"] & _IFF_UP),
                    kind=_kind(link),
                )
            )
        return sorted(out, key=lambda p: p.name)

    # ---- ports -----------------------------------------------------------------------------

    async def attach_tap(self, tap_name: str, bridge: str) -> PortInfo:
        """Move `tap_name` from the root namespace into ours, enslave it to `bridge`, set it up.

        Idempotent: a tap already in the namespace is just (re)enslaved. The tap takes the
        bridge's MTU, because a bridge's MTU cannot exceed its smallest port's.
        Raises NotFound if the tap is in neither namespace or the bridge does not exist.
        """
        _check_ifname(tap_name)
        ipr = await self._ns()
        async with self._lock:
            br = await self._get_link(ipr, bridge)
            if br is None or _kind(br) != "bridge":
                raise NotFound(f"bridge {bridge} not found in {self.namespace}")
            tap = await self._get_link(ipr, tap_name)
            if tap is None:
                root = await self._root()
                idx = await root.link_lookup(ifname=tap_name)
                if not idx:
                    raise NotFound(f"tap {tap_name} not found in the root namespace or {self.namespace}")
                try:
                    await root.link("set", index=idx[0], net_ns_fd=self.namespace)
                except NetlinkError as exc:
                    raise MonostackError(f"cannot move {tap_name} into {self.namespace}: {exc}") from exc
                tap = await self._get_link(ipr, tap_name)
                if tap is None:
                    raise MonostackError(f"{tap_name} vanished while moving into {self.namespace}")
            index = tap["index"]
            mtu = br.get("IFLA_MTU")
            await ipr.link("set", index=index, master=br["index"], mtu=mtu, state="up")
            tap = await self._get_link(ipr, tap_name)
        return PortInfo(
            name=tap_name, index=index, bridge=bridge, mac=tap.get("IFLA_ADDRESS"),
            mtu=tap.get("IFLA_MTU"), up=True, kind=_kind(tap),
        )

    async def delete_port(self, name: str) -> None:
        """Delete a port link in the namespace (a stale tap or a test veth). Missing is fine."""
        ipr = await self._ns()
        async with self._lock:
            idx = await ipr.link_lookup(ifname=name)
            if idx:
                try:
                    await ipr.link("del", index=idx[0])
                except NetlinkError as exc:
                    if exc.code != errno.ENODEV:
                        raise MonostackError(f"cannot delete {name}: {exc}") from exc

    async def make_veth_pair(
        self,
        bridge: str,
        port_name: str,
        peer_namespace: str,
        peer_ifname: str = "eth0",
        peer_mac: str | None = None,
        peer_mtu: int | None = None,
    ) -> PortInfo:
        """A veth pair for tests: `port_name` on `bridge` here, `peer_ifname` (up) in `peer_namespace`.

        The peer namespace must exist (tests create it with `DataPlane(name).ensure_namespace()`).
        """
        _check_ifname(port_name)
        _check_ifname(peer_ifname)
        ipr = await self._ns()
        async with self._lock:
            br = await self._get_link(ipr, bridge)
            if br is None or _kind(br) != "bridge":
                raise NotFound(f"bridge {bridge} not found in {self.namespace}")
            # Create both ends here under unique names, then move the peer (a name like "eth0"
            # could clash in this namespace but not in a fresh guest namespace).
            tmp_peer = ("vp" + os.urandom(6).hex())[:IFNAMSIZ]
            peer: dict[str, object] = {"ifname": tmp_peer}
            if peer_mac:
                peer["address"] = peer_mac
            try:
                await ipr.link("add", ifname=port_name, kind="veth", peer=peer)
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    raise Conflict(f"interface {port_name} already exists") from exc
                raise MonostackError(f"cannot create veth {port_name}: {exc}") from exc
            mtu = peer_mtu or br.get("IFLA_MTU")
            pidx = (await ipr.link_lookup(ifname=tmp_peer))[0]
            await ipr.link("set", index=pidx, mtu=mtu, net_ns_fd=peer_namespace)
            port = await self._get_link(ipr, port_name)
            await ipr.link("set", index=port["index"], master=br["index"], mtu=mtu, state="up")
        peer_dp = DataPlane(peer_namespace)
        try:
            pipr = await peer_dp._ns()
            idx = (await pipr.link_lookup(ifname=tmp_peer))[0]
            await pipr.link("set", index=idx, ifname=peer_ifname)
            await pipr.link("set", index=idx, state="up")
            lo = await pipr.link_lookup(ifname="lo")
            if lo:
                await pipr.link("set", index=lo[0], state="up")
        finally:
            await peer_dp.close()
        port = await self._get_link(ipr, port_name)
        return PortInfo(
            name=port_name, index=port["index"], bridge=bridge, mac=port.get("IFLA_ADDRESS"),
            mtu=port.get("IFLA_MTU"), up=True, kind="veth",
        )

    async def add_address(self, ifname: str, cidr: str) -> None:
        """Add an IPv4 address to a link in the namespace (tests, DHCP server addresses)."""
        iface = ipaddress.IPv4Interface(cidr)
        ipr = await self._ns()
        idx = await ipr.link_lookup(ifname=ifname)
        if not idx:
            raise NotFound(f"interface {ifname} not found in {self.namespace}")
        try:
            await ipr.addr("add", index=idx[0], address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise MonostackError(f"cannot add {cidr} to {ifname}: {exc}") from exc

    async def set_sysctl(self, key: str, value: str) -> bool:
        """Write a namespace-scoped sysctl (e.g. "net/ipv4/ip_forward"); False if it does not exist.

        /proc/sys/net resolves to the writing thread's network namespace, so the write happens
        in a setns thread.
        """
        path = "/proc/sys/" + key.replace(".", "/").lstrip("/")

        def write() -> bool:
            try:
                with open(path, "w") as f:
                    f.write(value)
                return True
            except FileNotFoundError:
                return False

        return await asyncio.to_thread(_setns_thread, self.namespace, write)

    async def read_sysctl(self, key: str) -> str | None:
        path = "/proc/sys/" + key.replace(".", "/").lstrip("/")

        def read() -> str | None:
            try:
                with open(path) as f:
                    return f.read().strip()
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(_setns_thread, self.namespace, read)

    # ---- sockets ---------------------------------------------------------------------------

    async def socket_in_namespace(
        self,
        device: str | None,
        port: int = 67,
        address: str = "0.0.0.0",
        broadcast: bool = True,
    ) -> socket.socket:
        """A non-blocking UDP socket living in the namespace, bound to `address:port`.

        With `device` it is SO_BINDTODEVICE'd to that link, so one listener per bridge can
        share port 67 (SO_REUSEADDR) and replies leave through the right bridge.
        """
        if device is not None:
            _check_ifname(device)

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                if device is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
                sock.bind((address, port))
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            return sock

        try:
            return await asyncio.to_thread(_setns_thread, self.namespace, make)
        except FileNotFoundError as exc:
            raise NotFound(f"network namespace {self.namespace} does not exist") from exc
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise NotFound(f"device {device} not found in {self.namespace}") from exc
            raise MonostackError(f"cannot open socket in {self.namespace}: {exc}") from exc

    async def tcp_listener_in_namespace(self, device: str, address: str, port: int,
                                        backlog: int = 128) -> socket.socket:
        """A non-blocking listening TCP socket in the namespace, bound to `address:port` and
        SO_BINDTODEVICE'd to `device`: one listener per bridge can share the address, each
        accepted connection says which bridge it came from, and replies leave through it.

        `address` must be local in the namespace (the metadata address sits on its loopback).
        """
        _check_ifname(device)

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
                sock.bind((address, port))
                sock.listen(backlog)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            return sock

        try:
            return await asyncio.to_thread(_setns_thread, self.namespace, make)
        except FileNotFoundError as exc:
            raise NotFound(f"network namespace {self.namespace} does not exist") from exc
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise NotFound(f"device {device} not found in {self.namespace}") from exc
            raise MonostackError(f"cannot listen on {address}:{port} in {self.namespace}: "
                                 f"{exc}") from exc


def list_namespaces() -> list[str]:
    """Names under /run/netns (blocking; cheap). For reconciliation and test cleanup checks."""
    return sorted(netns.listnetns())
