"""A tiny test guest: the host kernel direct-booted with a busybox initramfs whose /init
announces itself on the serial console and echoes what it reads (`poweroff` powers off).

Files go under /var/lib/monostack-test/<uuid>/ (0755) so qemu, running as libvirt-qemu, can
read them; pytest's tmp_path is not traversable by that user."""
from __future__ import annotations

import glob
import io
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

TEST_ROOT = Path("/var/lib/monostack-test")

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
stty -F /dev/console -echo 2>/dev/null
while true; do
  echo "MONOSTACK-READY {marker}"
  if read -t 1 line; then
    echo "ECHO:$line"
    case "$line" in poweroff) sync; poweroff -f;; esac
  fi
done
"""


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """An uncompressed newc cpio archive (what the kernel unpacks as initramfs)."""
    out = io.BytesIO()

    def pad(n: int) -> None:
        out.write(b"\0" * ((4 - n % 4) % 4))

    ino = 1
    for name, mode, data in [*entries, ("TRAILER!!!", 0, b"")]:
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out.write(header + name.encode() + b"\0")
        pad(len(header) + len(name) + 1)
        out.write(data)
        pad(len(data))
        ino += 1
    return out.getvalue()


def host_kernel() -> str | None:
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    return kernels[-1] if kernels else None


@dataclass
class GuestFiles:
    directory: Path
    kernel: str
    initrd: str
    disk: str
    console_log: str
    marker: str

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def make_guest_files(uuid: str) -> GuestFiles:
    kernel = host_kernel()
    assert kernel, "no host kernel in /boot"
    TEST_ROOT.mkdir(mode=0o755, exist_ok=True)
    os.chmod(TEST_ROOT, 0o755)
    d = TEST_ROOT / uuid
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    marker = f"marker-{uuid}"
    busybox = Path("/usr/bin/busybox").read_bytes()
    dirmode, filemode = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755
    archive = _cpio_newc([
        ("bin", dirmode, b""), ("proc", dirmode, b""), ("sys", dirmode, b""),
        ("dev", dirmode, b""), ("bin/busybox", filemode, busybox),
        ("init", filemode, INIT.format(marker=marker).encode()),
    ])
    (d / "initrd.cpio").write_bytes(archive)
    shutil.copy(kernel, d / "vmlinuz")
    disk = d / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 1M", str(disk)], check=True,
                   capture_output=True)
    for p in d.iterdir():
        os.chmod(p, 0o644)
    return GuestFiles(directory=d, kernel=str(d / "vmlinuz"), initrd=str(d / "initrd.cpio"),
                      disk=str(disk), console_log=str(d / "console.log"), marker=marker)
