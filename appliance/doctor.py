"""`monostack doctor`: checks the host the appliance needs and says what to fix.

Runs without the daemon (it is what you run when the daemon will not start), so it reads the
host directly with standard tools rather than through the API.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Config


@dataclass
class Check:
    name: str
    level: str  # ok | warn | fail
    detail: str
    fix: str = ""


def _run(*cmd: str) -> tuple[int, str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
        return out.returncode, (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)


def check_kvm() -> Check:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return Check("hypervisor", "ok", "/dev/kvm opens; the daemon boots a probe guest at start "
                     "and falls back to QEMU/TCG if KVM cannot really run it (nested hosts)")
    except OSError as exc:
        return Check("hypervisor", "warn", f"KVM not usable ({exc.strerror}); guests run under "
                     "QEMU/TCG, several times slower",
                     "enable virtualisation in firmware, load kvm_intel/kvm_amd, or accept TCG")


def check_libvirt(config: Config) -> Check:
    if not shutil.which("virsh"):
        return Check("libvirt", "fail", "virsh not found", "apt-get install libvirt-daemon-system")
    rc, out = _run("virsh", "-c", config.compute.libvirt_uri, "version")
    if rc == 0:
        return Check("libvirt", "ok", f"{config.compute.libvirt_uri} answers")
    return Check("libvirt", "fail", f"{config.compute.libvirt_uri} unreachable: {out[-200:]}",
                 "systemctl start libvirtd (or: virtlogd -d; libvirtd -d)")


def check_namespaces(config: Config) -> Check:
    ns = Path("/run/netns") / config.network.namespace
    if ns.exists():
        return Check("data plane", "ok", f"namespace {config.network.namespace} exists")
    if os.geteuid() != 0:
        return Check("data plane", "fail", "not root: cannot create network namespaces",
                     "run the daemon as root (the systemd unit does)")
    return Check("data plane", "warn", f"namespace {config.network.namespace} not created yet",
                 "it is created when the daemon starts")


def check_nftables() -> Check:
    if shutil.which("nft"):
        return Check("nftables", "ok", "nft available")
    return Check("nftables", "fail", "nft not found", "apt-get install nftables")


def check_space(config: Config) -> list[Check]:
    out = []
    for label, path in (("state", config.state_dir), ("images", config.storage.images_dir),
                        ("volumes", config.storage.volumes_dir),
                        ("instances", config.compute.instances_dir)):
        p = Path(path)
        while not p.exists() and p != p.parent:
            p = p.parent
        st = os.statvfs(p)
        free = st.f_bavail * st.f_frsize
        level = "ok" if free > 5 << 30 else "warn" if free > 1 << 30 else "fail"
        out.append(Check(f"space ({label})", level, f"{free / 2**30:.1f} GiB free under {path}",
                         "" if level == "ok" else f"free space on the filesystem holding {path}"))
    return out


def check_tls(config: Config) -> Check | None:
    """The TCP API's certificate still names this host and is not about to expire."""
    if not config.api.listen or not config.api.tls_cert:
        return None
    from appliance.tls import pending_change
    why = pending_change(Path(config.api.tls_cert).parent)
    if not why:
        return Check("tls", "ok", f"{config.api.tls_cert} names this host")
    return Check("tls", "warn", f"{config.api.tls_cert}: {why}",
                 "monostack tls init, then restart the daemon (systemctl restart monostack)")


def check_daemon(config: Config) -> Check:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(str(config.api.socket))
        return Check("daemon", "ok", f"answering on {config.api.socket}")
    except OSError as exc:
        return Check("daemon", "warn", f"not answering on {config.api.socket} ({exc.strerror})",
                     "systemctl start monostack (or: monostack serve)")
    finally:
        s.close()


def run_checks(config: Config) -> list[Check]:
    checks = [check_kvm(), check_libvirt(config), check_namespaces(config), check_nftables(),
              check_tls(config), *check_space(config), check_daemon(config)]
    return [c for c in checks if c is not None]
