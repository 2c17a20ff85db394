"""The daemon's configuration: one frozen dataclass loaded from TOML and passed in, never global.

Every key has a default, so an empty file (or none) gives a working single-host appliance.

    state_dir = "/var/lib/monostack"
    backup_dir = "<state_dir>/backups"   (where POST /monostack/backup writes; created 0700)
    components = []   (names to run; empty runs every component that is installed)
    [api]       socket, listen ("127.0.0.1:5000", optional), public_url, tls_cert, tls_key,
                max_body_bytes, header_timeout, body_timeout, keepalive_timeout, max_connections,
                max_connections_per_address, max_line_bytes, max_header_bytes, max_headers
    [compute]   libvirt_uri, instances_dir, cpu/ram/disk_allocation_ratio,
                reserved_host_memory_mb, reserved_host_cpus, resume_guests_on_start,
                graceful_shutdown_timeout, disk_gb, force_config_drive
    [network]   namespace, external_cidr
    [storage]   images_dir, volumes_dir, object_devices, object_replicas,
                object_auditor_bytes_per_second, object_auditor_interval,
                object_expirer_interval, object_reclaim_age, object_max_file_size
    [identity]  token_ttl, lockout_failures, lockout_seconds
    [audit]     retention_days (audit trail files older than this are removed; 0 keeps all)
    [log]       level, format ("json" | "text")
    [web]       listen (set by `install.sh --web`: where the browser console listens, and
                where `monostack status` looks for it; unset: the console is off)
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import Invalid


@dataclass(frozen=True)
class ApiConfig:
    socket: Path = Path("/run/monostack/api.sock")
    #: Group allowed to connect to the socket (SSH operators run the TUI as themselves).
    socket_group: str = "monostack-operators"
    listen: str | None = None
    public_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: int = 1 << 20
    #: A TCP client must send a complete request head within this many seconds of connecting
    #: (or of the first byte of its next request); slower ones are cut off (slowloris).
    header_timeout: float = 10.0
    #: A TCP client sending a request body must not fall silent for longer than this many
    #: seconds while we wait for the rest (Swift's client_timeout); it is cut off.
    body_timeout: float = 60.0
    #: An idle keep-alive connection (TCP or the unix socket) is closed after this long.
    keepalive_timeout: float = 75.0
    #: TCP connections held at once, in all and from one peer address; more are refused at
    #: accept. The total is also kept below the descriptor limit, so the unix socket and the
    #: daemon's own files always find descriptors.
    max_connections: int = 4096
    max_connections_per_address: int = 256
    #: Largest request line and header field (bytes), most header fields per request.
    max_line_bytes: int = 8190
    max_header_bytes: int = 8190
    max_headers: int = 128

    @property
    def listen_host_port(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    @property
    def base_url(self) -> str:
        """The URL advertised in the service catalog."""
        if self.public_url:
            return self.public_url.rstrip("/")
        hp = self.listen_host_port
        if hp is None:
            return "http://localhost"
        scheme = "https" if self.tls_cert else "http"
        host = hp[0] if hp[0] not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"{scheme}://{host}:{hp[1]}"


@dataclass(frozen=True)
class ComputeConfig:
    libvirt_uri: str = "qemu:///system"
    instances_dir: Path = Path("/var/lib/monostack/instances")
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 512
    reserved_host_cpus: int = 0
    resume_guests_on_start: bool = True
    graceful_shutdown_timeout: float = 30.0
    #: Disk offered to instances (GiB) before the allocation ratio; 0 = the size of the
    #: filesystem holding instances_dir. Set it when that filesystem is shared with other uses.
    disk_gb: int = 0
    #: give every instance a config drive, asked for or not (Nova's force_config_drive)
    force_config_drive: bool = False


@dataclass(frozen=True)
class NetworkConfig:
    namespace: str = "monostack-dp"
    external_cidr: str = "203.0.113.0/24"


@dataclass(frozen=True)
class StorageConfig:
    images_dir: Path = Path("/var/lib/monostack/images")
    volumes_dir: Path = Path("/var/lib/monostack/volumes")
    object_devices: tuple[Path, ...] = (Path("/var/lib/monostack/objects/d1"),)
    object_replicas: int | None = None
    #: The auditor re-reads every replica at most this fast (bytes/s), then sleeps `interval`.
    object_auditor_bytes_per_second: int = 32 << 20
    object_auditor_interval: float = 3600.0
    #: How often the expirer deletes objects whose X-Delete-At has passed (seconds).
    object_expirer_interval: float = 5.0
    #: DELETE rows are remembered this long (a slower older PUT cannot resurrect an object).
    object_reclaim_age: float = 7 * 86400.0
    #: The largest single object (Swift's max_file_size); bigger ones are large objects.
    object_max_file_size: int = 5 << 30


@dataclass(frozen=True)
class IdentityConfig:
    token_ttl: int = 3600
    lockout_failures: int = 5
    lockout_seconds: int = 300


@dataclass(frozen=True)
class AuditConfig:
    retention_days: int = 90


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    format: str = "json"


@dataclass(frozen=True)
class WebConfig:
    #: "HOST:PORT" of `monostack web` when the installer enabled it; None: off.
    listen: str | None = None


@dataclass(frozen=True)
class Config:
    state_dir: Path = Path("/var/lib/monostack")
    #: Where online backups are written (the API takes no path); unset: <state_dir>/backups.
    backup_dir: Path | None = None
    #: Component names to run (images, volumes, network, compute, objects); empty = all.
    components: tuple[str, ...] = ()
    api: ApiConfig = field(default_factory=ApiConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    log: LogConfig = field(default_factory=LogConfig)
    web: WebConfig = field(default_factory=WebConfig)

    @property
    def backups(self) -> Path:
        return self.backup_dir if self.backup_dir is not None else self.state_dir / "backups"

    @classmethod
    def load(cls, path: Path | None) -> "Config":
        if path is None:
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise Invalid(f"cannot read config {path}: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        return _build(cls, data, "")

    @classmethod
    def for_state_dir(cls, state_dir: Path, **sections: dict[str, Any]) -> "Config":
        """A self-contained config rooted in one directory (tests, first runs)."""
        state_dir = Path(state_dir)
        data: dict[str, Any] = {
            "state_dir": str(state_dir / "state"),
            "api": {"socket": str(state_dir / "api.sock")},
            "compute": {"instances_dir": str(state_dir / "instances")},
            "storage": {
                "images_dir": str(state_dir / "images"),
                "volumes_dir": str(state_dir / "volumes"),
                "object_devices": [str(state_dir / f"objects/d{i}") for i in (1, 2, 3)],
            },
        }
        for name, values in sections.items():
            if isinstance(values, dict):
                data.setdefault(name, {}).update(values)
            else:
                data[name] = values
        return cls.from_dict(data)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise Invalid(f"config section [{where}] must be a table")
    kwargs: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in fields:
            raise Invalid(f"unknown config key {where + '.' if where else ''}{key}")
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, key)
        else:
            kwargs[key] = _coerce(value, default, f"{where}.{key}" if where else key)
    return cls(**kwargs)


def _coerce(value: Any, default: Any, name: str) -> Any:
    if isinstance(default, Path):
        return Path(value)
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise Invalid(f"config {name} must be a list")
        return tuple(str(v) if name == "components" else Path(v) for v in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise Invalid(f"config {name} must be true or false")
        return value
    if isinstance(default, (int, float)) and not isinstance(value, (int, float)):
        raise Invalid(f"config {name} must be a number")
    if name.endswith(("tls_cert", "tls_key", "backup_dir")) and value is not None:
        return Path(value)
    return value
