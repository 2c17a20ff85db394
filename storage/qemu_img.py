"""The only place that runs qemu-img.

Rules every call here keeps, because qemu-img parses untrusted headers:
- the format is always named (`-f`, `-F` for a backing file, `-O` for output); qemu never
  probes, so a raw upload cannot pose as qcow2 and pull in a backing file;
- the process runs under `prlimit` (address space and CPU time), so a crafted header cannot
  make it eat the host; `info` gets the tight limits OpenStack uses (1 GiB, 30 s CPU);
- it runs through asyncio.create_subprocess_exec (no shell, no blocking the event loop), with
  LC_ALL=C so error text is stable, and a wall-clock timeout on top of the CPU limit.

Callers pass qemu driver names (raw, qcow2, vmdk, vpc, vhdx); storage.inspect.qemu_format maps
Glance disk formats to them.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from storage.errors import QemuImgError

QEMU_IMG = "qemu-img"
PRLIMIT = shutil.which("prlimit") or "/usr/bin/prlimit"
_FORMATS = frozenset({"raw", "qcow2", "vmdk", "vpc", "vhdx"})
_OUTPUT_FORMATS = frozenset({"raw", "qcow2"})


@dataclass(frozen=True)
class Limits:
    """Resource limits for one qemu-img process (prlimit --as / --cpu) plus a wall clock."""

    address_space: int = 1 << 30
    cpu_seconds: int = 30
    wall_seconds: float = 120.0


# Reading headers: OpenStack's limits for `qemu-img info`.
INFO_LIMITS = Limits(address_space=1 << 30, cpu_seconds=30, wall_seconds=60.0)
# Metadata-only changes (create, resize, snapshot): small and quick.
META_LIMITS = Limits(address_space=1 << 30, cpu_seconds=30, wall_seconds=120.0)
# Copying data (convert) is proportional to the disk; memory stays bounded, time does not.
COPY_LIMITS = Limits(address_space=2 << 30, cpu_seconds=3600, wall_seconds=4 * 3600.0)


@dataclass(frozen=True)
class Snapshot:
    id: str
    name: str
    vm_state_size: int
    date_sec: int


@dataclass(frozen=True)
class QemuImgInfo:
    """The parts of `qemu-img info --output=json` callers use."""

    format: str
    virtual_size: int
    actual_size: int
    cluster_size: int | None = None
    backing_file: str | None = None
    backing_format: str | None = None
    data_file: str | None = None
    dirty: bool = False
    snapshots: tuple[Snapshot, ...] = field(default=())


def _check_format(fmt: str, allowed: frozenset[str] = _FORMATS) -> str:
    if fmt not in allowed:
        raise ValueError(f"qemu-img format {fmt!r} is not allowed here")
    return fmt


def _path_arg(path: str | os.PathLike[str]) -> str:
    # A relative name starting with '-' would read as an option; qemu also treats "x:y"
    # filenames as protocol prefixes (e.g. "nbd:…"), so always hand it an absolute path.
    return os.path.abspath(os.fspath(path))


async def run(args: list[str], limits: Limits = META_LIMITS) -> str:
    """Run `qemu-img ARGS` under limits; return stdout, raise QemuImgError on failure."""
    cmd = [
        PRLIMIT, f"--as={limits.address_space}", f"--cpu={limits.cpu_seconds}", "--",
        QEMU_IMG, *args,
    ]
    env = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limits.wall_seconds)
    except BaseException as exc:
        # Timeout or cancellation: never leave a qemu-img running behind us.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(BaseException):
            await proc.wait()
        if isinstance(exc, TimeoutError):
            raise QemuImgError(args, None, f"timed out after {limits.wall_seconds} s") from exc
        raise
    if proc.returncode != 0:
        stderr = err.decode("utf-8", "replace")
        if proc.returncode in (-9, -24, 137, 152):  # SIGKILL / SIGXCPU
            stderr += "\n(qemu-img was killed: resource limit reached)"
        raise QemuImgError(args, proc.returncode, stderr)
    return out.decode("utf-8", "replace")


async def info(path: str | os.PathLike[str], fmt: str, *, force_share: bool = False) -> QemuImgInfo:
    """`qemu-img info -f FMT --output=json` parsed. Does not follow backing files.

    force_share (-U) reads an image a running guest holds open (values may be stale).
    """
    args = ["info", "-f", _check_format(fmt), "--output=json"]
    if force_share:
        args.append("-U")
    args.append(_path_arg(path))
    data = json.loads(await run(args, INFO_LIMITS))
    specific = (data.get("format-specific") or {}).get("data") or {}
    snaps = tuple(
        Snapshot(
            id=str(s.get("id", "")),
            name=str(s.get("name", "")),
            vm_state_size=int(s.get("vm-state-size", 0)),
            date_sec=int(s.get("date-sec", 0)),
        )
        for s in data.get("snapshots", [])
    )
    return QemuImgInfo(
        format=data["format"],
        virtual_size=int(data["virtual-size"]),
        actual_size=int(data.get("actual-size", 0)),
        cluster_size=data.get("cluster-size"),
        backing_file=data.get("backing-filename"),
        backing_format=data.get("backing-filename-format"),
        data_file=specific.get("data-file"),
        dirty=bool(data.get("dirty-flag", False)),
        snapshots=snaps,
    )


async def create(path: str | os.PathLike[str], fmt: str, size: int) -> None:
    """Create an empty image of `size` bytes (qcow2 or raw)."""
    await run(["create", "-q", "-f", _check_format(fmt, _OUTPUT_FORMATS), _path_arg(path), str(size)])


async def create_overlay(
    path: str | os.PathLike[str], base: str | os.PathLike[str], base_fmt: str,
    size: int | None = None,
) -> None:
    """Create a qcow2 copy-on-write overlay over `base` (absolute path recorded in the header).

    `size` may exceed the base's virtual size (the guest sees zeros past the base's end).
    """
    args = [
        "create", "-q", "-f", "qcow2",
        "-b", _path_arg(base), "-F", _check_format(base_fmt),
        _path_arg(path),
    ]
    if size is not None:
        args.append(str(size))
    await run(args)


async def convert(
    src: str | os.PathLike[str], src_fmt: str, dst: str | os.PathLike[str], dst_fmt: str,
    *, snapshot: str | None = None, sparse: bool = True, force_share: bool = False,
) -> None:
    """Copy `src` into a new, self-contained `dst` (backing chain flattened).

    snapshot: read an internal qcow2 snapshot of `src` (by name) instead of its current state.
    force_share (-U): read a disk a (stopped or test) domain still holds open.
    """
    args = ["convert", "-q", "-f", _check_format(src_fmt), "-O", _check_format(dst_fmt, _OUTPUT_FORMATS)]
    if force_share:
        args.append("-U")
    if snapshot is not None:
        args += ["-l", f"snapshot.name={_snapshot_name(snapshot)}"]
    if not sparse:
        args += ["-S", "0"]
    args += [_path_arg(src), _path_arg(dst)]
    await run(args, COPY_LIMITS)


async def resize(path: str | os.PathLike[str], fmt: str, size: int) -> None:
    """Grow an image to `size` bytes (shrinking is refused by qemu-img without --shrink)."""
    await run(["resize", "-q", "-f", _check_format(fmt, _OUTPUT_FORMATS), _path_arg(path), str(size)])


async def check(path: str | os.PathLike[str], fmt: str = "qcow2") -> None:
    """`qemu-img check`: raises QemuImgError when the qcow2 metadata is inconsistent."""
    await run(["check", "-q", "-f", _check_format(fmt), _path_arg(path)], INFO_LIMITS)


def _image_opts(path: str | os.PathLike[str], fmt: str) -> str:
    """An --image-opts spec naming the driver: for subcommands without -f (snapshot in 7.x)."""
    filename = _path_arg(path).replace(",", ",,")  # ',' separates options; ',,' escapes it
    return f"driver={_check_format(fmt)},file.driver=file,file.filename={filename}"


def _snapshot_name(name: str) -> str:
    if not name or len(name) > 127 or any(c in name for c in ",=\0\n") or name.startswith("-"):
        raise ValueError(f"bad snapshot name {name!r}")
    return name


async def snapshot_create(path: str | os.PathLike[str], name: str) -> None:
    """Take an internal snapshot of a qcow2 image that no running guest has open."""
    await run(
        ["snapshot", "-q", "--image-opts", "-c", _snapshot_name(name), _image_opts(path, "qcow2")]
    )


async def snapshot_delete(path: str | os.PathLike[str], name: str) -> None:
    await run(
        ["snapshot", "-q", "--image-opts", "-d", _snapshot_name(name), _image_opts(path, "qcow2")]
    )


async def snapshot_apply(path: str | os.PathLike[str], name: str) -> None:
    """Revert the image's current state to internal snapshot `name`."""
    await run(
        ["snapshot", "-q", "--image-opts", "-a", _snapshot_name(name), _image_opts(path, "qcow2")]
    )


async def snapshot_list(path: str | os.PathLike[str]) -> tuple[Snapshot, ...]:
    return (await info(path, "qcow2", force_share=True)).snapshots


def is_available() -> bool:
    return shutil.which(QEMU_IMG) is not None and Path(PRLIMIT).exists()
