"""Fixtures: an ObjectEngine on three (or four) device directories under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.objects import ObjectEngine


def device_dirs(root: Path, n: int) -> list[Path]:
    return [root / f"dev{i}" for i in range(n)]


@pytest.fixture
async def engine(tmp_path: Path):
    eng = ObjectEngine(device_dirs(tmp_path, 3), None, tmp_path / "index" / "objects.sqlite")
    await eng.start()
    await eng.create_container("AUTH_p", "c")
    try:
        yield eng
    finally:
        await eng.close()


@pytest.fixture
async def engine4(tmp_path: Path):
    """Four devices, three replicas: one device is a handoff for every object."""
    eng = ObjectEngine(device_dirs(tmp_path, 4), 3, tmp_path / "index" / "objects.sqlite")
    await eng.start()
    await eng.create_container("AUTH_p", "c")
    try:
        yield eng
    finally:
        await eng.close()


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def data_files(eng: ObjectEngine, ohash: str) -> dict[str, list[Path]]:
    """device id → .data files of one object."""
    out: dict[str, list[Path]] = {}
    for d in eng.ring.devices:
        hd = d.path / "objects" / ohash[:3] / ohash
        out[d.id] = sorted(hd.glob("*.data")) if hd.exists() else []
    return out
