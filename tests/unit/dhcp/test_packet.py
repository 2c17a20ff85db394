"""DHCP packet encode/decode: round trips, option codecs, and every rejection parse() promises."""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from appliance.dhcp.packet import (
    BOOTP_MIN_LEN,
    MAGIC_COOKIE,
    MIN_PACKET_LEN,
    DhcpPacket,
    MalformedPacket,
    MessageType,
    Op,
    Option,
    decode_classless_routes,
    decode_ip_list,
    decode_u32,
    encode,
    encode_classless_routes,
    encode_options,
    ip_bytes,
    mac_to_bytes,
    parse,
)

from .helpers import KNOWN_MAC, client_packet


def sample() -> DhcpPacket:
    return DhcpPacket(
        op=Op.BOOTREQUEST,
        xid=0xDEADBEEF,
        chaddr=mac_to_bytes(KNOWN_MAC),
        hops=1,
        secs=7,
        flags=0x8000,
        ciaddr=IPv4Address("10.0.0.5"),
        yiaddr=IPv4Address("10.0.0.6"),
        siaddr=IPv4Address("10.0.0.7"),
        giaddr=IPv4Address("10.0.0.8"),
        sname=b"srv",
        file=b"boot.img",
        options={Option.MESSAGE_TYPE: bytes((MessageType.REQUEST,)), Option.HOSTNAME: b"vm", 200: b""},
    )


def test_round_trip_keeps_every_field():
    packet = sample()
    assert parse(encode(packet)) == packet


def test_encode_pads_to_bootp_minimum_and_ends_with_end_option():
    data = encode(sample())
    assert len(data) == BOOTP_MIN_LEN
    assert data[236:240] == MAGIC_COOKIE


def test_typed_accessors():
    packet = parse(client_packet(MessageType.REQUEST, requested="10.0.0.10", server_id="10.0.0.1", broadcast=True))
    assert packet.message_type is MessageType.REQUEST
    assert packet.requested_ip == IPv4Address("10.0.0.10")
    assert packet.server_id == IPv4Address("10.0.0.1")
    assert packet.mac == KNOWN_MAC
    assert packet.broadcast
    assert packet.parameter_request_list[:3] == [1, 3, 6]


def test_long_option_is_split_and_concatenated_again():
    packet = sample()
    packet.options[Option.DOMAIN_NAME] = b"x" * 600
    data = encode(packet)
    assert parse(data).options[Option.DOMAIN_NAME] == b"x" * 600


def test_overloaded_file_and_sname_fields_are_read_as_options():
    packet = sample()
    packet.options = {Option.MESSAGE_TYPE: b"\x01", Option.OVERLOAD: b"\x03"}
    packet.file = bytes((Option.HOSTNAME, 2)) + b"ab" + b"\xff"
    packet.sname = bytes((Option.DOMAIN_NAME, 1)) + b"d" + b"\xff"
    parsed = parse(encode(packet))
    assert parsed.options[Option.HOSTNAME] == b"ab"
    assert parsed.options[Option.DOMAIN_NAME] == b"d"
    assert parsed.file == b"" and parsed.sname == b""


def test_classless_routes_rfc3442_encoding():
    routes = [
        (IPv4Network("0.0.0.0/0"), IPv4Address("10.0.0.1")),
        (IPv4Network("10.17.0.0/16"), IPv4Address("10.0.0.2")),
        (IPv4Network("169.254.169.254/32"), IPv4Address("10.0.0.3")),
        (IPv4Network("192.168.128.0/17"), IPv4Address("10.0.0.4")),
    ]
    raw = encode_classless_routes(routes)
    # RFC 3442 examples: width 0 → no octets; /16 → 2 octets; /17 → 3 octets.
    assert raw[:5] == bytes([0, 10, 0, 0, 1])
    assert raw[5:12] == bytes([16, 10, 17, 10, 0, 0, 2])
    assert decode_classless_routes(raw) == routes


@pytest.mark.parametrize(
    "raw", [bytes([33, 0, 0, 0, 0]), bytes([24, 10, 0]), bytes([8, 10, 1, 2, 3])[:4], bytes([1, 0xFF, 1, 2, 3, 4])]
)
def test_classless_routes_rejects_bad_encodings(raw):
    with pytest.raises(MalformedPacket):
        decode_classless_routes(raw)


def test_value_codecs_reject_wrong_lengths():
    with pytest.raises(MalformedPacket):
        decode_u32(b"\x00\x01")
    with pytest.raises(MalformedPacket):
        decode_ip_list(b"\x01\x02\x03")
    assert decode_ip_list(ip_bytes("1.2.3.4") + ip_bytes("5.6.7.8")) == [IPv4Address("1.2.3.4"), IPv4Address("5.6.7.8")]


def _valid() -> bytearray:
    return bytearray(client_packet(MessageType.DISCOVER))


def test_truncated_packet_is_malformed():
    with pytest.raises(MalformedPacket, match="truncated"):
        parse(bytes(_valid()[: MIN_PACKET_LEN - 1]))


def test_wrong_magic_cookie_is_malformed():
    data = _valid()
    data[236] = 0
    with pytest.raises(MalformedPacket, match="cookie"):
        parse(bytes(data))


def test_option_length_overrun_is_malformed():
    data = _valid()[:MIN_PACKET_LEN] + bytes([Option.HOSTNAME, 200]) + b"abc"
    with pytest.raises(MalformedPacket, match="overruns"):
        parse(bytes(data))


def test_option_without_length_byte_is_malformed():
    with pytest.raises(MalformedPacket):
        parse(bytes(_valid()[:MIN_PACKET_LEN] + bytes([Option.HOSTNAME])))


def test_missing_end_option_is_malformed():
    data = _valid()[:MIN_PACKET_LEN] + encode_options({Option.MESSAGE_TYPE: b"\x01"})[:-1]
    with pytest.raises(MalformedPacket, match="END"):
        parse(bytes(data))


@pytest.mark.parametrize("hlen", [0, 5, 17])
def test_bad_hlen_is_malformed(hlen):
    data = _valid()
    data[2] = hlen
    with pytest.raises(MalformedPacket, match="hlen"):
        parse(bytes(data))


def test_bad_op_is_malformed():
    data = _valid()
    data[0] = 9
    with pytest.raises(MalformedPacket, match="op"):
        parse(bytes(data))


def test_bad_overload_value_is_malformed():
    data = _valid()[:MIN_PACKET_LEN] + encode_options({Option.MESSAGE_TYPE: b"\x01", Option.OVERLOAD: b"\x07"})
    with pytest.raises(MalformedPacket, match="overload"):
        parse(bytes(data))


@pytest.mark.parametrize("value", [b"", b"\x01\x02", b"\x00", b"\x63"])
def test_bad_message_type_is_malformed_on_access(value):
    data = _valid()[:MIN_PACKET_LEN] + encode_options({Option.MESSAGE_TYPE: value})
    packet = parse(bytes(data))
    with pytest.raises(MalformedPacket):
        packet.message_type


def test_bad_requested_ip_length_is_malformed_on_access():
    data = _valid()[:MIN_PACKET_LEN] + encode_options({Option.MESSAGE_TYPE: b"\x03", Option.REQUESTED_IP: b"\x0a\x00"})
    with pytest.raises(MalformedPacket):
        parse(bytes(data)).requested_ip


def test_parse_rejects_non_bytes():
    with pytest.raises(MalformedPacket):
        parse("not bytes")  # type: ignore[arg-type]
