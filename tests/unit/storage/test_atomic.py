from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from storage import atomic
from storage.atomic import (
    atomic_writer,
    remove_stale_temps,
    write_bytes_atomic,
    write_bytes_atomic_async,
    write_text_atomic,
)
from storage.errors import DiskFull


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_write_replaces_content_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    write_text_atomic(target, "new", mode=0o600)
    assert target.read_text() == "new"
    assert (target.stat().st_mode & 0o777) == 0o600
    assert _leftovers(tmp_path) == ["state.json"]


def test_exception_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old and complete")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_writer(target) as f:
            f.write(b"half of the new")
            raise RuntimeError("crash")
    assert target.read_text() == "old and complete"
    assert _leftovers(tmp_path) == ["state.json"]


def test_fsync_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "injected I/O error")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="injected"):
        write_bytes_atomic(target, b"new")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == ["state.json"]


def test_enospc_becomes_disk_full_and_temp_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(DiskFull):
        write_bytes_atomic(target, b"new")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == ["state.json"]


def test_rename_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "injected rename failure")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_bytes_atomic(target, b"new")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == ["state.json"]


def test_directory_is_fsynced_after_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    monkeypatch.setattr(atomic, "fsync_dir", lambda p: synced.append(os.fspath(p)))
    write_bytes_atomic(tmp_path / "x", b"1")
    assert synced == [os.fspath(tmp_path)]


async def test_async_variant_writes(tmp_path: Path) -> None:
    await write_bytes_atomic_async(tmp_path / "a", b"data")
    assert (tmp_path / "a").read_bytes() == b"data"


def test_stale_temps_are_swept(tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("x")
    (tmp_path / ".keep.tmp-abc123").write_text("partial")
    removed = remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [".keep.tmp-abc123"]
    assert _leftovers(tmp_path) == ["keep"]
