"""DHCPv4 messages (RFC 2131 / 2132): pure encode and decode, no I/O.

`parse()` is the only door for bytes from the wire, and it trusts nothing: every length is
checked against the buffer, and anything it cannot make sense of raises `MalformedPacket`
(never IndexError, struct.error, UnicodeError …), so the server can count and drop it.
Typed accessors (`message_type`, `requested_ip` …) validate option lengths the same way.

Options are kept as raw bytes in an insertion-ordered dict keyed by option code; options that
appear more than once are concatenated (RFC 3396), and `encode()` splits values longer than 255
bytes back into several instances.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network

MAGIC_COOKIE = b"\x63\x82\x53\x63"
FIXED_LEN = 236  # op .. file, before the magic cookie
MIN_PACKET_LEN = FIXED_LEN + len(MAGIC_COOKIE)
BOOTP_MIN_LEN = 300  # some clients drop replies shorter than a BOOTP packet
MAX_PACKET_LEN = 65535
FLAG_BROADCAST = 0x8000
ZERO = IPv4Address(0)
BROADCAST = IPv4Address("255.255.255.255")
SERVER_PORT = 67
CLIENT_PORT = 68

_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_ZERO4 = bytes(4)


class MalformedPacket(ValueError):
    """The bytes are not a DHCP message we can trust; the reason says which check failed."""


class Op(IntEnum):
    BOOTREQUEST = 1
    BOOTREPLY = 2


class MessageType(IntEnum):
    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


_MESSAGE_TYPES = {int(m): m for m in MessageType}  # a dict hit, not an enum call, per packet


class Option(IntEnum):
    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS_SERVERS = 6
    HOSTNAME = 12
    DOMAIN_NAME = 15
    MTU = 26
    BROADCAST_ADDRESS = 28
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    CLIENT_ID = 61
    CLASSLESS_STATIC_ROUTES = 121
    END = 255


# ---- option value codecs ---------------------------------------------------------------------


def ip_bytes(address: IPv4Address | str) -> bytes:
    # IPv4Address(IPv4Address) round-trips through a string: skip it on the hot path.
    return address.packed if isinstance(address, IPv4Address) else IPv4Address(address).packed


def ip_list_bytes(addresses: Iterable[IPv4Address | str]) -> bytes:
    return b"".join(ip_bytes(a) for a in addresses)


def u32_bytes(value: int) -> bytes:
    return struct.pack("!I", value)


def u16_bytes(value: int) -> bytes:
    return struct.pack("!H", value)


def text_bytes(value: str) -> bytes:
    return value.encode("utf-8")


def decode_ip(value: bytes, code: int = 0) -> IPv4Address:
    if len(value) != 4:
        raise MalformedPacket(f"option {code}: expected 4 bytes, got {len(value)}")
    return IPv4Address(value)


def decode_ip_list(value: bytes, code: int = 0) -> list[IPv4Address]:
    if not value or len(value) % 4:
        raise MalformedPacket(f"option {code}: length {len(value)} is not a non-zero multiple of 4")
    return [IPv4Address(value[i : i + 4]) for i in range(0, len(value), 4)]


def decode_u32(value: bytes, code: int = 0) -> int:
    if len(value) != 4:
        raise MalformedPacket(f"option {code}: expected 4 bytes, got {len(value)}")
    return struct.unpack("!I", value)[0]


def decode_u16(value: bytes, code: int = 0) -> int:
    if len(value) != 2:
        raise MalformedPacket(f"option {code}: expected 2 bytes, got {len(value)}")
    return struct.unpack("!H", value)[0]


def encode_classless_routes(routes: Iterable[tuple[IPv4Network | str, IPv4Address | str]]) -> bytes:
    """RFC 3442: each route is <prefix length><significant octets of the destination><router>."""
    out = bytearray()
    for destination, router in routes:
        net = IPv4Network(destination)
        width = (net.prefixlen + 7) // 8
        out.append(net.prefixlen)
        out += net.network_address.packed[:width]
        out += IPv4Address(router).packed
    return bytes(out)


def decode_classless_routes(value: bytes) -> list[tuple[IPv4Network, IPv4Address]]:
    routes = []
    i = 0
    while i < len(value):
        prefixlen = value[i]
        if prefixlen > 32:
            raise MalformedPacket(f"option 121: prefix length {prefixlen} > 32")
        width = (prefixlen + 7) // 8
        end = i + 1 + width + 4
        if end > len(value):
            raise MalformedPacket("option 121: route overruns the option")
        dest = value[i + 1 : i + 1 + width] + b"\x00" * (4 - width)
        try:
            net = IPv4Network((IPv4Address(dest), prefixlen))
        except ValueError as exc:  # host bits set: the encoding forbids it
            raise MalformedPacket(f"option 121: {exc}") from exc
        routes.append((net, IPv4Address(value[end - 4 : end])))
        i = end
    return routes


# ---- the message -----------------------------------------------------------------------------


@dataclass
class DhcpPacket:
    """One DHCP/BOOTP message. `options` maps option code -> raw value, in wire order."""

    op: int
    xid: int
    chaddr: bytes
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = ZERO
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    giaddr: IPv4Address = ZERO
    sname: bytes = b""
    file: bytes = b""
    options: dict[int, bytes] = field(default_factory=dict)

    # -- typed views; each raises MalformedPacket when the option is present but invalid --

    @property
    def mac(self) -> str:
        """chaddr as "aa:bb:cc:dd:ee:ff" (lower case), the key reservations are looked up by."""
        return self.chaddr[: self.hlen].hex(":")

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)

    @property
    def message_type(self) -> MessageType | None:
        value = self.options.get(Option.MESSAGE_TYPE)
        if value is None:
            return None
        if len(value) != 1:
            raise MalformedPacket(f"option 53: expected 1 byte, got {len(value)}")
        mtype = _MESSAGE_TYPES.get(value[0])
        if mtype is None:
            raise MalformedPacket(f"option 53: unknown message type {value[0]}")
        return mtype

    def _ip_option(self, code: int) -> IPv4Address | None:
        value = self.options.get(code)
        return None if value is None else decode_ip(value, code)

    @property
    def requested_ip(self) -> IPv4Address | None:
        return self._ip_option(Option.REQUESTED_IP)

    @property
    def server_id(self) -> IPv4Address | None:
        return self._ip_option(Option.SERVER_ID)

    @property
    def client_id(self) -> bytes | None:
        value = self.options.get(Option.CLIENT_ID)
        if value is not None and len(value) < 2:
            raise MalformedPacket("option 61: shorter than 2 bytes")
        return value

    @property
    def parameter_request_list(self) -> list[int]:
        return list(self.options.get(Option.PARAMETER_REQUEST_LIST, b""))

    @property
    def hostname(self) -> str | None:
        value = self.options.get(Option.HOSTNAME)
        return None if value is None else value.decode("utf-8", errors="replace")

    @property
    def max_message_size(self) -> int | None:
        value = self.options.get(Option.MAX_MESSAGE_SIZE)
        return None if value is None else decode_u16(value, Option.MAX_MESSAGE_SIZE)

    def set_option(self, code: int, value: bytes) -> None:
        if code in (Option.PAD, Option.END):
            raise ValueError("PAD and END are framing, not options")
        self.options[code] = value


# ---- decode ----------------------------------------------------------------------------------


def _parse_options(data: bytes, where: str, options: dict[int, bytes], require_end: bool) -> None:
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == Option.PAD:
            i += 1
            continue
        if code == Option.END:
            return
        if i + 1 >= n:
            raise MalformedPacket(f"{where}: option {code} has no length byte")
        length = data[i + 1]
        end = i + 2 + length
        if end > n:
            raise MalformedPacket(f"{where}: option {code} length {length} overruns the packet")
        value = data[i + 2 : end]
        options[code] = options[code] + value if code in options else value  # RFC 3396
        i = end
    if require_end:
        raise MalformedPacket(f"{where}: no END option")


def _address(raw: bytes) -> IPv4Address:
    # Most header addresses are 0.0.0.0; one IPv4Address per packet instead of four.
    return ZERO if raw == _ZERO4 else IPv4Address(raw)


def _cstring(raw: bytes) -> bytes:
    return raw.split(b"\x00", 1)[0]


def parse(data: bytes) -> DhcpPacket:
    """Decode one UDP payload. Raises MalformedPacket for anything untrustworthy."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedPacket("not bytes")
    data = bytes(data)
    if len(data) < MIN_PACKET_LEN:
        raise MalformedPacket(f"truncated: {len(data)} bytes < {MIN_PACKET_LEN}")
    if len(data) > MAX_PACKET_LEN:
        raise MalformedPacket("longer than a UDP datagram")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname, file) = (
        _FIXED.unpack_from(data)
    )
    if op not in (Op.BOOTREQUEST, Op.BOOTREPLY):
        raise MalformedPacket(f"bad op {op}")
    if hlen == 0 or hlen > 16:
        raise MalformedPacket(f"bad hlen {hlen}")
    if htype == 1 and hlen != 6:
        raise MalformedPacket(f"ethernet htype with hlen {hlen}")
    if data[FIXED_LEN:MIN_PACKET_LEN] != MAGIC_COOKIE:
        raise MalformedPacket("wrong magic cookie")
    options: dict[int, bytes] = {}
    _parse_options(data[MIN_PACKET_LEN:], "options", options, require_end=True)
    overload = options.get(Option.OVERLOAD)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise MalformedPacket("option 52: bad overload value")
        if overload[0] & 1:
            _parse_options(file, "file", options, require_end=True)
            file = b""
        if overload[0] & 2:
            _parse_options(sname, "sname", options, require_end=True)
            sname = b""
    return DhcpPacket(
        op=op,
        htype=htype,
        hlen=hlen,
        hops=hops,
        xid=xid,
        secs=secs,
        flags=flags,
        ciaddr=_address(ciaddr),
        yiaddr=_address(yiaddr),
        siaddr=_address(siaddr),
        giaddr=_address(giaddr),
        chaddr=chaddr[:hlen],
        sname=_cstring(sname),
        file=_cstring(file),
        options=options,
    )


