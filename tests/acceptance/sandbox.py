"""A clean Debian 12 root made here with debootstrap, in a sandbox of its own, for running
packaging/install.sh exactly as a newcomer would (tests/acceptance/).

The root runs in a sandbox of its own: new mount, PID and network namespaces (`unshare`), so
its /proc, /sys and /dev mounts never show on the host, killing the sandbox's PID 1 ends every
process the install started (libvirtd, virtlogd, the daemon), and libvirt's default network,
the data-plane namespace and the API port live in a network namespace nobody else uses.
slirp4netns gives that namespace outbound access (apt, pip) without touching the host's
interfaces or firewall. /dev is a small tmpfs with a few nodes, never the host's /dev (apt in a
chroot with the host /dev re-groups /dev/kvm to the chroot's kvm gid).

The base system is cached as a tarball under /var/cache/monostack-test/, one per day, so only
the first run of the day pays for debootstrap (~2 minutes). It comes from the Debian mirror
this host's own apt sources name (as the host was installed from it), never a fixed one. The host's downloaded .debs are
hard-linked into the root's apt cache (apt checks their hashes, so a mismatch is downloaded).

Guests boot under QEMU/TCG (the sandbox has no /dev/kvm). The sandbox's libvirt runs qemu without a per-domain mount namespace (qemu.conf
`namespaces = []`, pre-seeded by the test): inside a chroot, libvirt's private /dev cannot
give qemu a PTY for the serial console.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import glob
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import ROOT

CACHE = Path("/var/cache/monostack-test")
WORK = Path("/var/lib/monostack-test")
#: The CA bundle this host's clients trust: the one its environment names (CI hands the bundle
#: that holds the package proxy's CA in SSL_CERT_FILE / PIP_CERT, beside a system bundle that
#: does not), else the system's.
HOST_CA = next((Path(p) for p in (os.environ.get("SSL_CERT_FILE"), os.environ.get("PIP_CERT"))
                if p and Path(p).is_file()), Path("/etc/ssl/certs/ca-certificates.crt"))
PASSWORD = "install-Test-pw-7"
IN_ROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
    # The package index is reached through a proxy whose CA only the host's bundle holds.
    "PIP_CERT": "/etc/ssl/host-ca.crt", "SSL_CERT_FILE": "/etc/ssl/host-ca.crt",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}

_MISSING = [t for t in ("debootstrap", "unshare", "nsenter", "slirp4netns", "git")
            if shutil.which(t) is None]
SANDBOX_MARKS = [
    pytest.mark.integration,
    pytest.mark.slow,  # a Debian root, install.sh's apt and pip, then TCG guests: minutes
    pytest.mark.skipif(bool(_MISSING), reason=f"not installed: {_MISSING} (tests/run.sh)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]


def host_debian_mirror() -> str | None:
    """The Debian archive this host's apt uses (deb822 .sources first, then sources.list)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            for line in f:
                m = re.match(r"^URIs:\s*(\S+/debian)/?\s*$", line)
                if m:
                    return m.group(1)
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+/debian)/?\s", line)
            if m:
                return m.group(1)
    return None


REAPER = """
import os, time
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.5)
"""


