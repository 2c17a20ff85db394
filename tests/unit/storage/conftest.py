"""Shared helpers: real qemu-img / genisoimage images made in tmp_path."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img missing")


def qemu_img(*args: str | Path) -> None:
    subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True)


def qemu_img_info(path: Path, fmt: str = "qcow2") -> dict:
    import json

    out = subprocess.run(
        ["qemu-img", "info", "-U", "-f", fmt, "--output=json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


@pytest.fixture
def make_image(tmp_path: Path):
    """make_image(fmt, size="1M", *options) → path of a fresh image made by qemu-img."""
    counter = iter(range(1000))

    def _make(fmt: str, size: str = "1M", *options: str) -> Path:
        path = tmp_path / f"img{next(counter)}.{fmt}"
        qemu_img("create", "-q", "-f", fmt, *options, path, size)
        return path

    return _make
