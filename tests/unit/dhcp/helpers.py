"""Builders shared by the DHCP unit tests: client messages, a fake transport, a fake clock."""
from __future__ import annotations

from ipaddress import IPv4Address

from appliance.dhcp.packet import (
    FLAG_BROADCAST,
    DhcpPacket,
    MessageType,
    Op,
    Option,
    encode,
    ip_bytes,
    mac_to_bytes,
    parse,
)
from appliance.dhcp.server import DhcpServer, Reservation

SERVER_IP = "10.0.0.1"
KNOWN_MAC = "52:54:00:12:34:56"
OTHER_MAC = "52:54:00:ab:cd:ef"
UNKNOWN_MAC = "52:54:00:00:00:99"

RESERVATIONS = {
    KNOWN_MAC: Reservation(
        ip="10.0.0.10",
        network="10.0.0.0/24",
        router="10.0.0.1",
        dns_servers=("10.0.0.2", "9.9.9.9"),
        domain="monostack.internal",
        hostname="vm-one",
        mtu=1450,
        static_routes=(("169.254.169.254/32", "10.0.0.3"),),
        lease_time=600,
    ),
    OTHER_MAC: Reservation(ip="10.0.0.11", network="10.0.0.0/24", lease_time=600),
}


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.closed = False

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        self.closed = True

    def pop(self) -> tuple[DhcpPacket, tuple[str, int]]:
        data, addr = self.sent.pop(0)
        return parse(data), addr


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def client_packet(
    mtype: MessageType,
    mac: str = KNOWN_MAC,
    xid: int = 0x1234,
    requested: str | None = None,
    server_id: str | None = None,
    ciaddr: str = "0.0.0.0",
    broadcast: bool = False,
    extra: dict[int, bytes] | None = None,
) -> bytes:
    packet = DhcpPacket(
        op=Op.BOOTREQUEST,
        xid=xid,
        chaddr=mac_to_bytes(mac),
        flags=FLAG_BROADCAST if broadcast else 0,
        ciaddr=IPv4Address(ciaddr),
    )
    packet.options[Option.MESSAGE_TYPE] = bytes((mtype,))
    if requested:
        packet.options[Option.REQUESTED_IP] = ip_bytes(requested)
    if server_id:
        packet.options[Option.SERVER_ID] = ip_bytes(server_id)
    packet.options[Option.PARAMETER_REQUEST_LIST] = bytes((1, 3, 6, 12, 15, 26, 28, 121))
    for code, value in (extra or {}).items():
        packet.options[code] = value
    return encode(packet)


def make_server(events: list | None = None, clock: FakeClock | None = None) -> tuple[DhcpServer, FakeTransport]:
    async def sink(event) -> None:
        if events is not None:
            events.append(event)

    server = DhcpServer("br-test", SERVER_IP, RESERVATIONS.get, sink, clock=clock or FakeClock())
    transport = FakeTransport()
    server.attach_transport(transport)
    return server, transport
