"""An asyncio DHCPv4 server for one bridge, with reservation semantics (RFC 2131).

Like Neutron's DHCP agent, it hands out no pool: each MAC that has a port on the network gets
that port's fixed IP and its subnet's options, and every other MAC gets silence. The server knows
nothing of ports or the store; it asks `lookup(mac)` for a `Reservation` on every packet (so a
port update takes effect at once) and tells `lease_sink(LeaseEvent)` about every grant, renewal,
release, decline and expiry.

Hostile input: every datagram goes through one handler that never raises; anything that does not
parse or make sense is dropped and counted in `stats`. With synchronous edges (the daemon's) a
datagram is answered inside the socket's read callback, so a flood costs no memory beyond the
kernel's socket buffer; with async edges datagrams wait in a bounded queue served by one worker
task (overflow is counted). Either way the reply is sent before the sink hears of the lease: the
sink may write it to disk later (see leases.py for why an ACK need not wait for that write).

Reply addressing (RFC 2131 §4.1): relayed requests go back to the relay (giaddr:67); NAKs are
broadcast; a client that already has an address (ciaddr: RENEWING, REBINDING, INFORM) gets a
unicast to ciaddr:68; everything else is broadcast. A client without an address that did not set
the broadcast flag should, strictly, get a unicast to yiaddr at chaddr — which needs either a raw
socket or a forged ARP entry, because the kernel cannot resolve an address the client does not
have yet. The RFC allows broadcasting when unicast is not possible ("...MAY be sent as an IP
broadcast"); every client must accept broadcast replies that match its xid and chaddr, and on a
per-network bridge the broadcast reaches only that network's ports, so we broadcast.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Protocol

from appliance.dhcp.leases import Lease, LeaseEvent, LeaseEventKind, LeaseTable
from appliance.dhcp.packet import (
    BROADCAST,
    CLIENT_PORT,
    FLAG_BROADCAST,
    SERVER_PORT,
    ZERO,
    DhcpPacket,
    MalformedPacket,
    MessageType,
    Op,
    Option,
    encode,
    encode_classless_routes,
    encode_options,
    encode_with_options,
    ip_bytes,
    ip_list_bytes,
    parse,
    text_bytes,
    u16_bytes,
    u32_bytes,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE = 576  # RFC 2131: every client accepts at least this (IP datagram size)
IP_UDP_HEADERS = 28


@dataclass(frozen=True)
class Reservation:
    """What one MAC gets: its port's fixed IP and its subnet's options."""

    ip: IPv4Address
    network: IPv4Network
    router: IPv4Address | None = None
    dns_servers: tuple[IPv4Address, ...] = ()
    domain: str | None = None
    hostname: str | None = None
    mtu: int | None = None
    static_routes: tuple[tuple[IPv4Network, IPv4Address], ...] = ()
    lease_time: int = 86400

    def __post_init__(self) -> None:
        # Accept strings from callers; store typed values.
        object.__setattr__(self, "ip", IPv4Address(self.ip))
        object.__setattr__(self, "network", IPv4Network(self.network, strict=False))
        if self.router is not None:
            object.__setattr__(self, "router", IPv4Address(self.router))
        object.__setattr__(self, "dns_servers", tuple(IPv4Address(a) for a in self.dns_servers))
        object.__setattr__(
            self,
            "static_routes",
            tuple((IPv4Network(d), IPv4Address(g)) for d, g in self.static_routes),
        )
        if self.ip not in self.network:
            raise ValueError(f"{self.ip} is not in {self.network}")
        if self.lease_time < 1:
            raise ValueError("lease_time must be positive")

    @functools.cached_property
    def lease_options(self) -> dict[int, bytes]:
        """What every OFFER and ACK of this reservation carries besides the message type, the
        server id and an echoed client id: the lease times and the subnet's options. Encoded
        once per reservation (it is immutable; a port update makes a new one)."""
        opts = {
            Option.LEASE_TIME: u32_bytes(self.lease_time),
            Option.RENEWAL_TIME: u32_bytes(self.lease_time // 2),
            Option.REBINDING_TIME: u32_bytes(self.lease_time * 7 // 8),
        }
        opts.update(self.subnet_options)
        return opts

    @functools.cached_property
    def lease_options_wire(self) -> bytes:
        """`lease_options` in wire form, without END."""
        return encode_options(self.lease_options, first=(), end=False)

    @functools.cached_property
    def subnet_options(self) -> dict[int, bytes]:
        """The subnet's options (INFORM's ACK carries only these)."""
        opts: dict[int, bytes] = {}
        opts[Option.SUBNET_MASK] = ip_bytes(self.network.netmask)
        opts[Option.BROADCAST_ADDRESS] = ip_bytes(self.network.broadcast_address)
        if self.router is not None:
            opts[Option.ROUTER] = ip_bytes(self.router)
        if self.dns_servers:
            opts[Option.DNS_SERVERS] = ip_list_bytes(self.dns_servers)
        if self.domain:
            opts[Option.DOMAIN_NAME] = text_bytes(self.domain)[:255]
        if self.hostname:
            opts[Option.HOSTNAME] = text_bytes(self.hostname)[:255]
        if self.mtu:
            opts[Option.MTU] = u16_bytes(self.mtu)
        if self.static_routes:
            routes = list(self.static_routes)
            # RFC 3442: a client that gets option 121 ignores option 3, so the default route
            # must be repeated inside 121 or the guest loses it.
            if self.router is not None and not any(net.prefixlen == 0 for net, _ in routes):
                routes.append((IPv4Network("0.0.0.0/0"), self.router))
            opts[Option.CLASSLESS_STATIC_ROUTES] = encode_classless_routes(routes)
        return opts


Lookup = Callable[[str], "Reservation | None | Awaitable[Reservation | None]"]
LeaseSink = Callable[[LeaseEvent], "None | Awaitable[None]"]
SocketFactory = Callable[[], "socket.socket | Awaitable[socket.socket]"]


class Transport(Protocol):
    """Where replies go: the socket endpoint, or a fake in tests."""

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None: ...

    def close(self) -> None: ...


STAT_KEYS = (
    "received",
    "dropped_malformed",
    "dropped_invalid",
    "dropped_unknown",
    "dropped_overload",
    "ignored_other_server",
    "offers",
    "acks",
    "naks",
    "releases",
    "declines",
    "informs",
    "expired",
    "lookup_errors",
    "sink_errors",
    "send_errors",
    "errors",
)


#: Datagrams read per wakeup before the loop runs anything else: a burst costs one poll, and
#: other work still gets a turn.
READS_PER_WAKEUP = 64
#: The largest datagram read (a UDP payload cannot be larger).
MAX_DATAGRAM = 65535


class _SocketEndpoint:
    """The socket edge: reads with `loop.add_reader`, replies with a plain `sendto`.

    Not asyncio's datagram transport, which asks the kernel for 256 KiB per datagram: a
    buffer above glibc's mmap threshold, allocated and freed for every packet (measured here:
    ~8 us per datagram, 11 us per send+receive against 3.5 us). A reply that meets a full send
    buffer is dropped and counted rather than queued: the client retransmits, memory stays
    bounded."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, server: DhcpServer) -> None:
        self._loop = loop
        self._sock = sock
        self._server = server
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._read_ready)

    def _read_ready(self) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error reported on the socket
                self._server.stats["send_errors"] += 1
                log.debug("dhcp %s: socket error %s", self._server.bridge_name, exc)
                return
            self._server.receive(data, addr)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self._sock.sendto(data, addr)

    def close(self) -> None:
        if self._sock.fileno() != -1:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()


