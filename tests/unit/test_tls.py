"""The private CA and server certificate: a chain that verifies, the host's names, idempotence."""
from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from appliance.tls import (
    RENEW_BEFORE, cert_names, ensure_tls, host_names, local_ipv4_addresses, pending_change)

NAMES = (("appliance.example", "localhost"), (ipaddress.IPv4Address("127.0.0.1"),
                                              ipaddress.IPv4Address("192.0.2.10")))


def _load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_chain_verifies_for_every_name(tmp_path):
    result = ensure_tls(tmp_path, names=NAMES)
    ca, server = _load(result.files.ca_cert), _load(result.files.server_cert)
    store = Store([ca])
    for dns in NAMES[0]:
        verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(dns))
        chain = verifier.verify(server, [])
        assert chain[-1] == ca
    for ip in NAMES[1]:
        PolicyBuilder().store(store).build_server_verifier(x509.IPAddress(ip)).verify(server, [])


def test_python_ssl_accepts_the_pair(tmp_path):
    """What the daemon (server side) and our client (cafile) do with the files."""
    result = ensure_tls(tmp_path, names=NAMES)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(result.files.server_cert, result.files.server_key)
    client = ssl.create_default_context(cafile=str(result.files.ca_cert))
    assert client.get_ca_certs()[0]["subject"]


def test_keys_are_root_only_and_certs_readable(tmp_path):
    result = ensure_tls(tmp_path / "tls", names=NAMES)
    for path in (result.files.ca_key, result.files.server_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for path in (result.files.ca_cert, result.files.server_cert):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_sans_hold_the_hosts_names_and_addresses(tmp_path):
    dns, ips = host_names(["api.example", "198.51.100.7"])
    assert {"localhost", "api.example"} <= set(dns)
    assert ipaddress.IPv4Address("127.0.0.1") in ips
    assert ipaddress.IPv4Address("198.51.100.7") in ips
    assert set(local_ipv4_addresses()) - {a for a in local_ipv4_addresses() if a.is_loopback} <= set(ips)
    result = ensure_tls(tmp_path, ["api.example"])
    have_dns, have_ips = cert_names(_load(result.files.server_cert))
    assert have_dns == set(result.dns_names) and "api.example" in have_dns
    assert have_ips == set(result.ip_addresses)


def test_second_run_changes_nothing(tmp_path):
    first = ensure_tls(tmp_path, names=NAMES)
    assert first.ca_created and first.changed
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = ensure_tls(tmp_path, names=NAMES)
    assert not again.changed
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_new_address_reissues_the_server_cert_and_keeps_the_ca(tmp_path):
    first = ensure_tls(tmp_path, names=NAMES)
    ca_before = first.files.ca_cert.read_bytes()
    moved = (NAMES[0], (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv4Address("192.0.2.99")))
    again = ensure_tls(tmp_path, names=moved)
    assert not again.ca_created
    assert "192.0.2.99" in again.issued_because and "192.0.2.10" in again.issued_because
    assert first.files.ca_cert.read_bytes() == ca_before
    assert ipaddress.IPv4Address("192.0.2.99") in cert_names(_load(again.files.server_cert))[1]


def test_near_expiry_reissues(tmp_path):
    first = ensure_tls(tmp_path, names=NAMES)
    not_after = _load(first.files.server_cert).not_valid_after_utc
    later = not_after - RENEW_BEFORE + dt.timedelta(days=1)
    again = ensure_tls(tmp_path, names=NAMES, now=later)
    assert again.issued_because.startswith("expires")
    assert _load(again.files.server_cert).not_valid_after_utc > not_after


def test_a_foreign_server_cert_is_replaced(tmp_path):
    ensure_tls(tmp_path / "a", names=NAMES)
    ensure_tls(tmp_path / "b", names=NAMES)
    (tmp_path / "b" / "server.crt").write_bytes((tmp_path / "a" / "server.crt").read_bytes())
    (tmp_path / "b" / "server.key").write_bytes((tmp_path / "a" / "server.key").read_bytes())
    again = ensure_tls(tmp_path / "b", names=NAMES)
    assert again.issued_because == "server certificate not signed by this CA"


@pytest.mark.parametrize("missing", ["server.key", "server.crt"])
def test_a_missing_half_is_reissued(tmp_path, missing):
    ensure_tls(tmp_path, names=NAMES)
    (tmp_path / missing).unlink()
    assert ensure_tls(tmp_path, names=NAMES).issued_because == "no server certificate yet"


def test_extra_names_are_remembered(tmp_path):
    first = ensure_tls(tmp_path, ["api.example"])
    assert "api.example" in first.dns_names
    again = ensure_tls(tmp_path)  # the installer's next run gives no --name
    assert not again.changed and "api.example" in again.dns_names
    assert pending_change(tmp_path) == ""


def test_pending_change_reports_what_init_would_do(tmp_path):
    assert pending_change(tmp_path) == "no CA yet"
    ensure_tls(tmp_path, names=NAMES)  # names that are not this host's
    assert pending_change(tmp_path).startswith("host names changed")
