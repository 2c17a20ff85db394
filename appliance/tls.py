"""TLS for the TCP API: a private CA and a server certificate for this host (what nova-cert did).

The appliance is reached by its hostname, its fully qualified name, `localhost` and any of
its addresses, so the server certificate names all of them. Clients trust the CA
(`OS_CACERT=<dir>/ca.crt`); the CA's key never leaves the host and stays root-only.

`ensure_tls` is idempotent, so the installer can call it on every run:
- an existing CA is kept (clients already trust it);
- the server certificate is re-issued only when the names it must carry changed (a new
  address after DHCP, an extra name given — extra names are remembered), it is near expiry,
  or it was not signed by this CA. The daemon reads the files at start; a re-issue takes effect on the next restart.
The unix socket stays plain: its file permissions are its protection.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from storage.atomic import atomic_writer

DEFAULT_DIR = Path("/etc/monostack/tls")
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
#: names and addresses given with `monostack tls init --name`, one a line
EXTRA_NAMES = "extra-names"

CA_LIFETIME = dt.timedelta(days=3650)
#: Long enough to forget about, short enough that a stolen key does not live forever; the
#: installer (or `monostack tls init`) renews within RENEW_BEFORE of expiry.
SERVER_LIFETIME = dt.timedelta(days=825)
RENEW_BEFORE = dt.timedelta(days=30)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TlsFiles:
    """Where the CA and the server certificate live inside one directory."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / CA_CERT

    @property
    def ca_key(self) -> Path:
        return self.directory / CA_KEY

    @property
    def server_cert(self) -> Path:
        return self.directory / SERVER_CERT

    @property
    def server_key(self) -> Path:
        return self.directory / SERVER_KEY

    @property
    def extra_names(self) -> Path:
        return self.directory / EXTRA_NAMES


@dataclass(frozen=True)
class TlsResult:
    files: TlsFiles
    ca_created: bool
    #: why the server certificate was (re)issued; "" when it was kept
    issued_because: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IPAddress, ...]

    @property
    def changed(self) -> bool:
        return self.ca_created or bool(self.issued_because)


def ca_path_for(tls_cert: Path) -> Path:
    """The CA that signed a server certificate made here: it sits beside it."""
    return Path(tls_cert).parent / CA_CERT


# --- the names this host answers to --------------------------------------------------------------

def local_ipv4_addresses(fib_trie: Path = Path("/proc/net/fib_trie")) -> set[ipaddress.IPv4Address]:
    """Every IPv4 address assigned to an interface in this network namespace.

    /proc/net/fib_trie lists each local address as a leaf followed by `/32 host LOCAL`; reading
    it needs no subprocess and no extra package. getaddrinfo(hostname) adds what the resolver
    maps the hostname to (it may name an address on another namespace's interface: harmless).
    """
    found: set[ipaddress.IPv4Address] = set()
    try:
        lines = fib_trie.read_text().splitlines()
    except OSError:
        lines = []
    previous = ""
    for line in lines:
        text = line.strip()
        if text.startswith("/32 host LOCAL") and previous.startswith("|-- "):
            try:
                found.add(ipaddress.IPv4Address(previous[4:].strip()))
            except ValueError:
                pass
        previous = text
    try:
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.add(ipaddress.IPv4Address(sockaddr[0]))
    except OSError:
        pass
    return found


def host_names(extra: list[str] | tuple[str, ...] = ()) -> tuple[tuple[str, ...], tuple[IPAddress, ...]]:
    """(DNS names, IP addresses) the server certificate must carry, sorted (stable comparison).

    Loopback is 127.0.0.1 only (other 127/8 addresses are never how anyone reaches us); an
    extra name that parses as an address goes to the IP list.
    """
    dns = {"localhost"}
    ips: set[IPAddress] = {ipaddress.IPv4Address("127.0.0.1")}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            dns.add(name.lower())
    ips.update(a for a in local_ipv4_addresses() if not a.is_loopback)
    for name in extra:
        name = name.strip()
        if not name:
            continue
        try:
            ips.add(ipaddress.ip_address(name))
        except ValueError:
            dns.add(name.lower())
    return tuple(sorted(dns)), tuple(sorted(ips, key=lambda a: (a.version, int(a))))


# --- issuing ---------------------------------------------------------------------------------------

def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    with atomic_writer(path, mode=0o600) as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    with atomic_writer(path, mode=0o644) as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _load(files: TlsFiles, cert_path: Path, key_path: Path):
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None, None
    return cert, key


