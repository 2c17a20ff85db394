"""Names never become paths: hostile names are stored safely inside the devices or refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.objects import InvalidName, ObjectEngine, aiter_bytes
from storage.objects.names import check_object

from .conftest import all_files, device_dirs

HOSTILE = [
    "../../etc/passwd",
    "../../../../../../../../tmp/escaped",
    "%2e%2e/%2e%2e/x",
    "/absolute/path",
    "..",
    ".",
    "a/../../b",
    "\\..\\..\\windows",
    "con",
    " leading and trailing ",
    "ünïcødé/☃/𝄞",
    "\u202eevil\u202c",
    "new\nline\r",
    "x" * 1024,
    "é" * 512,  # 1024 bytes in UTF-8
]


async def test_hostile_names_stay_inside_the_devices(tmp_path: Path):
    root = tmp_path / "root"
    outside_before = {p for p in tmp_path.parent.rglob("*")} - {p for p in root.rglob("*")}
    eng = ObjectEngine(device_dirs(root, 3), None, root / "index.sqlite")
    await eng.start()
    try:
        await eng.create_container("AUTH_p", "c")
        for i, name in enumerate(HOSTILE):
            await eng.put_object("AUTH_p", "c", name, aiter_bytes(f"body{i}".encode()))
        for i, name in enumerate(HOSTILE):
            _, body = await eng.get_object("AUTH_p", "c", name)
            assert await body.read() == f"body{i}".encode()
        listed = [e.name for e in await eng.list_objects("AUTH_p", "c")]
        assert listed == sorted(HOSTILE, key=lambda s: s.encode())
    finally:
        await eng.close()
    devices = [d.resolve() for d in device_dirs(root, 3)]
    for f in all_files(root):
        r = f.resolve()
        assert r == (root / "index.sqlite").resolve() or str(r).startswith(str(root / "index.sqlite")) or \
            any(r.is_relative_to(d) for d in devices), f
        # file names inside the devices are hashes and timestamps only
        assert all(part.isascii() for part in f.relative_to(root).parts), f
    outside_after = {p for p in tmp_path.parent.rglob("*")} - {p for p in root.rglob("*")}
    assert outside_after - outside_before <= {root} | set(root.parents)
    assert not Path("/tmp/escaped").exists()


@pytest.mark.parametrize(
    "name, why",
    [
        (b"\xff\xfe bad utf-8", "UTF-8"),
        ("lone \udc80 surrogate", "UTF-8"),
        ("nul\x00byte", "NUL"),
        ("x" * 1025, "1025 bytes"),
        ("é" * 513, "1026 bytes"),
        ("", "empty"),
    ],
)
async def test_invalid_names_are_refused_with_a_clear_error(engine, name, why):
    with pytest.raises(InvalidName, match=why):
        await engine.put_object("AUTH_p", "c", name, aiter_bytes(b"x"))
    with pytest.raises(InvalidName):
        check_object(name)
    assert await engine.list_objects("AUTH_p", "c") == []


async def test_container_and_account_names_are_checked(engine):
    with pytest.raises(InvalidName, match="'/'"):
        await engine.create_container("AUTH_p", "a/b")
    with pytest.raises(InvalidName):
        await engine.create_container("AUTH_p\x00", "c")
    with pytest.raises(InvalidName):
        await engine.create_container("AUTH_p", "c" * 257)
