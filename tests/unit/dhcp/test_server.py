"""Every RFC 2131 message flow against the server, through a fake transport and a fake clock."""
from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv4Address, IPv4Network

from appliance.dhcp.leases import Lease, LeaseEventKind
from appliance.dhcp.packet import (
    MessageType,
    Option,
    decode_classless_routes,
    decode_ip_list,
    decode_u16,
    decode_u32,
    encode,
    parse,
)
from appliance.dhcp.server import DhcpServer, Reservation

from .helpers import (
    KNOWN_MAC,
    OTHER_MAC,
    RESERVATIONS,
    SERVER_IP,
    UNKNOWN_MAC,
    FakeClock,
    FakeTransport,
    client_packet,
    make_server,
)

BCAST = ("255.255.255.255", 68)


async def test_discover_gets_offer_with_every_subnet_option():
    server, tx = make_server()
    await server.handle_datagram(client_packet(MessageType.DISCOVER, broadcast=True))
    offer, addr = tx.pop()
    assert addr == BCAST
    assert offer.message_type is MessageType.OFFER
    assert offer.xid == 0x1234 and offer.mac == KNOWN_MAC
    assert offer.yiaddr == IPv4Address("10.0.0.10")
    o = offer.options
    assert offer.server_id == IPv4Address(SERVER_IP)
    assert o[Option.SUBNET_MASK] == bytes([255, 255, 255, 0])
    assert o[Option.BROADCAST_ADDRESS] == bytes([10, 0, 0, 255])
    assert o[Option.ROUTER] == bytes([10, 0, 0, 1])
    assert decode_ip_list(o[Option.DNS_SERVERS]) == [IPv4Address("10.0.0.2"), IPv4Address("9.9.9.9")]
    assert o[Option.DOMAIN_NAME] == b"monostack.internal"
    assert o[Option.HOSTNAME] == b"vm-one"
    assert decode_u16(o[Option.MTU]) == 1450
    assert decode_u32(o[Option.LEASE_TIME]) == 600
    assert decode_u32(o[Option.RENEWAL_TIME]) == 300
    assert decode_u32(o[Option.REBINDING_TIME]) == 525
    # RFC 3442: the default route is repeated in option 121 because clients then ignore option 3.
    assert decode_classless_routes(o[Option.CLASSLESS_STATIC_ROUTES]) == [
        (IPv4Network("169.254.169.254/32"), IPv4Address("10.0.0.3")),
        (IPv4Network("0.0.0.0/0"), IPv4Address("10.0.0.1")),
    ]
    assert server.stats["offers"] == 1
    assert server.leases.get(KNOWN_MAC) is None  # an offer is not a lease


async def test_discover_without_broadcast_flag_is_still_broadcast():
    server, tx = make_server()
    await server.handle_datagram(client_packet(MessageType.DISCOVER, broadcast=False))
    _, addr = tx.pop()
    assert addr == BCAST


async def test_selecting_request_gets_ack_and_a_granted_lease():
    events = []
    server, tx = make_server(events)
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10", server_id=SERVER_IP))
    ack, addr = tx.pop()
    assert ack.message_type is MessageType.ACK and ack.yiaddr == IPv4Address("10.0.0.10")
    assert addr == BCAST
    assert [e.kind for e in events] == [LeaseEventKind.GRANTED]
    lease = events[0].lease
    assert (lease.mac, lease.ip, lease.bridge, lease.hostname) == (KNOWN_MAC, "10.0.0.10", "br-test", "vm-one")
    assert lease.expires_at - lease.granted_at == 600
    assert server.leases.get(KNOWN_MAC) == lease


async def test_request_for_another_server_is_ignored():
    events = []
    server, tx = make_server(events)
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10", server_id="10.0.0.254"))
    assert tx.sent == [] and events == []
    assert server.stats["ignored_other_server"] == 1


async def test_selecting_request_for_a_wrong_address_gets_nak():
    events = []
    server, tx = make_server(events)
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.77", server_id=SERVER_IP))
    nak, addr = tx.pop()
    assert nak.message_type is MessageType.NAK
    assert nak.yiaddr == IPv4Address(0) and Option.LEASE_TIME not in nak.options
    assert addr == BCAST and events == [] and server.stats["naks"] == 1


