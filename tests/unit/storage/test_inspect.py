"""The inspector accepts what qemu-img makes and refuses what would make qemu read host files."""
from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from storage.errors import UnsafeImage
from storage.inspect import ABSURD_VIRTUAL_SIZE, inspect, qemu_format, verify

from .conftest import needs_qemu_img, qemu_img, qemu_img_info

pytestmark = needs_qemu_img

GiB = 1 << 30


def _patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _make_iso(tmp_path: Path, tool: str) -> Path:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} missing")
    src = tmp_path / "iso-src"
    src.mkdir(exist_ok=True)
    (src / "meta_data.json").write_text('{"name": "vm1"}')
    out = tmp_path / f"{tool}.iso"
    if tool == "xorriso":
        cmd = ["xorriso", "-as", "mkisofs", "-quiet", "-V", "config-2", "-o", str(out), str(src)]
    else:
        cmd = ["genisoimage", "-quiet", "-V", "config-2", "-r", "-J", "-o", str(out), str(src)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def _vmdk_descriptor(path: Path) -> tuple[int, int, str]:
    """(offset, size, text) of a sparse vmdk's embedded descriptor."""
    head = path.read_bytes()[:512]
    desc_sector, desc_sectors = struct.unpack_from("<QQ", head, 28)
    raw = path.read_bytes()[desc_sector * 512:(desc_sector + desc_sectors) * 512]
    return desc_sector * 512, desc_sectors * 512, raw.split(b"\0", 1)[0].decode()


def _rewrite_vmdk_descriptor(path: Path, text: str) -> None:
    offset, size, _old = _vmdk_descriptor(path)
    data = text.encode()
    assert len(data) < size
    _patch(path, offset, data + b"\0" * (size - len(data)))


# ------------------------------------------------------------------ valid images are accepted


@pytest.mark.parametrize(
    ("qemu_fmt", "declared", "options", "expected"),
    [
        ("qcow2", "qcow2", (), "qcow2"),
        ("qcow2", "qcow2", ("-o", "compat=0.10"), "qcow2"),
        ("qcow2", "qcow2", ("-o", "cluster_size=2M"), "qcow2"),
        ("vmdk", "vmdk", (), "vmdk"),
        ("vmdk", "vmdk", ("-o", "subformat=streamOptimized"), "vmdk"),
        ("vpc", "vhd", (), "vhd"),
        ("vpc", "vpc", ("-o", "subformat=fixed"), "vhd-fixed"),
        ("vhdx", "vhdx", (), "vhdx"),
        ("raw", "raw", (), "raw"),
    ],
)
def test_valid_images_pass_and_sizes_match_qemu(make_image, qemu_fmt, declared, options, expected) -> None:
    path = make_image(qemu_fmt, "64M", *options)
    info = verify(path, declared, max_virtual_size=GiB)
    assert info.format == expected
    assert info.virtual_size == qemu_img_info(path, qemu_fmt)["virtual-size"]
    assert info.safe
    assert qemu_format(declared) == qemu_fmt


@pytest.mark.parametrize("tool", ["xorriso", "genisoimage"])
def test_iso_passes_as_iso_and_as_raw(tmp_path: Path, tool: str) -> None:
    iso = _make_iso(tmp_path, tool)
    assert verify(iso, "iso").format == "iso"
    assert verify(iso, "raw").virtual_size == iso.stat().st_size
    assert qemu_format("iso") == "raw"


def test_raw_disk_with_partition_tables_is_raw(tmp_path: Path) -> None:
    mbr = tmp_path / "mbr.raw"
    mbr.write_bytes(b"\0" * 510 + b"\x55\xaa" + b"\0" * 4096)
    assert verify(mbr, "raw").format == "mbr"
    gpt = tmp_path / "gpt.raw"
    gpt.write_bytes(b"\0" * 510 + b"\x55\xaa" + b"EFI PART" + b"\0" * 8192)
    assert verify(gpt, "raw").format == "gpt"
    with pytest.raises(UnsafeImage, match="gpt"):
        verify(gpt, "qcow2")


def test_qcow2_with_internal_snapshot_is_fine(make_image) -> None:
    path = make_image("qcow2")
    qemu_img("snapshot", "--image-opts", "-c", "snap1", f"driver=qcow2,file.filename={path}")
    assert verify(path, "qcow2").virtual_size == 1 << 20


# ------------------------------------------------------------------ hostile images are refused


def test_qcow2_backing_file_naming_host_file_is_refused(make_image) -> None:
    path = make_image("qcow2", "1M", "-b", "/etc/passwd", "-F", "raw")
    with pytest.raises(UnsafeImage, match=r"backing file \('/etc/passwd'\)"):
        verify(path, "qcow2")
    assert inspect(path).backing_file == "/etc/passwd"


def test_qcow2_v2_backing_file_is_refused(make_image) -> None:
    path = make_image("qcow2", "1M", "-o", "compat=0.10", "-b", "/etc/hostname", "-F", "raw")
    with pytest.raises(UnsafeImage, match="backing file"):
        verify(path, "qcow2")


def test_qcow2_external_data_file_is_refused(make_image, tmp_path: Path) -> None:
    path = make_image("qcow2", "1M", "-o", f"data_file={tmp_path / 'data.raw'}")
    with pytest.raises(UnsafeImage, match="external data file"):
        verify(path, "qcow2")


def test_qcow2_data_file_extension_without_feature_bit_is_refused(make_image, tmp_path: Path) -> None:
    path = make_image("qcow2", "1M", "-o", f"data_file={tmp_path / 'data.raw'}")
    incompat = struct.unpack_from(">Q", path.read_bytes(), 72)[0]
    _patch(path, 72, struct.pack(">Q", incompat & ~(1 << 2)))
    with pytest.raises(UnsafeImage, match=r"external data file \('/"):
        verify(path, "qcow2")


def test_qcow2_unknown_incompatible_feature_is_refused(make_image) -> None:
    path = make_image("qcow2")
    _patch(path, 72, struct.pack(">Q", 1 << 40))
    with pytest.raises(UnsafeImage, match="unknown incompatible features"):
        verify(path, "qcow2")


@pytest.mark.parametrize("cluster_bits", [0, 8, 22, 63])
def test_qcow2_insane_cluster_bits_are_refused(make_image, cluster_bits: int) -> None:
    path = make_image("qcow2")
    _patch(path, 20, struct.pack(">I", cluster_bits))
    with pytest.raises(UnsafeImage, match="cluster_bits"):
        verify(path, "qcow2")


@pytest.mark.parametrize("version", [1, 4, 0xFFFFFFFF])
def test_qcow2_unknown_versions_are_refused(make_image, version: int) -> None:
    path = make_image("qcow2")
    _patch(path, 4, struct.pack(">I", version))
    with pytest.raises(UnsafeImage, match="version"):
        verify(path, "qcow2")


def test_encrypted_qcow2_is_refused(make_image) -> None:
    path = make_image("qcow2")
    _patch(path, 32, struct.pack(">I", 1))
    with pytest.raises(UnsafeImage, match="encrypted"):
        verify(path, "qcow2")


def test_raw_declared_as_qcow2_is_refused(make_image) -> None:
    path = make_image("raw")
    with pytest.raises(UnsafeImage, match="image data is raw, but disk_format 'qcow2'"):
        verify(path, "qcow2")


@pytest.mark.parametrize("declared", ["raw", "iso", "ami"])
def test_qcow2_declared_as_raw_is_refused(make_image, declared: str) -> None:
    path = make_image("qcow2")
    with pytest.raises(UnsafeImage, match=f"image data is qcow2, but disk_format '{declared}'"):
        verify(path, declared)


@pytest.mark.parametrize(
    ("qemu_fmt", "declared"),
    [("vmdk", "qcow2"), ("qcow2", "vmdk"), ("vpc", "vhdx"), ("vhdx", "raw"), ("vmdk", "raw"),
     ("vpc", "raw"), ("qcow2", "vhd")],
)
def test_any_format_mismatch_is_refused(make_image, qemu_fmt: str, declared: str) -> None:
    with pytest.raises(UnsafeImage, match="was declared"):
        verify(make_image(qemu_fmt), declared)


def test_vmdk_descriptor_naming_host_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.vmdk"
    path.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\n\n# Extent description\n'
        'RW 2048 FLAT "/etc/passwd" 0\n\n# The Disk Data Base\n'
    )
    with pytest.raises(UnsafeImage, match=r"names other files as extents \(FLAT '/etc/passwd'\)"):
        verify(path, "vmdk")
    with pytest.raises(UnsafeImage, match="image data is vmdk"):
        verify(path, "raw")


