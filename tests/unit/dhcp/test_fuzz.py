"""Hostile input: ≥100,000 random and mutated datagrams at the parser and at the server.

Promise under test: parse() raises nothing but MalformedPacket, the server's datagram handler
raises nothing at all and hits no internal error, and afterwards a valid DISCOVER still gets its
OFFER. Hypothesis explores structure (shrinking any failure); a seeded mutation loop supplies
the bulk count quickly and reproducibly.
"""
from __future__ import annotations

import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.dhcp.packet import ZERO, MalformedPacket, MessageType, Option, parse
from appliance.dhcp.server import DhcpServer

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

BULK_PER_TARGET = 100_000  # per target: 200,000 in all, plus 8,000 hypothesis examples


def _seeds() -> list[bytes]:
    """Valid messages of every type, from known and unknown clients, to mutate from."""
    out = []
    for mac in (KNOWN_MAC, OTHER_MAC, UNKNOWN_MAC):
        out += [
            client_packet(MessageType.DISCOVER, mac=mac, broadcast=True),
            client_packet(MessageType.REQUEST, mac=mac, requested="10.0.0.10", server_id=SERVER_IP),
            client_packet(MessageType.REQUEST, mac=mac, requested="10.0.0.11"),
            client_packet(MessageType.REQUEST, mac=mac, ciaddr="10.0.0.10"),
            client_packet(MessageType.RELEASE, mac=mac, ciaddr="10.0.0.10", server_id=SERVER_IP),
            client_packet(MessageType.DECLINE, mac=mac, requested="10.0.0.10", server_id=SERVER_IP),
            client_packet(MessageType.INFORM, mac=mac, ciaddr="10.0.0.10"),
            client_packet(
                MessageType.DISCOVER, mac=mac,
                extra={Option.CLIENT_ID: b"\x01" + bytes(6), Option.MAX_MESSAGE_SIZE: b"\x05\xdc",
                       Option.OVERLOAD: b"\x03", Option.HOSTNAME: b"h" * 40},
            ),
        ]
    return out


SEEDS = _seeds()
OPTION_START = 240


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(9)
        if choice == 0 and buf:  # flip bits
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and buf:  # random byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice == 2:  # truncate anywhere
            del buf[rng.randrange(len(buf) + 1):]
        elif choice == 3:  # append junk
            buf += rng.randbytes(rng.randrange(1, 300))
        elif choice == 4 and len(buf) > OPTION_START:  # an option with a huge or lying length
            i = rng.randrange(OPTION_START, len(buf))
            buf[i:i] = bytes([rng.randrange(1, 255), rng.choice([0, 1, 4, 255, rng.randrange(256)])])
        elif choice == 5 and len(buf) > OPTION_START:  # interesting option with random body
            code = rng.choice([1, 3, 6, 12, 15, 26, 50, 51, 52, 53, 54, 55, 57, 61, 121, 255, 0])
            body = rng.randbytes(rng.choice([0, 1, 2, 3, 4, 5, 8, rng.randrange(256)]))
            i = rng.randrange(OPTION_START, len(buf) + 1)
            buf[i:i] = bytes([code, len(body)]) + body
        elif choice == 6:  # hlen/htype/op games
            if len(buf) > 3:
                buf[rng.randrange(3)] = rng.choice([0, 1, 2, 6, 16, 17, 255])
        elif choice == 7 and len(buf) > 240:  # break or keep the cookie
            buf[236 + rng.randrange(4)] = rng.randrange(256)
        elif choice == 8 and len(buf) > 28:  # random ciaddr/yiaddr/giaddr
            off = rng.choice([12, 16, 20, 24])
            buf[off:off + 4] = struct.pack("!I", rng.getrandbits(32))
    return bytes(buf)


def generate(rng: random.Random, n: int):
    for i in range(n):
        if i % 10 == 0:
            yield rng.randbytes(rng.randrange(0, 700))
        else:
            yield mutate(rng, rng.choice(SEEDS))


def _parse_only_raises_malformed(data: bytes) -> None:
    try:
        packet = parse(data)
    except MalformedPacket:
        return
    # Accessors must also fail only with MalformedPacket.
    for name in ("message_type", "requested_ip", "server_id", "client_id", "max_message_size", "mac",
                 "hostname", "parameter_request_list"):
        try:
            getattr(packet, name)
        except MalformedPacket:
            pass


