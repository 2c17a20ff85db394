"""Can KVM really run a guest here? The probe boots a kernel under `qemu -accel kvm`; its
verdict is remembered per (kernel, QEMU, CPU) so a warm restart does not pay for it again.

A nested or paravirtual KVM opens /dev/kvm and creates VMs, yet an ordinary guest kernel never
gets past the firmware under it: only a real boot tells. Where KVM does not work the probe
waits for its whole timeout (~10 s), which was API downtime on every daemon start. The verdict
depends only on the host kernel, the QEMU binary and the CPU, so it is cached under that key
and probed again when any of them changes (an upgrade, a new CPU, a migrated VM).

The probe's qemu dies with the daemon: the kernel sends it SIGKILL when its parent dies
(PR_SET_PDEATHSIG), so a daemon killed during the probe leaves no qemu behind.
"""
from __future__ import annotations

import asyncio
import ctypes
import fcntl
import glob
import hashlib
import json
import logging
import os
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from storage.atomic import write_text_atomic

log = logging.getLogger("monostack.compute")

_KVM_GET_API_VERSION = 0xAE00
_KVM_CREATE_VM = 0xAE01


def kvm_device_usable(path: str = "/dev/kvm") -> bool:
    """/dev/kvm opens, speaks API 12 and creates a VM. Necessary, not sufficient: a nested or
    paravirtual KVM (kvm-pvm here) passes this and still cannot run an ordinary guest kernel."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, _KVM_GET_API_VERSION) != 12:
            return False
        vm = fcntl.ioctl(fd, _KVM_CREATE_VM, 0)
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)

_PR_SET_PDEATHSIG = 1
CACHE_NAME = "kvm-probe.json"


def default_probe_kernel() -> str | None:
    kernels = sorted(glob.glob("/boot/vmlinuz-*"), key=os.path.getmtime)
    return kernels[-1] if kernels else None


def _die_with_parent() -> None:
    """In the child between fork and exec: SIGKILL when the daemon's thread that forked dies.
    Then, should the daemon have died before this line, go at once."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(1)


async def kvm_boots_kernel(qemu: str, kernel: str, timeout: float) -> bool:
    """Boot `kernel` under qemu -accel kvm with earlyprintk on the serial port and wait for the
    'Linux version' banner: proof that a real guest gets from firmware to the kernel."""
    proc = await asyncio.create_subprocess_exec(
        qemu, "-accel", "kvm", "-display", "none", "-nodefaults", "-no-user-config",
        "-m", "128", "-no-reboot", "-serial", "stdio", "-kernel", kernel,
        "-append", "earlyprintk=ttyS0 console=ttyS0 panic=-1",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, preexec_fn=_die_with_parent)
    seen = b""
    try:
        async with asyncio.timeout(timeout):
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(4096):
                seen = (seen + chunk)[-8192:]
                if b"Linux version" in seen:
                    return True
    except TimeoutError:
        pass
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return False


def _cpu_identity() -> str:
    """Model name and flags of the first CPU: what KVM's usability can depend on."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    first = text.split("\n\n", 1)[0]
    keep = [line for line in first.splitlines()
            if line.split(":")[0].strip() in ("vendor_id", "model name", "flags")]
    return "\n".join(keep)


def _qemu_version(qemu: str) -> str:
    try:
        out = subprocess.run([qemu, "-version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        st = os.stat(qemu)
        return f"{st.st_size}:{st.st_mtime_ns}"


def probe_key(qemu: str, kernel: str) -> str:
    """What the verdict depends on, hashed: host kernel, QEMU build, CPU, probe kernel."""
    parts = [os.uname().release, os.uname().version, qemu, _qemu_version(qemu),
             _cpu_identity(), kernel]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ProbeVerdict:
    key: str
    kvm_boots: bool
    detail: str


def read_verdict(path: Path) -> ProbeVerdict | None:
    try:
        data = json.loads(path.read_text())
        return ProbeVerdict(key=str(data["key"]), kvm_boots=bool(data["kvm_boots"]),
                            detail=str(data.get("detail", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_verdict(path: Path, verdict: ProbeVerdict) -> None:
    write_text_atomic(path, json.dumps(asdict(verdict)), 0o644)


async def kvm_boots_cached(qemu: str, kernel: str, timeout: float,
                           cache: Path | None) -> bool:
    """kvm_boots_kernel, remembered in `cache` under probe_key; a cache that cannot be read or
    written only costs a probe."""
    key = await asyncio.to_thread(probe_key, qemu, kernel)
    if cache is not None:
        known = await asyncio.to_thread(read_verdict, cache)
        if known is not None and known.key == key:
            log.info("KVM probe verdict from %s: %s", cache, known.detail)
            return known.kvm_boots
    boots = await kvm_boots_kernel(qemu, kernel, timeout)
    detail = ("a guest kernel boots under KVM" if boots else
              f"KVM is present but a guest kernel did not boot under it within {timeout:g} s")
    if cache is not None:
        try:
            await asyncio.to_thread(_write_verdict, cache, ProbeVerdict(key, boots, detail))
        except OSError as exc:
            log.warning("cannot remember the KVM probe verdict in %s: %s", cache, exc)
    return boots