def test_qemu_made_descriptor_only_vmdks_are_refused(make_image) -> None:
    for subformat in ("monolithicFlat", "twoGbMaxExtentSparse"):
        with pytest.raises(UnsafeImage, match="names other files"):
            verify(make_image("vmdk", "1M", "-o", f"subformat={subformat}"), "vmdk")


def test_vmdk_sparse_with_second_extent_is_refused(make_image) -> None:
    path = make_image("vmdk")
    _off, _size, text = _vmdk_descriptor(path)
    lines = [ln for ln in text.splitlines() if ln.startswith("RW ")]
    assert len(lines) == 1
    evil = text.replace(lines[0], lines[0] + '\nRW 2048 FLAT "/etc/passwd" 0')
    _rewrite_vmdk_descriptor(path, evil)
    with pytest.raises(UnsafeImage, match="2 extents"):
        verify(path, "vmdk")


def test_vmdk_sparse_extent_naming_a_path_is_refused(make_image) -> None:
    path = make_image("vmdk")
    _off, _size, text = _vmdk_descriptor(path)
    line = next(ln for ln in text.splitlines() if ln.startswith("RW "))
    _rewrite_vmdk_descriptor(path, text.replace(line, 'RW 2048 SPARSE "/var/lib/other.vmdk"'))
    with pytest.raises(UnsafeImage, match="names another file"):
        verify(path, "vmdk")