async def test_init_reboot_with_the_reserved_address_gets_ack():
    events = []
    server, tx = make_server(events)
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10"))
    ack, addr = tx.pop()
    assert ack.message_type is MessageType.ACK and addr == BCAST
    assert events[0].kind is LeaseEventKind.GRANTED


async def test_init_reboot_with_a_stale_address_gets_nak():
    server, tx = make_server()
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="192.168.1.50"))
    nak, addr = tx.pop()
    assert nak.message_type is MessageType.NAK and addr == BCAST


async def test_renewing_is_unicast_to_ciaddr_and_reported_as_renewal():
    events = []
    clock = FakeClock()
    server, tx = make_server(events, clock)
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10", server_id=SERVER_IP))
    tx.pop()
    clock.now += 300
    await server.handle_datagram(client_packet(MessageType.REQUEST, ciaddr="10.0.0.10"))
    ack, addr = tx.pop()
    assert ack.message_type is MessageType.ACK
    assert ack.ciaddr == IPv4Address("10.0.0.10") and addr == ("10.0.0.10", 68)
    assert [e.kind for e in events] == [LeaseEventKind.GRANTED, LeaseEventKind.RENEWED]
    renewed = events[1].lease
    assert renewed.granted_at == events[0].lease.granted_at
    assert renewed.expires_at == clock.now + 600


async def test_rebinding_with_a_wrong_ciaddr_gets_nak():
    server, tx = make_server()
    await server.handle_datagram(client_packet(MessageType.REQUEST, ciaddr="10.0.0.99", broadcast=True))
    nak, addr = tx.pop()
    assert nak.message_type is MessageType.NAK and addr == BCAST


async def test_request_without_requested_ip_or_ciaddr_is_dropped():
    server, tx = make_server()
    await server.handle_datagram(client_packet(MessageType.REQUEST))
    assert tx.sent == [] and server.stats["dropped_invalid"] == 1


async def test_release_removes_the_lease_and_emits_released():
    events = []
    server, tx = make_server(events)
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10", server_id=SERVER_IP))
    tx.pop()
    await server.handle_datagram(client_packet(MessageType.RELEASE, ciaddr="10.0.0.10", server_id=SERVER_IP))
    assert tx.sent == []  # RELEASE has no reply
    assert [e.kind for e in events] == [LeaseEventKind.GRANTED, LeaseEventKind.RELEASED]
    assert server.leases.get(KNOWN_MAC) is None


async def test_release_of_someone_elses_address_is_ignored():
    events = []
    server, _ = make_server(events)
    await server.handle_datagram(client_packet(MessageType.RELEASE, ciaddr="10.0.0.11", server_id=SERVER_IP))
    assert events == [] and server.stats["dropped_invalid"] == 1


async def test_decline_emits_declined():
    events = []
    server, tx = make_server(events)
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10", server_id=SERVER_IP))
    tx.pop()
    await server.handle_datagram(client_packet(MessageType.DECLINE, requested="10.0.0.10", server_id=SERVER_IP))
    assert tx.sent == []
    assert events[-1].kind is LeaseEventKind.DECLINED and server.leases.get(KNOWN_MAC) is None


async def test_inform_gets_ack_without_address_or_lease_time():
    events = []
    server, tx = make_server(events)
    await server.handle_datagram(client_packet(MessageType.INFORM, ciaddr="10.0.0.10"))
    ack, addr = tx.pop()
    assert ack.message_type is MessageType.ACK
    assert ack.yiaddr == IPv4Address(0) and addr == ("10.0.0.10", 68)
    for code in (Option.LEASE_TIME, Option.RENEWAL_TIME, Option.REBINDING_TIME):
        assert code not in ack.options
    assert Option.DNS_SERVERS in ack.options and events == []


async def test_unknown_mac_gets_nothing():
    server, tx = make_server()
    for mtype in (MessageType.DISCOVER, MessageType.REQUEST, MessageType.INFORM):
        await server.handle_datagram(client_packet(mtype, mac=UNKNOWN_MAC, requested="10.0.0.10", ciaddr="10.0.0.10"))
    assert tx.sent == [] and server.stats["dropped_unknown"] == 3


