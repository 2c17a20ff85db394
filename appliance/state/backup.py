"""Online backup and offline restore of the state store.

A backup is one snapshot file written by the running daemon from its in-memory tables at the
moment the request arrives, so it holds every write acknowledged before the backup began and
nothing half-applied. Restore is offline (the state lock must be free): the backup becomes the
store's snapshot and every journal segment is removed.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from appliance.errors import Invalid
from appliance.state.store import SCHEMA_VERSION, Store, _fsync_dir

FORMAT = "monostack-state-backup/1"


async def backup_store(store: Store, path: Path) -> dict:
    """Copy the tables on the loop (a consistent cut), write them in a thread."""
    tables = store._copy_tables()
    meta = {"format": FORMAT, "created_at": time.time(), "seq": store._seq,
            "schema_version": store.schema_version,
            "counts": {name: len(docs) for name, docs in tables.items()}}
    await asyncio.to_thread(_write, Path(path), {**meta, "tables": tables})
    return meta


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(json.dumps(data, separators=(",", ":")).encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


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
    _fsync_dir(state_dir)
    return {k: data[k] for k in ("created_at", "seq", "counts")}
