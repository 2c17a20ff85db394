"""qemu-img has one door: storage/qemu_img.py (format named, resource limits)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOOR = ROOT / "storage" / "qemu_img.py"


def _runs_qemu_img(tree: ast.AST) -> list[int]:
    """Lines holding the program name as a string (how a subprocess call would name it)."""
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value in ("qemu-img", "/usr/bin/qemu-img")]


def test_only_storage_qemu_img_names_the_program() -> None:
    offenders = []
    for package in ("appliance", "storage", "tui"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == DOOR:
                continue
            lines = _runs_qemu_img(ast.parse(path.read_text(), str(path)))
            offenders += [f"{path.relative_to(ROOT)}:{n}" for n in lines]
    assert offenders == []
    assert _runs_qemu_img(ast.parse(DOOR.read_text()))  # the check would see a real call


def test_every_qemu_img_command_names_the_format() -> None:
    """Each public helper of the door passes -f (or --image-opts driver=…) to qemu-img."""
    source = DOOR.read_text()
    tree = ast.parse(source)
    for fn in (n for n in tree.body if isinstance(n, ast.AsyncFunctionDef)):
        if fn.name.startswith("_") or fn.name in ("run", "snapshot_list"):
            continue
        text = ast.get_source_segment(source, fn) or ""
        assert '"-f"' in text or "_image_opts(" in text, fn.name


async def test_a_domain_disk_without_a_driver_type_is_copied_as_raw_never_probed(tmp_path):
    """The libvirt driver's snapshot copy of a disk whose XML names no format reads it as
    raw (what libvirt hands qemu), so a qcow2 header in it is data, not instructions."""
    import subprocess

    from appliance.compute.driver import DiskFormat
    from appliance.compute.libvirt.driver import _qemu_img_convert
    src, dest = tmp_path / "disk", tmp_path / "copy.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F",
                    "raw", str(src), "1M"], check=True)
    await _qemu_img_convert(str(src), None, str(dest), DiskFormat.RAW)
    copied = dest.read_bytes()
    original = src.read_bytes()
    assert copied.startswith(b"QFI\xfb") and copied[:len(original)] == original
