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


#: `_run`'s return code when the command did not finish in time (timeout(1)'s convention)
TIMED_OUT = 124


def _run(*cmd: str, timeout: float = 15) -> tuple[int, str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return out.returncode, (out.stdout + out.stderr).strip()
    except subprocess.TimeoutExpired:
        return TIMED_OUT, f"no answer within {timeout:g} s"
    except OSError as exc:
        return 127, str(exc)


def unix_refusal(path: Path) -> str | None:
    """None when something accepts connections on the unix socket `path`, else why not. A
    socket file alone says nothing: a /run that is not a tmpfs keeps those of daemons gone."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(str(path))
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        s.close()


def systemd_is_init() -> bool:
    """systemd runs this host (sd_booted's test); otherwise advice must not say systemctl."""
    return Path("/run/systemd/system").is_dir()


def start_advice(unit: str, by_hand: str) -> str:
    """How to start a service on this host: the unit where systemd is PID 1, else by hand."""
    if systemd_is_init():
        return f"systemctl start {unit}"
    return f"{by_hand} (systemd is not PID 1 here)"


def restart_daemon_advice() -> str:
    if systemd_is_init():
        return "systemctl restart monostack"
    return ("kill $(cat /run/monostack/daemon.pid), then bash packaging/install.sh starts it "
            "again (systemd is not PID 1 here)")


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
    uri = config.compute.libvirt_uri
    rc, out = _run("virsh", "-c", uri, "version")
    if rc == 0:
        return Check("libvirt", "ok", f"{uri} answers")
    if rc == TIMED_OUT:
        # Connected or queued but slow (busy with many domains, a stuck storage pool): libvirtd
        # is there, so "start it" would be wrong advice; give it a longer chance to say so.
        rc, out = _run("virsh", "-c", uri, "version", timeout=60)
        if rc == 0:
            return Check("libvirt", "warn", f"{uri} answers, but slowly (over 15 s)",
                         "libvirtd is busy: see its log, or wait")
        if rc == TIMED_OUT:
            return Check("libvirt", "warn", f"{uri} accepted no request within 75 s: libvirtd "
                         "is hung or very busy, not down",
                         "see libvirtd's log; restart it only if it stays this way")
    return Check("libvirt", "fail", f"{uri} unreachable: {out[-200:]}",
                 start_advice("libvirtd", "virtlogd -d; libvirtd -d"))


#: where virtlogd listens for qemu:///system (libvirt's default build)
VIRTLOGD_SOCKET = Path("/run/libvirt/virtlogd-sock")


def check_virtlogd(config: Config) -> Check | None:
    """virtlogd answers: without it libvirtd still answers but no guest starts (every spawn
    fails with "Failed to connect socket to .../virtlogd-sock"). Asked by connecting, since a
    /run that is not a tmpfs keeps the socket file of a virtlogd long gone."""
    if not config.compute.libvirt_uri.startswith("qemu:///system"):
        return None
    why = unix_refusal(VIRTLOGD_SOCKET)
    if why is None:
        return Check("virtlogd", "ok", f"answering on {VIRTLOGD_SOCKET}")
    return Check("virtlogd", "fail", f"not answering on {VIRTLOGD_SOCKET} ({why}): "
                 "no guest can start", start_advice("virtlogd", "virtlogd -d"))


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
                 f"monostack tls init, then restart the daemon ({restart_daemon_advice()})")


def check_daemon(config: Config) -> Check:
    why = unix_refusal(config.api.socket)
    if why is None:
        return Check("daemon", "ok", f"answering on {config.api.socket}")
    return Check("daemon", "warn", f"not answering on {config.api.socket} ({why})",
                 start_advice("monostack", "bash packaging/install.sh (it starts the daemon) "
                                           "or: monostack serve"))


def check_web_console(config: Config, timeout: float = 3.0) -> Check:
    """Is the browser console (`install.sh --web`) answering where the installer put it? It
    is asked for its page over TLS, as a browser would (certificate not checked: this asks
    whether it is up, the browser decides whether to trust it)."""
    import http.client
    import ssl
    if not config.web.listen:
        return Check("web console", "ok", "off (bash packaging/install.sh --web enables it)")
    host, _, port = config.web.listen.rpartition(":")
    host = host.strip("[]")
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"https://{config.web.listen}/"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(probe, int(port), timeout=timeout, context=ctx)
    try:
        conn.request("GET", "/")
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return Check("web console", "warn", f"not answering on {url} "
                     f"({getattr(exc, 'strerror', None) or exc})",
                     start_advice("monostack-web", "bash packaging/install.sh --web"))
    finally:
        conn.close()
    if status == 200:
        return Check("web console", "ok", f"up on {url} (each tab logs in as in the TUI)")
    if status == 503:
        return Check("web console", "ok", f"up on {url}, every session in use")
    return Check("web console", "warn", f"{url} answers HTTP {status}",
                 "journalctl -u monostack-web" if systemd_is_init()
                 else "see /var/log/monostack-web.log")


def run_checks(config: Config) -> list[Check]:
    checks = [check_kvm(), check_libvirt(config), check_virtlogd(config),
              check_namespaces(config), check_nftables(),
              check_tls(config), *check_space(config), check_daemon(config),
              check_ssh_operators(config), check_web_console(config)]
    return [c for c in checks if c is not None]


SSHD_SNIPPET = Path("/etc/ssh/sshd_config.d/monostack.conf")
FORCE_COMMAND = "/usr/local/bin/monostack tui"


def _listening_tcp_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def check_ssh_operators(config: Config) -> Check | None:
    """Can an operator `ssh -t op@host` and land in the TUI? sshd running and listening, the
    snippet forcing the TUI in effect for the group, the socket open to the group. None where
    SSH access was never set up (no snippet, no operators group)."""
    import grp
    from appliance.operators import OPERATORS_GROUP, list_unix_operators
    try:
        group = grp.getgrnam(config.api.socket_group)
    except KeyError:
        group = None
    if not SSHD_SNIPPET.exists() and group is None:
        return None
    problems: list[tuple[str, str]] = []
    if not SSHD_SNIPPET.exists():
        problems.append((f"{SSHD_SNIPPET} is missing", "bash packaging/install.sh"))
    if group is None:
        problems.append((f"no group {config.api.socket_group}", "bash packaging/install.sh"))
    if not Path(FORCE_COMMAND.split()[0]).exists():
        problems.append((f"{FORCE_COMMAND.split()[0]} is missing", "bash packaging/install.sh"))
    rc, effective = _run("sshd", "-T") if shutil.which("sshd") else (127, "")
    ports = {int(line.split()[1]) for line in effective.splitlines()
             if line.startswith("port ")} if rc == 0 else set()
    if rc != 0:
        problems.append((f"sshd's configuration does not load ({effective[-120:]})"
                         if effective else "openssh-server is not installed",
                         "sshd -t shows the error" if effective else "bash packaging/install.sh"))
    elif not ports & _listening_tcp_ports():
        problems.append((f"sshd is not running (nothing listens on port "
                         f"{', '.join(map(str, sorted(ports)))})",
                         start_advice("ssh", "/usr/sbin/sshd")))
    try:
        st = os.stat(config.api.socket)
        if group is not None and (st.st_gid != group.gr_gid or st.st_mode & 0o060 != 0o060):
            problems.append((f"{config.api.socket} is not open to {group.gr_name}",
                             f"restart the daemon ({restart_daemon_advice()})"))
    except OSError:
        pass  # the daemon line says it is down
    operators = list_unix_operators(config.api.socket_group if group else OPERATORS_GROUP)
    if operators and rc == 0:
        rc2, matched = _run("sshd", "-T", "-C",
                            f"user={operators[0].name},host=localhost,addr=127.0.0.1")
        if rc2 == 0 and f"forcecommand {FORCE_COMMAND}" not in matched:
            problems.append((f"sshd does not force {operators[0].name} into the TUI",
                             f"check {SSHD_SNIPPET} and that sshd_config includes "
                             "sshd_config.d"))
    if problems:
        return Check("ssh operators", "warn", "cannot get in: " +
                     "; ".join(p for p, _ in problems), problems[0][1])
    names = ", ".join(o.name for o in operators) or "none yet: monostack operator add NAME --key K"
    return Check("ssh operators", "ok", f"can get in: sshd listens on port "
                 f"{', '.join(map(str, sorted(ports)))}, ssh -t lands in the TUI "
                 f"(operators: {names})")