_BROADCAST_STR = str(BROADCAST)


class DhcpServer:
    """One listener on one bridge. `await start()` … `await stop()`.

    When neither `lookup` nor `lease_sink` is a coroutine function (the daemon's are plain
    dict reads and a queue put), a datagram is answered inside the socket's read callback:
    parse, look up, reply, report — no queue, no second pass of the event loop, and no memory
    beyond the kernel's socket buffer, which already bounds a flood. Async edges go through a
    bounded queue served by one worker task instead, in arrival order.
    """

    def __init__(
        self,
        bridge_name: str,
        server_ip: IPv4Address | str,
        lookup: Lookup,
        lease_sink: LeaseSink | None = None,
        *,
        socket_factory: SocketFactory | None = None,
        clock: Callable[[], float] = time.time,
        expiry_interval: float = 5.0,
        queue_size: int = 1024,
    ) -> None:
        self.bridge_name = bridge_name
        self.server_ip = IPv4Address(server_ip)
        self._lookup = lookup
        self._sink = lease_sink
        self._socket_factory = socket_factory
        self._clock = clock
        self._expiry_interval = expiry_interval
        self._queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue(maxsize=queue_size)
        self._inline = not (inspect.iscoroutinefunction(lookup) or inspect.iscoroutinefunction(lease_sink))
        self._transport: Transport | None = None
        self._tasks: list[asyncio.Task] = []
        self._sink_tasks: set[asyncio.Task] = set()
        self.leases = LeaseTable()
        self.stats: dict[str, int] = {key: 0 for key in STAT_KEYS}
        server_id = encode_options({Option.SERVER_ID: ip_bytes(self.server_ip)}, end=False)
        #: message type + server id, in wire form, per reply type
        self._reply_head = {m: encode_options({Option.MESSAGE_TYPE: bytes((m,))}, end=False) + server_id
                            for m in (MessageType.OFFER, MessageType.ACK)}

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the socket (from the factory), start the worker and the expiry checker."""
        if self._transport is None:
            if self._socket_factory is None:
                raise RuntimeError("DhcpServer needs a socket_factory or attach_transport()")
            sock = self._socket_factory()
            if inspect.isawaitable(sock):
                sock = await sock
            self._transport = _SocketEndpoint(asyncio.get_running_loop(), sock, self)
        self._tasks = [
            asyncio.create_task(self._serve_queue(), name=f"dhcp-{self.bridge_name}"),
            asyncio.create_task(self._expiry_loop(), name=f"dhcp-expiry-{self.bridge_name}"),
        ]

    def attach_transport(self, transport: Transport) -> None:
        """Use `transport` for replies instead of opening a socket (tests)."""
        self._transport = transport

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        if self._sink_tasks:
            await asyncio.gather(*self._sink_tasks, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def receive(self, data: bytes, addr: Any) -> None:
        """One datagram from the socket: answered now when the edges are synchronous (and
        nothing queued is still waiting, so order holds), else queued for the worker."""
        if self._inline and self._queue.empty():
            self._handle_inline(data, addr)
        else:
            self.enqueue(data, addr)

    def enqueue(self, data: bytes, addr: Any) -> None:
        try:
            self._queue.put_nowait((data, addr))
        except asyncio.QueueFull:
            self.stats["received"] += 1
            self.stats["dropped_overload"] += 1

    async def _serve_queue(self) -> None:
        while True:
            data, addr = await self._queue.get()
            await self.handle_datagram(data, addr)

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self._expiry_interval)
            await self.check_expiry()

    async def check_expiry(self) -> list[Lease]:
        """Drop leases whose time has passed and emit `expired` for each."""
        now = self._clock()
        due = self.leases.expire_due(now)
        for lease in due:
            self.stats["expired"] += 1
            await self._emit(LeaseEvent(kind=LeaseEventKind.EXPIRED, lease=lease, at=now))
        return due

    # ---- the datagram handler ----------------------------------------------------------------

    async def handle_datagram(self, data: bytes, addr: Any = None) -> None:
        """Handle one request. Never raises: every failure is a counted drop."""
        self.stats["received"] += 1
        try:
            admitted = self._admit(data, addr)
            if admitted is None:
                return
            packet, handler = admitted
            try:
                reservation = self._lookup(packet.mac)
                if inspect.isawaitable(reservation):
                    reservation = await reservation
            except Exception:
                self._lookup_failed(packet)
                return
            event = self._answer(packet, handler, reservation)
            if event is not None:
                await self._emit(event)
        except Exception:  # a bug, not an attack: log it loudly, keep serving
            self.stats["errors"] += 1
            log.exception("dhcp %s: error handling a datagram from %s", self.bridge_name, addr)

    def _handle_inline(self, data: bytes, addr: Any) -> None:
        """`handle_datagram` without awaiting anything (the edges are synchronous)."""
        self.stats["received"] += 1
        try:
            admitted = self._admit(data, addr)
            if admitted is None:
                return
            packet, handler = admitted
            try:
                reservation = self._lookup(packet.mac)
            except Exception:
                self._lookup_failed(packet)
                return
            if inspect.isawaitable(reservation):
                # A plain callable that returned an awaitable: from now on every datagram goes
                # through the worker, this one first (a lookup has no side effects to repeat).
                if inspect.iscoroutine(reservation):
                    reservation.close()
                self._inline = False
                self.stats["received"] -= 1
                self.enqueue(data, addr)
                return
            event = self._answer(packet, handler, reservation)
            if event is not None:
                self._emit_now(event)
        except Exception:  # a bug, not an attack: log it loudly, keep serving
            self.stats["errors"] += 1
            log.exception("dhcp %s: error handling a datagram from %s", self.bridge_name, addr)

    def _admit(self, data: bytes, addr: Any) -> tuple[DhcpPacket, Callable[..., LeaseEvent | None]] | None:
        """The parsed request and its handler, or None (counted) when it is not one we answer."""
        try:
            packet = parse(data)
            mtype = packet.message_type
        except MalformedPacket as exc:
            self.stats["dropped_malformed"] += 1
            log.debug("dhcp %s: malformed from %s: %s", self.bridge_name, addr, exc)
            return None
        if packet.op != Op.BOOTREQUEST or packet.htype != 1 or packet.hlen != 6:
            self.stats["dropped_invalid"] += 1
            return None
        handler = self._handlers.get(mtype)
        if handler is None:  # BOOTP (no type) or a server-side message type
            self.stats["dropped_invalid"] += 1
            return None
        return packet, handler

    def _lookup_failed(self, packet: DhcpPacket) -> None:
        self.stats["lookup_errors"] += 1
        log.exception("dhcp %s: reservation lookup failed for %s", self.bridge_name, packet.mac)

    def _answer(self, packet: DhcpPacket, handler: Callable[..., LeaseEvent | None],
                reservation: Reservation | None) -> LeaseEvent | None:
        """Reply (if the request deserves one) and return the lease change to report."""
        if reservation is None:
            self.stats["dropped_unknown"] += 1
            return None
        try:
            return handler(self, packet, reservation)
        except MalformedPacket as exc:
            self.stats["dropped_malformed"] += 1
            log.debug("dhcp %s: malformed %s from %s: %s", self.bridge_name,
                      packet.options.get(Option.MESSAGE_TYPE), packet.mac, exc)
            return None

    def _on_discover(self, packet: DhcpPacket, res: Reservation) -> None:
        self._send_lease_reply(packet, res, MessageType.OFFER)
        self.stats["offers"] += 1

    def _on_request(self, packet: DhcpPacket, res: Reservation) -> LeaseEvent | None:
        server_id = packet.server_id
        requested = packet.requested_ip
        if server_id is not None:
            # SELECTING: the client names the server it chose.
            if server_id != self.server_ip:
                self.stats["ignored_other_server"] += 1
                return None
            wanted = requested if requested is not None else (packet.ciaddr if packet.ciaddr != ZERO else None)
        elif requested is not None:
            wanted = requested  # INIT-REBOOT: verifying a remembered address
        elif packet.ciaddr != ZERO:
            wanted = packet.ciaddr  # RENEWING (unicast) or REBINDING (broadcast)
        else:
            self.stats["dropped_invalid"] += 1
            return None
        if wanted != res.ip:
            self._send(self._nak(packet, f"requested address {wanted} is not this client's"), packet)
            self.stats["naks"] += 1
            return None
        self._send_lease_reply(packet, res, MessageType.ACK)
        self.stats["acks"] += 1
        now = self._clock()
        client_id = packet.client_id
        lease, kind = self.leases.grant(
            packet.mac, str(res.ip), self.bridge_name, res.lease_time, now,
            hostname=res.hostname or packet.hostname,
            client_id=client_id.hex() if client_id else None,
        )
        return LeaseEvent(kind=kind, lease=lease, at=now)

    def _on_decline(self, packet: DhcpPacket, res: Reservation) -> LeaseEvent | None:
        server_id = packet.server_id
        if server_id is not None and server_id != self.server_ip:
            self.stats["ignored_other_server"] += 1
            return None
        if packet.requested_ip != res.ip:
            self.stats["dropped_invalid"] += 1
            return None
        # The address is in use by someone else (a spoofer or a stale guest). With reservation
        # semantics there is no other address to give, so record it loudly for the operator.
        self.stats["declines"] += 1
        now = self._clock()
        lease = self.leases.remove(packet.mac) or self._synthetic_lease(packet.mac, res, now)
        log.warning("dhcp %s: %s declined %s (address conflict)", self.bridge_name, packet.mac, res.ip)
        return LeaseEvent(kind=LeaseEventKind.DECLINED, lease=lease, at=now)

    def _on_release(self, packet: DhcpPacket, res: Reservation) -> LeaseEvent | None:
        server_id = packet.server_id
        if server_id is not None and server_id != self.server_ip:
            self.stats["ignored_other_server"] += 1
            return None
        if packet.ciaddr != res.ip:
            self.stats["dropped_invalid"] += 1
            return None
        self.stats["releases"] += 1
        now = self._clock()
        lease = self.leases.remove(packet.mac) or self._synthetic_lease(packet.mac, res, now)
        return LeaseEvent(kind=LeaseEventKind.RELEASED, lease=lease, at=now)

    def _on_inform(self, packet: DhcpPacket, res: Reservation) -> None:
        if packet.ciaddr == ZERO:
            self.stats["dropped_invalid"] += 1
            return
        self._send(self._reply(packet, res, MessageType.ACK, inform=True), packet)
        self.stats["informs"] += 1
        self.stats["acks"] += 1

    _handlers: dict[MessageType | None, Callable[..., LeaseEvent | None]] = {
        MessageType.DISCOVER: _on_discover,
        MessageType.REQUEST: _on_request,
        MessageType.DECLINE: _on_decline,
        MessageType.RELEASE: _on_release,
        MessageType.INFORM: _on_inform,
    }

    # ---- building replies --------------------------------------------------------------------

    def _synthetic_lease(self, mac: str, res: Reservation, now: float) -> Lease:
        """A lease we have no record of (e.g. granted before a restart without restore)."""
        return Lease(mac=mac, ip=str(res.ip), bridge=self.bridge_name, granted_at=now, expires_at=now,
                     hostname=res.hostname)

    def _base_reply(self, packet: DhcpPacket, mtype: MessageType) -> DhcpPacket:
        reply = DhcpPacket(
            op=Op.BOOTREPLY,
            htype=packet.htype,
            hlen=packet.hlen,
            xid=packet.xid,
            flags=packet.flags,
            giaddr=packet.giaddr,
            chaddr=packet.chaddr,
        )
        reply.options[Option.MESSAGE_TYPE] = bytes((mtype,))
        reply.options[Option.SERVER_ID] = ip_bytes(self.server_ip)
        return reply

    def _reply(self, packet: DhcpPacket, res: Reservation, mtype: MessageType, inform: bool = False) -> DhcpPacket:
        reply = self._base_reply(packet, mtype)
        opts = reply.options
        if inform:
            reply.ciaddr = packet.ciaddr  # RFC 2131 table 3: no yiaddr, no lease time in INFORM's ACK
            opts.update(res.subnet_options)
        else:
            reply.yiaddr = res.ip
            if mtype == MessageType.ACK:
                reply.ciaddr = packet.ciaddr
            opts.update(res.lease_options)
        client_id = packet.options.get(Option.CLIENT_ID)
        if client_id is not None:
            opts[Option.CLIENT_ID] = client_id  # RFC 6842: echo the client identifier
        return reply

    def _limit(self, request: DhcpPacket) -> int:
        """The most bytes of DHCP message the client accepts (576 unless it announced more)."""
        try:
            return max(request.max_message_size or DEFAULT_MAX_MESSAGE, DEFAULT_MAX_MESSAGE) - IP_UDP_HEADERS
        except MalformedPacket:
            return DEFAULT_MAX_MESSAGE - IP_UDP_HEADERS

    def _send_lease_reply(self, packet: DhcpPacket, res: Reservation, mtype: MessageType) -> None:
        """An OFFER or ACK from the reservation's options encoded once: per reply only the
        header, the echoed client id and END are new. A reply too large for the client takes
        the general path, which drops options until it fits."""
        if self._transport is None:
            self.stats["send_errors"] += 1
            return
        reply = DhcpPacket(op=Op.BOOTREPLY, htype=packet.htype, hlen=packet.hlen, xid=packet.xid,
                           flags=packet.flags, giaddr=packet.giaddr, chaddr=packet.chaddr, yiaddr=res.ip,
                           ciaddr=packet.ciaddr if mtype == MessageType.ACK else ZERO)
        wire = self._reply_head[mtype] + res.lease_options_wire
        client_id = packet.options.get(Option.CLIENT_ID)
        if client_id is not None:  # RFC 6842: echo the client identifier
            wire += encode_options({Option.CLIENT_ID: client_id}, first=(), end=False)
        wire += b"\xff"
        data = encode_with_options(reply, wire)
        if len(data) > self._limit(packet):
            self._send(self._reply(packet, res, mtype), packet)
            return
        self._sendto(data, self._reply_address(reply.giaddr, mtype, reply.ciaddr))

    def _fit(self, reply: DhcpPacket, request: DhcpPacket) -> bytes:
        """Encode `reply`, dropping the least essential options until it fits the client's
        maximum message size (576 unless the client announced more)."""
        limit = self._limit(request)
        data = encode(reply)
        for code in (Option.CLASSLESS_STATIC_ROUTES, Option.DOMAIN_NAME, Option.HOSTNAME, Option.DNS_SERVERS):
            if len(data) <= limit:
                break
            if reply.options.pop(code, None) is not None:
                log.warning("dhcp %s: reply to %s too large, dropped option %d", self.bridge_name, reply.mac, code)
                data = encode(reply)
        return data

    def _nak(self, packet: DhcpPacket, message: str) -> DhcpPacket:
        reply = self._base_reply(packet, MessageType.NAK)
        reply.options[Option.MESSAGE] = text_bytes(message)
        client_id = packet.options.get(Option.CLIENT_ID)
        if client_id is not None:
            reply.options[Option.CLIENT_ID] = client_id
        if packet.giaddr != ZERO:
            reply.flags |= FLAG_BROADCAST  # RFC 2131 §4.3.2: relay must broadcast the NAK
        return reply

    def reply_address(self, reply: DhcpPacket) -> tuple[str, int]:
        """Where a reply goes (RFC 2131 §4.1; see the module docstring for the unicast case)."""
        return self._reply_address(reply.giaddr, reply.message_type, reply.ciaddr)

    @staticmethod
    def _reply_address(giaddr: IPv4Address, mtype: MessageType | None, ciaddr: IPv4Address) -> tuple[str, int]:
        if giaddr != ZERO:
            return str(giaddr), SERVER_PORT
        if mtype == MessageType.NAK:
            return _BROADCAST_STR, CLIENT_PORT
        if ciaddr != ZERO:
            return str(ciaddr), CLIENT_PORT
        return _BROADCAST_STR, CLIENT_PORT

    def _send(self, reply: DhcpPacket, request: DhcpPacket) -> None:
        if self._transport is None:
            self.stats["send_errors"] += 1
            return
        self._sendto(self._fit(reply, request), self.reply_address(reply))

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        try:
            self._transport.sendto(data, addr)
        except OSError as exc:
            self.stats["send_errors"] += 1
            log.debug("dhcp %s: send failed: %s", self.bridge_name, exc)

    # ---- reporting lease changes -------------------------------------------------------------

    async def _emit(self, event: LeaseEvent) -> None:
        if self._sink is None:
            return
        try:
            result = self._sink(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._sink_failed(event)

    def _emit_now(self, event: LeaseEvent) -> None:
        """Report from the read callback. A sink that still returns an awaitable (a plain
        callable wrapping a coroutine) is awaited in a task, so its failures are counted too."""
        if self._sink is None:
            return
        try:
            result = self._sink(event)
        except Exception:
            self._sink_failed(event)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._await_sink(result, event))
            self._sink_tasks.add(task)
            task.add_done_callback(self._sink_tasks.discard)

    async def _await_sink(self, result: Awaitable[None], event: LeaseEvent) -> None:
        try:
            await result
        except Exception:
            self._sink_failed(event)

    def _sink_failed(self, event: LeaseEvent) -> None:
        self.stats["sink_errors"] += 1
        log.exception("dhcp %s: lease sink failed for %s %s", self.bridge_name, event.kind, event.lease.mac)
