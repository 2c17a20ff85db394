"""Online backup and offline restore of the state store.

A backup is one snapshot file written by the running daemon from its in-memory tables at the
moment the request arrives, so it holds every write acknowledged before the backup began and
nothing half-applied. Restore is offline (the state lock must be free): the backup becomes the
store's snapshot and every journal segment is removed.

The daemon runs as root, and holding the cloud's admin role must not mean writing where root
can: a backup goes only into the directory the operator configured (`backup_dir`), under a
name the daemon makes up, created with O_EXCL|O_NOFOLLOW relative to that directory, so no
client input names a path and no link planted there is followed. Moving it elsewhere is a
host-side job (`monostack backup PATH`, run by root on the host).
"""
from __future__ import annotations

import asyncio
import errno
import json
import os
import secrets
import shutil
import time
from pathlib import Path

from appliance.errors import InsufficientStorage, Invalid, MonostackError
from appliance.state.store import SCHEMA_VERSION, Store
from storage.atomic import atomic_writer, fsync_dir, write_bytes_atomic

FORMAT = "monostack-state-backup/1"


async def backup_store(store: Store, directory: Path) -> dict:
    """Copy the tables on the loop (a consistent cut), write them in a thread into a new file
    of `directory`; the answer names the file."""
    tables = store._copy_tables()
    meta = {"format": FORMAT, "created_at": time.time(), "seq": store._seq,
            "schema_version": store.schema_version,
            "counts": {name: len(docs) for name, docs in tables.items()}}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(meta["created_at"]))
    name = f"monostack-{stamp}-seq{store._seq}-{secrets.token_hex(4)}.json"
    try:
        path = await asyncio.to_thread(_write_new, Path(directory), name,
                                       {**meta, "tables": tables})
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage("backup: the backup directory's disk is full") from exc
        raise MonostackError(f"backup: cannot write into {directory}: {exc.strerror}") from exc
    return {"path": str(path), "name": name, **meta}


def _write_new(directory: Path, name: str, data: dict) -> Path:
    """Write `name` into `directory` as a new file: O_EXCL and O_NOFOLLOW relative to the
    directory's descriptor, so a link or file planted under the name is refused, never
    followed or overwritten; renamed into place only once complete and synced."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    partial = "." + name + ".partial"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(data, separators=(",", ":")).encode())
                f.flush()
                os.fsync(f.fileno())
            # a link(2) cannot replace an existing name either: the final name stays O_EXCL
            os.link(partial, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.unlink(partial, dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return directory / name


def move_backup(source: Path, dest: Path) -> None:
    """Host-side: put a finished backup at `dest` (mode 0600), replacing it atomically."""
    with atomic_writer(dest, 0o600) as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
    Path(source).unlink()


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, json.dumps(data, separators=(",", ":")).encode(), 0o600)


def restore_backup(backup: Path, state_dir: Path) -> dict:
    data = json.loads(Path(backup).read_bytes())
    if data.get("format") != FORMAT:
        raise Invalid(f"{backup} is not a monostack state backup")
    if data.get("schema_version", 1) > SCHEMA_VERSION:
        raise Invalid("the backup comes from a newer monostack; upgrade first")
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    snapshot = {"schema_version": data["schema_version"], "seq": data["seq"],
                "tables": data["tables"]}
    _write(state_dir / "snapshot.json", snapshot)
    for seg in state_dir.glob("journal.*"):
        seg.unlink()
    fsync_dir(state_dir)
    return {k: data[k] for k in ("created_at", "seq", "counts")}
