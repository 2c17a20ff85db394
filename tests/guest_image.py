"""The monostack test guest, built once per test session.

Every VM test boots the same small guest (packaging/guest-image/build.sh: the
Debian cloud kernel + a busybox initramfs on a syslinux disk). Building takes
a few seconds and is cached by build.sh under a hash of its inputs, so calling
`ensure_guest_image()` from many tests (or many pytest workers) is cheap.

The image lives under /var/lib/monostack-test/guest-image/<hash>/ rather than
in pytest's tmp_path: qemu:///system runs QEMU as libvirt-qemu, which must be
able to traverse every directory above the disk.

Boot the base image through a qcow2 overlay (`GuestImage.overlay`), never
directly, so tests can run guests side by side without touching the base.

Console lines the guest prints (see packaging/guest-image/init):
    BOOTING_MARKER, "lease: <ip> router <gw> dns <dns>",
    "metadata-source: config-drive|metadata-service", "instance-name: <name>",
    "public-keys: <n> installed", READY_MARKER, then PROMPT.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "packaging" / "guest-image" / "build.sh"
TEST_ROOT = Path(os.environ.get("MONOSTACK_TEST_ROOT", "/var/lib/monostack-test"))

BOOTING_MARKER = "monostack-guest booting"
READY_MARKER = "monostack-guest ready"
PROMPT = "/ # "
INSTANCE_NAME_PREFIX = "instance-name: "
LEASE_PREFIX = "lease: "


class GuestImageBuildError(RuntimeError):
    """build.sh failed; the message carries its stderr."""


@dataclass(frozen=True)
class GuestImage:
    """One built guest disk, in two formats with the same content."""

    raw: Path
    qcow2: Path

    @property
    def directory(self) -> Path:
        return self.qcow2.parent

    def overlay(self, dest: Path) -> Path:
        """Create a qcow2 overlay at `dest` backed by the (read-only) base qcow2.

        Formats are named explicitly (-f/-F): qemu never probes.
        """
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2",
             "-b", str(self.qcow2), "-F", "qcow2", str(dest)],
            check=True, capture_output=True, text=True,
        )
        dest.chmod(0o644)
        return dest


def make_traversable_dir(path: Path) -> Path:
    """mkdir -p with every created level 0755, so libvirt-qemu can reach files in it."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for level in reversed(missing):
        level.mkdir(exist_ok=True)
        level.chmod(0o755)
    return path


@functools.cache
def ensure_guest_image(root: Path | None = None) -> GuestImage:
    """Build the guest image if needed (once per process) and return its paths.

    Raises GuestImageBuildError when build.sh fails (e.g. a Debian package it
    needs is not installed; its message says which).
    """
    out_root = make_traversable_dir((root or TEST_ROOT) / "guest-image")
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(out_root)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        raise GuestImageBuildError(
            f"{BUILD_SCRIPT} failed ({result.returncode}):\n{result.stderr}"
        )
    lines = result.stdout.strip().splitlines()
    qcow2 = Path(lines[-1]) if lines else Path()
    image = GuestImage(raw=qcow2.with_name("guest.raw"), qcow2=qcow2)
    for path in (image.raw, image.qcow2):
        if not path.is_file():
            raise GuestImageBuildError(f"{BUILD_SCRIPT} printed {lines[-1:]} but {path} is missing")
    return image