async def test_malformed_and_server_messages_are_dropped_and_counted():
    server, tx = make_server()
    await server.handle_datagram(b"\x01" * 100)
    await server.handle_datagram(client_packet(MessageType.DISCOVER)[:-70] + b"\x35\x99")
    await server.handle_datagram(client_packet(MessageType.OFFER))  # a message type only servers send
    reply = bytearray(client_packet(MessageType.DISCOVER))
    reply[0] = 2  # BOOTREPLY: another server's answer
    await server.handle_datagram(bytes(reply))
    await server.handle_datagram(client_packet(MessageType.REQUEST, extra={Option.REQUESTED_IP: b"\x01"}))
    assert tx.sent == []
    assert server.stats["dropped_malformed"] == 3
    assert server.stats["dropped_invalid"] == 2
    assert server.stats["received"] == 5


async def test_expired_leases_are_reported():
    events = []
    clock = FakeClock()
    server, tx = make_server(events, clock)
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10", server_id=SERVER_IP))
    await server.handle_datagram(client_packet(MessageType.REQUEST, mac=OTHER_MAC, requested="10.0.0.11"))
    clock.now += 599
    assert await server.check_expiry() == []
    clock.now += 1
    expired = await server.check_expiry()
    assert sorted(lease.mac for lease in expired) == sorted([KNOWN_MAC, OTHER_MAC])
    assert [e.kind for e in events[2:]] == [LeaseEventKind.EXPIRED] * 2
    assert len(server.leases) == 0


async def test_restored_leases_renew_and_expire():
    events = []
    clock = FakeClock()
    server, tx = make_server(events, clock)
    server.leases.restore([Lease(mac=KNOWN_MAC, ip="10.0.0.10", bridge="br-test", granted_at=clock.now - 100,
                                 expires_at=clock.now + 100)])
    await server.handle_datagram(client_packet(MessageType.REQUEST, ciaddr="10.0.0.10"))
    assert events[-1].kind is LeaseEventKind.RENEWED


async def test_relayed_request_goes_back_to_the_relay():
    server, tx = make_server()
    data = bytearray(client_packet(MessageType.DISCOVER))
    data[24:28] = bytes([10, 0, 0, 254])  # giaddr
    await server.handle_datagram(bytes(data))
    offer, addr = tx.pop()
    assert addr == ("10.0.0.254", 67) and offer.giaddr == IPv4Address("10.0.0.254")


async def test_client_identifier_is_echoed():
    server, tx = make_server()
    await server.handle_datagram(client_packet(MessageType.DISCOVER, extra={Option.CLIENT_ID: b"\x01abcdef"}))
    offer, _ = tx.pop()
    assert offer.options[Option.CLIENT_ID] == b"\x01abcdef"


async def test_large_client_max_size_keeps_routes_small_default_drops_them():
    many = tuple((f"10.{i}.0.0/16", "10.0.0.1") for i in range(100))
    res = Reservation(ip="10.0.0.10", network="10.0.0.0/24", router="10.0.0.1", static_routes=many)
    server = DhcpServer("br", SERVER_IP, {KNOWN_MAC: res}.get)
    tx = FakeTransport()
    server.attach_transport(tx)
    await server.handle_datagram(client_packet(MessageType.DISCOVER))
    small, _ = tx.pop()
    assert Option.CLASSLESS_STATIC_ROUTES not in small.options and Option.ROUTER in small.options
    await server.handle_datagram(client_packet(MessageType.DISCOVER, extra={Option.MAX_MESSAGE_SIZE: b"\x05\xdc"}))
    big, _ = tx.pop()
    assert len(decode_classless_routes(big.options[Option.CLASSLESS_STATIC_ROUTES])) == 101


async def test_async_lookup_is_awaited():
    async def lookup(mac):
        await asyncio.sleep(0)
        return RESERVATIONS.get(mac)

    server = DhcpServer("br", SERVER_IP, lookup)
    tx = FakeTransport()
    server.attach_transport(tx)
    await server.handle_datagram(client_packet(MessageType.DISCOVER))
    assert tx.pop()[0].message_type is MessageType.OFFER


