"""Instance disk files: qcow2 overlays over cached image bases, resizing, and cleanup.

qemu-img runs only through `storage.qemu_img` (format always named, under resource limits);
its errors become HypervisorError here, the compute side's word for "the disk tooling failed".

Layout: `<instances_dir>/<instance uuid>/` (0755: qemu runs as libvirt-qemu and must traverse)
holding `disk` (root overlay), `disk.config` (config drive), `disk.rescue`,
`disk.resize-backup` and `console.log` (virtlogd).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from appliance.errors import HypervisorError, Invalid
from storage import qemu_img
from storage.errors import QemuImgError

GiB = 1 << 30
_FORMATS = {"qcow2", "raw"}


def _fmt(fmt: str) -> str:
    if fmt not in _FORMATS:
        raise Invalid(f"unsupported disk format {fmt!r}")
    return fmt


@contextlib.contextmanager
def _hypervisor_errors() -> Iterator[None]:
    try:
        yield
    except QemuImgError as exc:
        raise HypervisorError(str(exc)[-500:]) from exc


async def virtual_size(path: Path, fmt: str) -> int:
    with _hypervisor_errors():
        return (await qemu_img.info(path, _fmt(fmt), force_share=True)).virtual_size


async def create_overlay(path: Path, base: Path, base_fmt: str, size_bytes: int | None) -> None:
    """qcow2 overlay backed by `base` (absolute path, format named), grown to size_bytes."""
    with _hypervisor_errors():
        await qemu_img.create_overlay(path, Path(base).resolve(), _fmt(base_fmt),
                                      size_bytes or None)
    await asyncio.to_thread(os.chmod, path, 0o644)


async def create_blank(path: Path, size_bytes: int, fmt: str = "qcow2") -> None:
    with _hypervisor_errors():
        await qemu_img.create(path, _fmt(fmt), size_bytes)
    await asyncio.to_thread(os.chmod, path, 0o644)


async def grow(path: Path, fmt: str, size_bytes: int) -> None:
    """Grow only (a shrink would destroy guest data); no-op if already big enough."""
    if await virtual_size(path, fmt) >= size_bytes:
        return
    with _hypervisor_errors():
        await qemu_img.resize(path, _fmt(fmt), size_bytes)


async def convert(src: Path, src_fmt: str, dest: Path, dest_fmt: str) -> None:
    with _hypervisor_errors():
        await qemu_img.convert(src, _fmt(src_fmt), dest, _fmt(dest_fmt), force_share=True)


def instance_dir(instances_dir: Path, instance_id: str) -> Path:
    return Path(instances_dir) / instance_id


def make_instance_dir(instances_dir: Path, instance_id: str) -> Path:
    """Create <instances_dir>/<id>/ and make every level traversable by libvirt-qemu."""
    root = Path(instances_dir)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    path = root / instance_id
    path.mkdir(exist_ok=True)
    os.chmod(path, 0o755)
    return path


def remove_instance_dir(instances_dir: Path, instance_id: str) -> None:
    shutil.rmtree(instance_dir(instances_dir, instance_id), ignore_errors=True)


def tail_file(paths: list[Path], max_bytes: int) -> bytes:
    """The last max_bytes of the concatenation of `paths` (oldest first; missing ones skipped)."""
    chunks: list[bytes] = []
    need = max_bytes
    for p in reversed(paths):
        try:
            with open(p, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                start = max(0, size - need)
                f.seek(start)
                data = f.read(size - start)
        except OSError:
            continue
        chunks.insert(0, data)
        need -= len(data)
        if need <= 0:
            break
    return b"".join(chunks)[-max_bytes:]
