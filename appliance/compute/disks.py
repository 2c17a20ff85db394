"""Instance disk files: qcow2 overlays over cached image bases, resizing, and cleanup.

A minimal local qemu-img wrapper (asyncio subprocess, formats always named with -f/-F so a
raw file can never be probed as something else). When `storage.qemu_img` is merged it can
replace `_run`; the call sites stay the same.

Layout: `<instances_dir>/<instance uuid>/` (0755: qemu runs as libvirt-qemu and must traverse)
holding `disk` (root overlay), `disk.config` (config drive), `disk.rescue`,
`disk.resize-backup` and `console.log` (virtlogd).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from appliance.errors import HypervisorError, Invalid

GiB = 1 << 30
_FORMATS = {"qcow2", "raw"}


def _fmt(fmt: str) -> str:
    if fmt not in _FORMATS:
        raise Invalid(f"unsupported disk format {fmt!r}")
    return fmt


async def _run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "qemu-img", *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise HypervisorError(f"qemu-img {args[0]} failed: "
                              f"{err.decode(errors='replace').strip()[-500:]}")
    return out.decode()


async def virtual_size(path: Path, fmt: str) -> int:
    info = json.loads(await _run("info", "--output=json", "-U", "-f", _fmt(fmt), str(path)))
    return int(info["virtual-size"])


async def create_overlay(path: Path, base: Path, base_fmt: str, size_bytes: int | None) -> None:
    """qcow2 overlay backed by `base` (absolute path, format named), grown to size_bytes."""
    args = ["create", "-q", "-f", "qcow2", "-b", str(Path(base).resolve()), "-F", _fmt(base_fmt),
            str(path)]
    if size_bytes:
        args.append(str(size_bytes))
    await _run(*args)
    await asyncio.to_thread(os.chmod, path, 0o644)


async def create_blank(path: Path, size_bytes: int, fmt: str = "qcow2") -> None:
    await _run("create", "-q", "-f", _fmt(fmt), str(path), str(size_bytes))
    await asyncio.to_thread(os.chmod, path, 0o644)


async def grow(path: Path, fmt: str, size_bytes: int) -> None:
    """Grow only (a shrink would destroy guest data); no-op if already big enough."""
    if await virtual_size(path, fmt) >= size_bytes:
        return
    await _run("resize", "-q", "-f", _fmt(fmt), str(path), str(size_bytes))


async def convert(src: Path, src_fmt: str, dest: Path, dest_fmt: str) -> None:
    await _run("convert", "-U", "-f", _fmt(src_fmt), "-O", _fmt(dest_fmt), str(src), str(dest))


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