async def test_failing_lookup_and_sink_are_counted_not_raised():
    def broken(mac):
        raise RuntimeError("store down")

    server = DhcpServer("br", SERVER_IP, broken)
    server.attach_transport(FakeTransport())
    await server.handle_datagram(client_packet(MessageType.DISCOVER))
    assert server.stats["lookup_errors"] == 1

    async def bad_sink(event):
        raise RuntimeError("sink down")

    server = DhcpServer("br", SERVER_IP, RESERVATIONS.get, bad_sink)
    tx = FakeTransport()
    server.attach_transport(tx)
    await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10"))
    assert tx.pop()[0].message_type is MessageType.ACK  # the reply goes out before the sink
    assert server.stats["sink_errors"] == 1


async def test_queue_overflow_is_counted():
    server = DhcpServer("br", SERVER_IP, RESERVATIONS.get, queue_size=2)
    for _ in range(5):
        server.enqueue(b"x", None)
    assert server.stats["dropped_overload"] == 3


async def test_start_with_socket_factory_serves_datagrams_and_stops():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    server = DhcpServer("lo", "127.0.0.1", RESERVATIONS.get, socket_factory=lambda: sock, expiry_interval=0.05)
    await server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(client_packet(MessageType.DISCOVER, mac=UNKNOWN_MAC), sock.getsockname())
        for _ in range(100):
            if server.stats["dropped_unknown"]:
                break
            await asyncio.sleep(0.01)
        assert server.stats["received"] == 1 and server.stats["dropped_unknown"] == 1
    finally:
        await server.stop()
    assert sock.fileno() == -1


# ---- answering inside the read callback (synchronous edges) ----------------------------------


def _inline_server(events: list, lookup=RESERVATIONS.get) -> tuple[DhcpServer, FakeTransport]:
    server = DhcpServer("br", SERVER_IP, lookup, events.append, clock=FakeClock())
    tx = FakeTransport()
    server.attach_transport(tx)
    return server, tx


def test_synchronous_edges_answer_and_report_before_receive_returns():
    # No event loop runs here: the reply and the lease event exist when receive() returns.
    events: list = []
    server, tx = _inline_server(events)
    server.receive(client_packet(MessageType.DISCOVER, broadcast=True), ("0.0.0.0", 68))
    offer, addr = tx.pop()
    assert offer.message_type is MessageType.OFFER and addr == BCAST
    assert offer.yiaddr == IPv4Address("10.0.0.10") and events == []
    server.receive(client_packet(MessageType.REQUEST, requested="10.0.0.10", server_id=SERVER_IP,
                                 extra={Option.CLIENT_ID: b"\x01abcdef"}), ("0.0.0.0", 68))
    ack, _ = tx.pop()
    assert ack.message_type is MessageType.ACK and ack.options[Option.CLIENT_ID] == b"\x01abcdef"
    assert [e.kind for e in events] == [LeaseEventKind.GRANTED]
    assert server.leases.get(KNOWN_MAC).ip == "10.0.0.10"
    assert server.stats["received"] == 2 and server._queue.empty()


def test_inline_replies_match_the_general_encoder():
    # The fast path joins options encoded once per reservation; the general path builds the
    # reply option by option. A client must not be able to tell them apart.
    events: list = []
    server, tx = _inline_server(events)
    request = client_packet(MessageType.REQUEST, requested="10.0.0.10", extra={Option.CLIENT_ID: b"\x01xy"})
    server.receive(request, None)
    fast = tx.sent.pop(0)[0]
    general = server._fit(server._reply(parse(request), RESERVATIONS[KNOWN_MAC], MessageType.ACK), parse(request))
    assert fast == general


def test_inline_garbage_and_unknown_macs_are_counted_not_raised():
    events: list = []
    server, tx = _inline_server(events)
    server.receive(b"\x00" * 3, None)
    server.receive(client_packet(MessageType.DISCOVER, mac=UNKNOWN_MAC), None)
    assert server.stats["dropped_malformed"] == 1 and server.stats["dropped_unknown"] == 1
    assert tx.sent == [] and events == []


