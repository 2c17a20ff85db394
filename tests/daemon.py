"""Running real daemons for tests: in-process (fast, same loop) or as a subprocess (for kills).

Every daemon gets its own state directory, socket, TCP port and names, so tests never touch a
daemon already running on the machine.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.client import MonostackClient
from appliance.config import Config

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "admin-secret-Pa55"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(base: Path, *, components: list[str] | None = None,
                 extra: dict[str, dict[str, Any]] | None = None) -> tuple[Path, Config]:
    """A TOML config rooted in `base`, with a fresh TCP port and unique namespace name."""
    port = free_port()
    sections: dict[str, dict[str, Any]] = {
        "api": {"socket": str(base / "api.sock"), "listen": f"127.0.0.1:{port}"},
        "compute": {"libvirt_uri": "test:///default", "instances_dir": str(base / "instances")},
        "network": {"namespace": "mst-" + uuid.uuid4().hex[:8]},
        "storage": {"images_dir": str(base / "images"), "volumes_dir": str(base / "volumes"),
                    "object_devices": [str(base / f"objects/d{i}") for i in (1, 2, 3)]},
        "identity": {"lockout_failures": 5, "lockout_seconds": 300},
        "log": {"format": "text", "level": "WARNING"},
    }
    for name, values in (extra or {}).items():
        sections.setdefault(name, {}).update(values)
    lines = [f'state_dir = "{base / "state"}"']
    if components is not None:
        lines.append("components = [" + ", ".join(f'"{c}"' for c in components) + "]")
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml(value)}")
    path = base / "monostack.toml"
    base.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path, Config.load(path)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def monostack_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "appliance", *args]


def run_init(config_path: Path, password: str = ADMIN_PASSWORD) -> None:
    subprocess.run(monostack_cmd("--config", str(config_path), "init", "--quiet",
                                 "--admin-password", password),
                   check=True, cwd=ROOT, env=_env(), timeout=120)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class DaemonProcess:
    """`monostack serve` as a real process, for kill -9 and CLI tests."""

    config_path: Path
    config: Config
    proc: subprocess.Popen | None = None
    #: extra environment (e.g. tests.serve_slow's MONOSTACK_TEST_* delays)
    env: dict[str, str] | None = None
    #: run this module instead of `monostack serve` (it takes the config path as argv[1])
    serve_module: str | None = None

    @property
    def url(self) -> str:
        return self.config.api.base_url

    def start(self, timeout: float = 60.0, *, settled: bool = True) -> None:
        """Spawn it and wait until it listens — and, with `settled`, until no component is
        still starting (the daemon answers before compute's reconciliation is over; tests
        that act on state right after a restart want the reconciled state)."""
        log = open(self.config_path.parent / "daemon.log", "ab")
        cmd = (monostack_cmd("--config", str(self.config_path), "serve")
               if self.serve_module is None
               else [sys.executable, "-m", self.serve_module, str(self.config_path)])
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**_env(), **(self.env or {})},
                                     stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}: "
                                   + (self.config_path.parent / "daemon.log").read_text()[-3000:])
            try:
                with socket.create_connection(self.config.api.listen_host_port, timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if not settled or not any(str(h).startswith("starting")
                                      for h in self.health().get("components", {}).values()):
                return
            time.sleep(0.05)
        raise TimeoutError("daemon did not start listening (or did not settle)")

    def health(self) -> dict[str, Any]:
        """GET /healthz over the unix socket ({} when it does not answer)."""
        import json
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(self.config.api.socket))
                s.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return json.loads(data.split(b"\r\n\r\n", 1)[1])
        except (OSError, ValueError, IndexError):
            return {}

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def stop(self, *, keep_namespace: bool = False) -> int | None:
        self.kill(signal.SIGTERM)
        if not keep_namespace:
            remove_namespace(self.config)
        return self.proc.returncode if self.proc else None

    def client(self) -> MonostackClient:
        return MonostackClient(socket_path=self.config.api.socket)


def remove_namespace(config: Config) -> None:
    """Delete a test daemon's data-plane namespace: the daemon never removes it on stop
    (`monostack network teardown` is the explicit way), so tests clean up after themselves."""
    name = config.network.namespace
    if name.startswith("mst-") and os.path.exists(f"/run/netns/{name}"):
        from pyroute2 import netns
        netns.remove(name)


class InProcessDaemon:
    """An Appliance in the test's own event loop: fastest way to exercise the real API.

    On exit the test namespace (if the network component made one) is deleted, unless
    `keep_namespace` (a restart test hands it to the next daemon; then call remove_namespace).
    """

    def __init__(self, config: Config, components: list[str] | None = None, *,
                 keep_namespace: bool = False, component_options: dict[str, Any] | None = None
                 ) -> None:
        from appliance.service import Appliance
        self.config = config
        self.keep_namespace = keep_namespace
        self.appliance = Appliance(config, components=components,
                                   component_options=component_options)

    async def __aenter__(self) -> "InProcessDaemon":
        try:
            await self.appliance.startup()
            await self.appliance.ctx.identity.bootstrap("admin", ADMIN_PASSWORD, "admin")
            await self.appliance.bootstrap(self.appliance.ctx.identity.project_by_name("admin"))
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.appliance.shutdown()
        finally:
            if not self.keep_namespace:
                remove_namespace(self.config)

    @property
    def url(self) -> str:
        return self.config.api.base_url

    async def admin_client(self) -> MonostackClient:
        client = MonostackClient(socket_path=self.config.api.socket)
        await client.login("admin", ADMIN_PASSWORD, "admin")
        return client


async def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll an async or sync predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached in time")
        await asyncio.sleep(interval)