async def _assert_still_answers(server, tx) -> None:
    tx.sent.clear()
    await server.handle_datagram(client_packet(MessageType.DISCOVER, xid=0xC0FFEE, broadcast=True))
    offer, _ = tx.pop()
    assert offer.message_type is MessageType.OFFER and offer.xid == 0xC0FFEE


def test_parser_survives_bulk_random_and_mutated_packets():
    rng = random.Random(20240505)
    for data in generate(rng, BULK_PER_TARGET):
        _parse_only_raises_malformed(data)


async def test_server_survives_bulk_random_and_mutated_packets():
    server, tx = make_server(events=[])
    rng = random.Random(5_31_2131)
    for n, data in enumerate(generate(rng, BULK_PER_TARGET)):
        await server.handle_datagram(data, ("0.0.0.0", 68))
        if n % 1000 == 0:
            tx.sent.clear()
    assert server.stats["errors"] == 0
    assert server.stats["received"] == BULK_PER_TARGET
    assert server.stats["dropped_malformed"] > BULK_PER_TARGET // 10
    assert server.stats["offers"] > 0 and server.stats["acks"] > 0 and server.stats["naks"] > 0
    await _assert_still_answers(server, tx)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=700))
def test_parser_property_random_bytes(data):
    _parse_only_raises_malformed(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 799), st.integers(0, 255)), max_size=12),
    cut=st.integers(0, 800),
    tail=st.binary(max_size=64),
)
def test_parser_property_structured_edits(seed, edits, cut, tail):
    buf = bytearray(seed)
    for pos, value in edits:
        if pos < len(buf):
            buf[pos] = value
    _parse_only_raises_malformed(bytes(buf[:cut]) + tail)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mtype=st.sampled_from(list(MessageType)),
    mac=st.sampled_from([KNOWN_MAC, OTHER_MAC, UNKNOWN_MAC]),
    requested=st.none() | st.sampled_from(["10.0.0.10", "10.0.0.11", "10.0.0.99", "0.0.0.0"]),
    server_id=st.none() | st.sampled_from([SERVER_IP, "10.0.0.254"]),
    ciaddr=st.sampled_from(["0.0.0.0", "10.0.0.10", "10.0.0.11"]),
    broadcast=st.booleans(),
    extra=st.dictionaries(st.integers(1, 254), st.binary(max_size=20), max_size=4),
)
async def test_server_property_any_well_framed_message(mtype, mac, requested, server_id, ciaddr, broadcast, extra):
    server, tx = make_server(events=[])
    data = client_packet(mtype, mac=mac, requested=requested, server_id=server_id, ciaddr=ciaddr,
                         broadcast=broadcast, extra=extra)
    await server.handle_datagram(data)
    assert server.stats["errors"] == 0
    for reply, addr in list(tx.sent):
        assert parse(reply).xid == 0x1234
    if mac == UNKNOWN_MAC:
        assert tx.sent == []
    await _assert_still_answers(server, tx)


def test_inline_path_survives_mutated_packets_and_its_replies_match_the_general_encoder():
    # The daemon's path: synchronous edges, answered inside receive(). Every OFFER/ACK it sends
    # from the reservation's once-encoded options must equal, byte for byte, what the general
    # option-by-option encoder makes of the same request.
    events: list = []
    server = DhcpServer("br", SERVER_IP, RESERVATIONS.get, events.append, clock=FakeClock())
    tx = FakeTransport()
    server.attach_transport(tx)
    rng = random.Random(6842)
    compared = 0
    for data in generate(rng, 30_000):
        server.receive(data, ("0.0.0.0", 68))
        for sent, _ in tx.sent:
            reply = parse(sent)
            if reply.message_type not in (MessageType.OFFER, MessageType.ACK) or reply.yiaddr == ZERO:
                continue  # NAKs and INFORM's ACK (no address) are built option by option anyway
            request = parse(data)
            general = server._fit(server._reply(request, RESERVATIONS[request.mac], reply.message_type), request)
            assert sent == general
            compared += 1
        tx.sent.clear()
    assert server.stats["errors"] == 0 and server.stats["received"] == 30_000
    assert compared > 1_000 and server._queue.empty()
    st = server.stats  # every lease change reported, synchronously: grants/renewals, releases, declines
    assert len(events) == st["acks"] - st["informs"] + st["releases"] + st["declines"]