def create_ca(files: TlsFiles, *, now: dt.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "monostack"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"monostack CA {socket.gethostname()}"),
    ])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    files.directory.mkdir(parents=True, exist_ok=True)
    _write_key(files.ca_key, key)
    _write_cert(files.ca_cert, cert)
    return cert, key


def issue_server_cert(files: TlsFiles, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                      dns_names: tuple[str, ...], ips: tuple[IPAddress, ...], *,
                      now: dt.datetime | None = None) -> x509.Certificate:
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    cn = dns_names[0] if dns_names else "localhost"
    hostname = socket.gethostname().lower()
    if hostname in dns_names:
        cn = hostname
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(a) for a in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "monostack"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + SERVER_LIFETIME, ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    # The key first: a cert on disk without its key would leave the daemon unable to start.
    _write_key(files.server_key, key)
    _write_cert(files.server_cert, cert)
    return cert


def cert_names(cert: x509.Certificate) -> tuple[set[str], set[IPAddress]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return ({n.lower() for n in san.get_values_for_type(x509.DNSName)},
            set(san.get_values_for_type(x509.IPAddress)))


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _reissue_reason(files: TlsFiles, ca_cert: x509.Certificate, dns: tuple[str, ...],
                    ips: tuple[IPAddress, ...], now: dt.datetime) -> str:
    cert, key = _load(files, files.server_cert, files.server_key)
    if cert is None or key is None:
        return "no server certificate yet"
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        return "server key does not match its certificate"
    if not _signed_by(cert, ca_cert):
        return "server certificate not signed by this CA"
    have_dns, have_ips = cert_names(cert)
    if have_dns != set(dns) or have_ips != set(ips):
        added = sorted(map(str, (set(dns) - have_dns) | (set(ips) - have_ips)))
        removed = sorted(map(str, (have_dns - set(dns)) | (have_ips - set(ips))))
        return ("host names changed" + (f" (+{', '.join(added)})" if added else "")
                + (f" (-{', '.join(removed)})" if removed else ""))
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"expires {cert.not_valid_after_utc:%Y-%m-%d}"
    return ""


def _stored_extra_names(files: TlsFiles) -> list[str]:
    try:
        return [n for n in files.extra_names.read_text().split() if n]
    except OSError:
        return []


def pending_change(directory: Path, *, now: dt.datetime | None = None) -> str:
    """Why `ensure_tls` would re-issue the server certificate now ("" when it is current);
    read-only, for `monostack doctor` and `status`."""
    files = TlsFiles(Path(directory))
    ca_cert, ca_key = _load(files, files.ca_cert, files.ca_key)
    if ca_cert is None or ca_key is None:
        return "no CA yet"
    dns, ips = host_names(_stored_extra_names(files))
    return _reissue_reason(files, ca_cert, dns, ips, now or _now())


def ensure_tls(directory: Path = DEFAULT_DIR, extra_names: list[str] | tuple[str, ...] = (), *,
               now: dt.datetime | None = None,
               names: tuple[tuple[str, ...], tuple[IPAddress, ...]] | None = None) -> TlsResult:
    """Make sure `directory` holds a CA and a current server certificate; see module doc.

    `names` overrides host discovery (tests); `now` moves the clock (expiry tests).
    """
    now = now or _now()
    files = TlsFiles(Path(directory))
    files.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(files.directory, 0o755)  # ca.crt must be readable by clients; keys are 0600
    # Names given once (--name) stay: they are kept in extra-names and added to on each call.
    extras = sorted(set(_stored_extra_names(files)) | {n.strip().lower() for n in extra_names
                                                       if n.strip()})
    if extras != _stored_extra_names(files):
        with atomic_writer(files.extra_names, mode=0o644) as f:
            f.write(("\n".join(extras) + "\n").encode())
    dns, ips = names if names is not None else host_names(extras)
    ca_cert, ca_key = _load(files, files.ca_cert, files.ca_key)
    ca_created = False
    if ca_cert is None or ca_key is None:
        ca_cert, ca_key = create_ca(files, now=now)
        ca_created = True
    reason = "new CA" if ca_created else _reissue_reason(files, ca_cert, dns, ips, now)
    if reason:
        issue_server_cert(files, ca_cert, ca_key, dns, ips, now=now)  # type: ignore[arg-type]
    return TlsResult(files=files, ca_created=ca_created, issued_because=reason,
                     dns_names=dns, ip_addresses=ips)