def base_tarball() -> Path:
    """Today's debootstrap'ed bookworm minbase as a tarball; built once (under a lock)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"bookworm-minbase-{dt.date.today():%Y%m%d}.tar"
    with open(CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        mirror = host_debian_mirror()
        if mirror is None:
            pytest.skip("this host's apt sources name no Debian mirror to debootstrap from")
        build = CACHE / f".build-{uuid.uuid4().hex[:8]}"
        try:
            subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(build), mirror],
                           check=True, capture_output=True, timeout=900)
            tmp = tarball.with_suffix(".tar.tmp")
            subprocess.run(["tar", "-C", str(build), "-cf", str(tmp), "."], check=True)
            tmp.rename(tarball)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        for old in CACHE.glob("bookworm-minbase-*.tar"):
            if old != tarball:
                old.unlink()
    return tarball


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _mounted_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(prefix)]


class Sandbox:
    """A Debian root in private mount/PID/network namespaces; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.holder: subprocess.Popen | None = None
        self.slirp: subprocess.Popen | None = None
        self.init_pid = 0

    def start(self) -> None:
        # unshare forks PID 1 of the new namespace; --kill-child ends it (and so every process
        # in the namespace) with unshare. PID 1 must reap orphans: libvirt waits for a
        # destroyed qemu to be gone, and a zombie never is.
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--net", "--pid", "--fork",
             "--kill-child", "/usr/bin/python3", "-c", REAPER], start_new_session=True)
        deadline = time.monotonic() + 10
        while not (kids := _children(self.holder.pid)):
            if time.monotonic() > deadline:
                raise TimeoutError("sandbox did not start")
            time.sleep(0.02)
        self.init_pid = kids[0]
        self.slirp = subprocess.Popen(
            ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
             str(self.init_pid), "tap0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        r = str(self.root)
        self.host_sh(f"""
            set -e
            mount --bind {r} {r}  # "/" of the root is a mount point (libvirt's qemu namespaces)
            mount -t proc proc {r}/proc
            mount -t sysfs sysfs {r}/sys
            mount -t tmpfs -o mode=0755,size=16m devtmp {r}/dev
            cd {r}/dev
            mknod -m 666 null c 1 3; mknod -m 666 zero c 1 5; mknod -m 666 full c 1 7
            mknod -m 666 random c 1 8; mknod -m 666 urandom c 1 9; mknod -m 666 tty c 5 0
            mkdir pts shm net; mknod -m 666 net/tun c 10 200
            mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts {r}/dev/pts
            mknod -m 666 ptmx c 5 2  # since Linux 4.7 it opens the devpts beside it
            ln -s /proc/self/fd fd
            ln -s /proc/self/fd/0 stdin; ln -s /proc/self/fd/1 stdout; ln -s /proc/self/fd/2 stderr
            mount -t tmpfs -o mode=1777 shm {r}/dev/shm
            ip link set lo up
        """)
        for _ in range(100):  # slirp4netns configures tap0 with 10.0.2.100 and a default route
            if "10.0.2.100" in self.host_sh("ip -4 addr show", check=False).stdout:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError("slirp4netns did not configure the sandbox network")

    def host_sh(self, script: str, *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """A shell in the sandbox's namespaces, with the host's file system view."""
        return subprocess.run([*self._nsenter(), "sh", "-c", script], capture_output=True,
                              text=True, check=check, timeout=timeout)

    def argv(self, *argv: str, env: dict[str, str] | None = None) -> list[str]:
        """The command line that runs `argv` inside the root (chroot in our namespaces)."""
        environment = [f"{k}={v}" for k, v in {**IN_ROOT_ENV, **(env or {})}.items()]
        return [*self._nsenter(), "chroot", str(self.root), "/usr/bin/env", "-i",
                *environment, *argv]

    def _nsenter(self) -> list[str]:
        # --root: entering a mount namespace resets the root to the namespace's own; the
        # sandbox's PID 1 keeps ours, which is not "/" when the suite itself runs in a chroot.
        return ["nsenter", "-t", str(self.init_pid), "-m", "-n", "-p", "--root"]

    def run(self, *argv: str, timeout: float = 600, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        """A command inside the root, to its end."""
        return subprocess.run(self.argv(*argv, env=env), capture_output=True, text=True,
                              timeout=timeout)

    def stop(self) -> None:
        if self.holder is not None and self.holder.poll() is None:
            self.holder.terminate()  # unshare kills PID 1 → the kernel kills the namespace
            try:
                self.holder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait(timeout=30)
        if self.slirp is not None and self.slirp.poll() is None:
            self.slirp.send_signal(signal.SIGTERM)
            self.slirp.wait(timeout=30)


def prepare_root(root: Path) -> None:
    subprocess.run(["tar", "-C", str(root), "-xf", str(base_tarball())], check=True)
    # the source tree as a user would have it: tracked and untracked files, no venv, no .git
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    src = root / "src" / "monostack"
    for name in filter(None, files):
        rel = name.decode()
        if not (ROOT / rel).is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    (root / "etc/ssl").mkdir(exist_ok=True)
    shutil.copy(HOST_CA, root / "etc/ssl/host-ca.crt")
    (root / "etc/resolv.conf").write_text("nameserver 10.0.2.3\n")  # slirp4netns' DNS
    # Services do not start themselves during package installation (chroot convention);
    # install.sh starts what it needs.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    # libvirt's per-domain /dev namespace cannot give qemu a PTY on this sandbox's small /dev
    # ("Failed to create PTY"); a real host does not need this. Pre-seeded before the package
    # is installed, kept by dpkg (confold) so no restart is needed.
    (root / "etc/libvirt").mkdir(parents=True, exist_ok=True)
    (root / "etc/libvirt/qemu.conf").write_text("# monostack install test: no mount namespace "
                                                "per domain in this sandbox\nnamespaces = []\n")
    (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/monostack-test").write_text("force-confdef\nforce-confold\n")
    # The host kernel package is installed for the guest image's kernel and modules only; its
    # initramfs (half a minute of gzip here) is never used.
    (root / "etc/initramfs-tools").mkdir(parents=True, exist_ok=True)
    (root / "etc/initramfs-tools/update-initramfs.conf").write_text("update_initramfs=no\n")
    archives = root / "var/cache/apt/archives"
    archives.mkdir(parents=True, exist_ok=True)
    for deb in Path("/var/cache/apt/archives").glob("*.deb"):
        try:
            os.link(deb, archives / deb.name)
        except OSError:
            break  # another file system: apt downloads instead


@contextlib.contextmanager
def sandbox_root() -> Iterator[Sandbox]:
    """A started sandbox over a fresh root; stopped and removed on leaving."""
    WORK.mkdir(parents=True, exist_ok=True)
    root = WORK / f"install-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    box = Sandbox(root)
    try:
        prepare_root(root)
        box.start()
        yield box
    finally:
        log = root / "var/log/monostack.log"
        if log.exists():
            print("--- daemon log (tail) ---\n" + log.read_text()[-3000:])
        box.stop()
        leftover = _mounted_under(root)
        assert not leftover, f"mounts left under {root}: {leftover}"
        shutil.rmtree(root, ignore_errors=True)


def install(box: Sandbox, port: int) -> subprocess.CompletedProcess:
    out = box.run("bash", "/src/monostack/packaging/install.sh", "--admin-password", PASSWORD,
                  "--listen", f"127.0.0.1:{port}", timeout=600)
    print(out.stdout[-4000:], out.stderr[-4000:])
    assert out.returncode == 0, f"install.sh failed ({out.returncode}):\n{out.stderr[-3000:]}"
    return out