def test_vmdk_sparse_with_zero_capacity_is_refused(make_image) -> None:
    # qemu then opens the embedded descriptor's extents as if it were a descriptor file.
    path = make_image("vmdk")
    _patch(path, 12, struct.pack("<Q", 0))
    with pytest.raises(UnsafeImage, match="zero capacity"):
        verify(path, "vmdk")


def test_vmdk_parent_hint_is_refused(make_image) -> None:
    path = make_image("vmdk")
    _off, _size, text = _vmdk_descriptor(path)
    _rewrite_vmdk_descriptor(path, text + 'parentFileNameHint="/etc/shadow"\n')
    with pytest.raises(UnsafeImage, match="parent"):
        verify(path, "vmdk")


def test_vmdk_disallowed_create_type_is_refused(make_image) -> None:
    path = make_image("vmdk")
    _off, _size, text = _vmdk_descriptor(path)
    _rewrite_vmdk_descriptor(path, text.replace('"monolithicSparse"', '"vmfsSparse"'))
    with pytest.raises(UnsafeImage, match="createType 'vmfsSparse' is not allowed"):
        verify(path, "vmdk")


def test_differencing_vhd_is_refused(make_image) -> None:
    path = make_image("vpc")
    _patch(path, 60, struct.pack(">I", 4))
    with pytest.raises(UnsafeImage, match="differencing vhd"):
        verify(path, "vhd")


@pytest.mark.parametrize(
    ("qemu_fmt", "declared", "keep"),
    [("qcow2", "qcow2", 40), ("qcow2", "qcow2", 80), ("vmdk", "vmdk", 60), ("vpc", "vhd", 30),
     ("vhdx", "vhdx", 8), ("vhdx", "vhdx", 200 * 1024)],
)
def test_truncated_headers_are_refused(make_image, qemu_fmt: str, declared: str, keep: int) -> None:
    path = make_image(qemu_fmt)
    with open(path, "r+b") as f:
        f.truncate(keep)
    with pytest.raises(UnsafeImage):
        verify(path, declared)


def test_truncated_iso_is_refused(tmp_path: Path) -> None:
    iso = _make_iso(tmp_path, "genisoimage")
    with open(iso, "r+b") as f:
        f.truncate(16 * 2048 + 40)
    with pytest.raises(UnsafeImage):
        verify(iso, "iso")


def test_absurd_virtual_size_is_refused(make_image) -> None:
    path = make_image("qcow2")
    _patch(path, 24, struct.pack(">Q", 1 << 62))
    with pytest.raises(UnsafeImage, match="absurd"):
        verify(path, "qcow2")
    assert ABSURD_VIRTUAL_SIZE < 1 << 62


def test_virtual_size_over_the_limit_is_refused(make_image) -> None:
    path = make_image("qcow2", "10G")
    with pytest.raises(UnsafeImage, match="over the limit"):
        verify(path, "qcow2", max_virtual_size=GiB)
    assert verify(path, "qcow2", max_virtual_size=20 * GiB).virtual_size == 10 * GiB


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    for declared in ("raw", "qcow2", "iso"):
        with pytest.raises(UnsafeImage, match="empty"):
            verify(path, declared)


@pytest.mark.parametrize("declared", ["raw", "qcow2"])
def test_gzip_junk_is_refused(make_image, tmp_path: Path, declared: str) -> None:
    path = tmp_path / "disk.qcow2.gz"
    path.write_bytes(gzip.compress(make_image("qcow2").read_bytes()))
    with pytest.raises(UnsafeImage, match="gzip-compressed"):
        verify(path, declared)


def test_qcow2_hidden_in_iso_system_area_is_refused(tmp_path: Path, make_image) -> None:
    iso = _make_iso(tmp_path, "genisoimage")
    _patch(iso, 0, make_image("qcow2", "1M", "-b", "/etc/passwd", "-F", "raw").read_bytes()[:512])
    for declared in ("iso", "raw", "qcow2"):
        with pytest.raises(UnsafeImage):
            verify(iso, declared)
    assert "several formats" in " ".join(inspect(iso).problems)


@pytest.mark.parametrize(
    ("magic", "offset", "name"),
    [(b"QED\x00", 0, "qed"), (b"LUKS\xba\xbe", 0, "luks"), (struct.pack("<I", 0xBEDA107F), 0x40, "vdi")],
)
def test_other_formats_declared_raw_are_refused(tmp_path: Path, magic: bytes, offset: int, name: str) -> None:
    path = tmp_path / "x"
    data = bytearray(1 << 16)
    data[offset:offset + len(magic)] = magic
    path.write_bytes(bytes(data))
    with pytest.raises(UnsafeImage, match=f"image data is {name}"):
        verify(path, "raw")


def test_unsupported_declared_format_is_refused(make_image) -> None:
    with pytest.raises(UnsafeImage, match="not supported"):
        verify(make_image("raw"), "ploop")