# ---- encode ----------------------------------------------------------------------------------


def encode_options(options: dict[int, bytes], first: Sequence[int] = (Option.MESSAGE_TYPE,),
                   end: bool = True) -> bytes:
    """Options in wire form (message type first, as clients expect), END-terminated unless
    `end` is false (a run of options encoded once and joined to others later)."""
    parts: list[bytes] = []
    order = [c for c in first if c in options] + [c for c in options if c not in first]
    for code in order:
        if not 0 < code < 255:
            raise ValueError(f"cannot encode option code {code}")
        value = options[code]
        if len(value) <= 255:
            parts.append(bytes((code, len(value))))
            parts.append(value)
            continue
        for i in range(0, len(value), 255):  # RFC 3396 long options
            chunk = value[i : i + 255]
            parts.append(bytes((code, len(chunk))))
            parts.append(chunk)
    if end:
        parts.append(b"\xff")
    return b"".join(parts)


def encode(packet: DhcpPacket) -> bytes:
    """Encode `packet`; padded to the 300-byte BOOTP minimum."""
    return encode_with_options(packet, encode_options(packet.options))


def encode_with_options(packet: DhcpPacket, wire_options: bytes) -> bytes:
    """`packet`'s fixed fields with options already in wire form (END included), padded to the
    300-byte BOOTP minimum: a server that encodes a reservation's options once per reservation
    pays only for the header per reply. `packet.options` is not read."""
    if len(packet.sname) > 64 or len(packet.file) > 128:
        raise ValueError("sname/file too long")
    if len(packet.chaddr) > 16:
        raise ValueError("chaddr longer than 16 bytes")
    fixed = _FIXED.pack(
        packet.op,
        packet.htype,
        packet.hlen,
        packet.hops,
        packet.xid & 0xFFFFFFFF,
        packet.secs,
        packet.flags,
        ip_bytes(packet.ciaddr),
        ip_bytes(packet.yiaddr),
        ip_bytes(packet.siaddr),
        ip_bytes(packet.giaddr),
        packet.chaddr,  # the struct's "16s" pads with zeros, as do "64s" and "128s"
        packet.sname,
        packet.file,
    )
    out = fixed + MAGIC_COOKIE + wire_options
    if len(out) < BOOTP_MIN_LEN:
        out += bytes(BOOTP_MIN_LEN - len(out))
    return out


def mac_to_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def normalize_mac(mac: str) -> str:
    return ":".join(f"{b:02x}" for b in mac_to_bytes(mac))
