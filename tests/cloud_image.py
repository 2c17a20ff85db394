"""The Debian cloud-init guest image, built once per machine (packaging/guest-image/
build-cloudinit.sh: debootstrap from Debian packages, no loop mounts) and cached by that
script under a hash of its inputs, like the busybox test guest (tests/guest_image.py).

The first build downloads a few hundred MiB of packages and takes minutes; every later call
only prints the cached path. It lives under /var/lib/monostack-test/cloud-image/ so
libvirt-qemu can traverse to it.
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from tests.guest_image import REPO_ROOT, TEST_ROOT, GuestImageBuildError, make_traversable_dir

BUILD_SCRIPT = REPO_ROOT / "packaging" / "guest-image" / "build-cloudinit.sh"


@functools.cache
def ensure_cloud_image(root: Path | None = None) -> Path:
    """The cached cloud-init image's qcow2 path (building it first if needed)."""
    out_root = make_traversable_dir((root or TEST_ROOT) / "cloud-image")
    result = subprocess.run(["bash", str(BUILD_SCRIPT), str(out_root)],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise GuestImageBuildError(f"{BUILD_SCRIPT} failed ({result.returncode}):\n"
                                   f"{result.stderr[-4000:]}")
    path = Path(result.stdout.strip().splitlines()[-1])
    if not path.is_file():
        raise GuestImageBuildError(f"{BUILD_SCRIPT} printed {path} but it is missing")
    return path
