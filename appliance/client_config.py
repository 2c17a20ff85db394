"""What a client of the local appliance needs to find it, and nothing secret: the unix socket,
the TCP API's URL and the CA that signed its certificate.

The daemon's own config (/etc/monostack/monostack.toml) is root-only; an SSH operator's TUI runs
as the operator's unix account and must not need it. The installer therefore writes these few
public facts to a world-readable /etc/monostack/client.toml, and a client without it falls back
to the daemon's default socket.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from appliance.config import ApiConfig, Config
from appliance.errors import Invalid
from storage.atomic import write_text_atomic

CLIENT_CONFIG = Path("/etc/monostack/client.toml")


@dataclass(frozen=True)
class ClientConfig:
    socket: Path = ApiConfig.socket
    url: str | None = None
    cacert: Path | None = None

    @classmethod
    def of(cls, config: Config) -> "ClientConfig":
        """The public part of a daemon config."""
        from appliance.tls import ca_path_for
        api = config.api
        return cls(socket=Path(api.socket), url=api.base_url if api.listen else None,
                   cacert=ca_path_for(api.tls_cert) if api.tls_cert else None)

    @classmethod
    def load(cls, path: Path = CLIENT_CONFIG) -> "ClientConfig | None":
        """None when there is no client config here; Invalid when it cannot be used."""
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise Invalid(f"cannot read client config {path}: {exc}") from exc
        unknown = set(data) - {"socket", "url", "cacert"}
        if unknown:
            raise Invalid(f"client config {path}: unknown keys {sorted(unknown)}")
        return cls(socket=Path(data.get("socket", cls.socket)), url=data.get("url"),
                   cacert=Path(data["cacert"]) if data.get("cacert") else None)

    def to_toml(self) -> str:
        lines = ["# monostack: how clients find the local appliance (written by the installer;",
                 "# no secrets, readable by every user: SSH operators' TUI reads it).",
                 f'socket = "{self.socket}"']
        if self.url:
            lines.append(f'url = "{self.url}"')
        if self.cacert:
            lines.append(f'cacert = "{self.cacert}"')
        return "\n".join(lines) + "\n"

    def write(self, path: Path = CLIENT_CONFIG) -> bool:
        """Write it world-readable; False when it already says the same (nothing changed)."""
        text = self.to_toml()
        try:
            if path.read_text() == text and path.stat().st_mode & 0o777 == 0o644:
                return False
        except OSError:
            pass
        write_text_atomic(path, text, 0o644)
        return True


def tui_socket(explicit_config: str | None, path: Path = CLIENT_CONFIG,
               daemon_config: Path | None = None) -> Path:
    """The socket `monostack tui` connects to, needing nothing root-only: the config named on
    the command line (or MONOSTACK_CONFIG), else the client config, else the daemon's config
    when this user can read it, else the daemon's default socket."""
    if explicit_config:
        return Path(Config.load(Path(explicit_config)).api.socket)
    client = ClientConfig.load(path)
    if client is not None:
        return client.socket
    if daemon_config is not None and os.access(daemon_config, os.R_OK):
        return Path(Config.load(daemon_config).api.socket)
    return ClientConfig.socket


def openrc(client: ClientConfig, user: str, project: str, *, password: str | None = None,
           domain: str = "Default") -> str:
    """An openrc for the OpenStack clients. With `password` it is a secret file (the admin's,
    root-only); without, sourcing it asks for the password, so an operator's copy holds none."""
    import shlex
    if not client.url:
        raise Invalid("the appliance has no TCP API ([api] listen): the OpenStack clients "
                      "cannot reach it")
    q = shlex.quote
    lines = [f"# monostack: OpenStack clients as {user} on project {project}. Use: . THIS-FILE",
             f"export OS_AUTH_URL={q(client.url.rstrip('/') + '/identity')}",
             "export OS_IDENTITY_API_VERSION=3",
             f"export OS_USERNAME={q(user)}", f"export OS_PROJECT_NAME={q(project)}",
             f"export OS_USER_DOMAIN_NAME={q(domain)}",
             f"export OS_PROJECT_DOMAIN_NAME={q(domain)}"]
    if client.cacert:
        lines.append(f"export OS_CACERT={q(str(client.cacert))}")
    if password is not None:
        lines.append(f"export OS_PASSWORD={q(password)}")
    else:
        lines += [f"printf '%s' {q(f'Password for {user}: ')} >&2",
                  "stty -echo 2>/dev/null; read -r OS_PASSWORD; stty echo 2>/dev/null; echo >&2",
                  "export OS_PASSWORD"]
    return "\n".join(lines) + "\n"