def test_inline_sink_failure_is_counted_and_the_ack_still_went_out():
    def broken(event):
        raise RuntimeError("sink down")

    server = DhcpServer("br", SERVER_IP, RESERVATIONS.get, broken)
    tx = FakeTransport()
    server.attach_transport(tx)
    server.receive(client_packet(MessageType.REQUEST, requested="10.0.0.10"), None)
    assert tx.pop()[0].message_type is MessageType.ACK
    assert server.stats["sink_errors"] == 1


async def test_a_plain_lookup_returning_a_coroutine_moves_to_the_worker_and_answers_once():
    async def slow(mac):
        await asyncio.sleep(0)
        return RESERVATIONS.get(mac)

    server = DhcpServer("br", SERVER_IP, lambda mac: slow(mac))  # not a coroutine function
    tx = FakeTransport()
    server.attach_transport(tx)
    await server.start()
    try:
        server.receive(client_packet(MessageType.DISCOVER, xid=1), None)
        server.receive(client_packet(MessageType.DISCOVER, xid=2), None)
        assert tx.sent == []  # both wait for the worker, in order
        for _ in range(100):
            if len(tx.sent) == 2:
                break
            await asyncio.sleep(0)
        assert [tx.pop()[0].xid for _ in range(2)] == [1, 2]
        assert server.stats["received"] == 2 and server.stats["offers"] == 2
    finally:
        await server.stop()


async def test_async_edges_keep_arrival_order_through_the_queue():
    seen: list = []

    async def sink(event):
        seen.append(event.kind)

    server = DhcpServer("br", SERVER_IP, RESERVATIONS.get, sink)
    tx = FakeTransport()
    server.attach_transport(tx)
    await server.start()
    try:
        server.receive(client_packet(MessageType.REQUEST, requested="10.0.0.10"), None)
        server.receive(client_packet(MessageType.RELEASE, ciaddr="10.0.0.10"), None)
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0)
        assert seen == [LeaseEventKind.GRANTED, LeaseEventKind.RELEASED]
    finally:
        await server.stop()


# ---- a crash that loses lease records loses no acknowledged address ---------------------------


async def test_an_acked_address_survives_a_crash_whether_or_not_its_lease_record_was_written():
    # The lease records are written after the ACK, off the reply path. Crash at any point:
    # the record was not yet queued, queued but not committed, or committed. The restarted
    # server is built from the same (durable) reservations, with whatever records survived.
    clock = FakeClock()
    first, tx = make_server([], clock)
    await first.handle_datagram(client_packet(MessageType.DISCOVER))
    await first.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10", server_id=SERVER_IP))
    acked = tx.sent[-1]
    assert parse(acked[0]).message_type is MessageType.ACK
    written = first.leases.all()
    clock.now += 100
    for survived in ([], written):
        events: list = []
        server, tx = make_server(events, clock)
        server.leases.restore(survived)
        # RENEWING (unicast from the address it holds), REBINDING, INIT-REBOOT and a fresh
        # DISCOVER all get the acknowledged address back.
        await server.handle_datagram(client_packet(MessageType.REQUEST, ciaddr="10.0.0.10"))
        await server.handle_datagram(client_packet(MessageType.REQUEST, ciaddr="10.0.0.10", broadcast=True))
        await server.handle_datagram(client_packet(MessageType.REQUEST, requested="10.0.0.10"))
        await server.handle_datagram(client_packet(MessageType.DISCOVER))
        replies = [tx.pop()[0] for _ in range(4)]
        assert [r.message_type for r in replies] == [MessageType.ACK] * 3 + [MessageType.OFFER]
        assert {r.yiaddr for r in replies} == {IPv4Address("10.0.0.10")}
        expected = LeaseEventKind.RENEWED if survived else LeaseEventKind.GRANTED
        assert events[0].kind is expected and server.leases.get(KNOWN_MAC).ip == "10.0.0.10"
        # Nobody else can be given it: another MAC asking for it is refused.
        await server.handle_datagram(client_packet(MessageType.REQUEST, mac=OTHER_MAC, requested="10.0.0.10"))
        assert tx.pop()[0].message_type is MessageType.NAK
