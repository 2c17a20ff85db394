"""A pure-Python disk image inspector: what an uploaded file really is, before anything trusts it.

Why this exists: qemu follows references *inside* image headers — a qcow2 backing file or
external data file, vmdk extents and parent hints, vhd/vhdx parents — so a hostile upload can
make qemu-img or a guest read any host file (/etc/passwd, another tenant's disk). Every qemu-img
call in storage/ names the format with -f, so qemu never probes; this module makes sure the
named format is the real one and that the header names nothing outside the file.

The idea follows OpenStack's format_inspector (oslo.utils / glance): read only headers, with
bounded reads, and decide from fixed offsets; the code is our own. Formats read:

    raw   anything else; gpt / mbr / iso content is still raw to qemu
    qcow2 v2/v3 header, incompatible features, header extensions
    vmdk  monolithicSparse / streamOptimized (KDMV header, embedded descriptor, footer);
          a descriptor-only vmdk (text) is recognised and always refused
    vhd   (qemu "vpc") dynamic (footer copy at 0) or fixed (footer at the end)
    vhdx  region table → metadata table → virtual disk size, parent locator
    iso   ISO 9660 primary volume descriptor at 32 KiB

Other formats are recognised only to refuse them when declared as something else: qed, vdi,
luks, and compressed archives (gzip, xz, bzip2, zstd, zip).

Use `verify(path, declared_format, max_virtual_size)` after an upload lands in its temp file
(`verify_async` on the event loop, which then also has qemu-img open the file);
`inspect(path)` reports without judging.
"""
from __future__ import annotations

import os
import re
import struct
import uuid
from dataclasses import dataclass, field

from storage.errors import QemuImgError, UnsafeImage

# Anything larger is a lie or an attack, whatever the caller's quota (64 TiB).
ABSURD_VIRTUAL_SIZE = 64 << 40
# Bounded reads: no header field makes us read more than this from one place.
_MAX_DESCRIPTOR = 1 << 20

# Disk formats a caller may declare, and the qemu driver name each one maps to.
QEMU_FORMAT = {
    "raw": "raw",
    "qcow2": "qcow2",
    "vmdk": "vmdk",
    "vhd": "vpc",
    "vpc": "vpc",
    "vhdx": "vhdx",
    "iso": "raw",
}
# Glance-style aliases that are raw bytes to qemu (kernels, ramdisks).
_RAW_ALIASES = {"aki", "ari", "ami"}

# Detected formats that are still "raw" when raw is declared: qemu -f raw reads them as bytes
# and they name nothing outside themselves.
_RAW_FAMILY = {"raw", "gpt", "mbr", "iso", "vhd-fixed"}


@dataclass(frozen=True)
class ImageInfo:
    """What the headers say. `problems` lists every reason not to trust the image (empty = ok)."""

    format: str  # raw, qcow2, vmdk, vhd, vhdx, iso, gpt, mbr, qed, vdi, luks, gzip …
    virtual_size: int  # bytes the guest would see
    file_size: int  # bytes on disk
    subformat: str | None = None  # vmdk createType, vhd "dynamic"/"fixed", qcow2 "v3" …
    matches: tuple[str, ...] = ()  # every format whose signature matched
    backing_file: str | None = None  # qcow2 backing file name, if any (reported, refused)
    problems: tuple[str, ...] = field(default=())

    @property
    def safe(self) -> bool:
        return not self.problems


@dataclass
class _Probe:
    format: str
    virtual_size: int = 0
    subformat: str | None = None
    backing_file: str | None = None
    problems: list[str] = field(default_factory=list)
    # Strong signatures cannot appear by accident; two strong matches in one file are refused.
    strong: bool = True


class _Reader:
    """Bounded positional reads of one open file."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        return os.pread(self.fd, min(length, self.size - offset), offset)


# --------------------------------------------------------------------------------- qcow2
_QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_V2_HEADER = 72
_QCOW2_INCOMPAT_DIRTY = 1 << 0
_QCOW2_INCOMPAT_CORRUPT = 1 << 1
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
_QCOW2_INCOMPAT_COMPRESSION = 1 << 3
_QCOW2_INCOMPAT_EXTL2 = 1 << 4
_QCOW2_INCOMPAT_KNOWN = (
    _QCOW2_INCOMPAT_DIRTY
    | _QCOW2_INCOMPAT_CORRUPT
    | _QCOW2_INCOMPAT_DATA_FILE
    | _QCOW2_INCOMPAT_COMPRESSION
    | _QCOW2_INCOMPAT_EXTL2
)
_QCOW2_EXT_END = 0x00000000
_QCOW2_EXT_BACKING_FORMAT = 0xE2792ACA
_QCOW2_EXT_DATA_FILE = 0x44415441
_QCOW2_EXT_CRYPTO = 0x0537BE77


def _probe_qcow2(r: _Reader) -> _Probe | None:
    head = r.read(0, 112)
    if head[:4] != _QCOW2_MAGIC:
        return None
    p = _Probe("qcow2")
    if len(head) < _QCOW2_V2_HEADER:
        p.problems.append("qcow2 header is truncated")
        return p
    (version, backing_off, backing_len, cluster_bits, size, crypt_method) = struct.unpack_from(
        ">IQIIQI", head, 4
    )
    p.virtual_size = size
    p.subformat = f"v{version}"
    if version not in (2, 3):
        p.problems.append(f"qcow2 version {version} is not supported")
        return p
    if not 9 <= cluster_bits <= 21:
        p.problems.append(f"qcow2 cluster_bits {cluster_bits} is out of range 9..21")
        return p
    cluster_size = 1 << cluster_bits
    if backing_off != 0:
        name = r.read(backing_off, min(backing_len, 1023)).decode("utf-8", "replace")
        p.backing_file = name
        p.problems.append(f"qcow2 image has a backing file ({name!r}); backing files are not allowed")
    if crypt_method != 0:
        p.problems.append("encrypted qcow2 images are not supported")

    header_length = _QCOW2_V2_HEADER
    if version == 3:
        if len(head) < 104:
            p.problems.append("qcow2 v3 header is truncated")
            return p
        incompat, _compat, _autoclear, _refcount_order, header_length = struct.unpack_from(
            ">QQQII", head, 72
        )
        if header_length < 104 or header_length > cluster_size:
            p.problems.append(f"qcow2 header_length {header_length} is invalid")
            return p
        if incompat & _QCOW2_INCOMPAT_DATA_FILE:
            p.problems.append("qcow2 image uses an external data file; that is not allowed")
        if incompat & _QCOW2_INCOMPAT_CORRUPT:
            p.problems.append("qcow2 image is marked corrupt")
        unknown = incompat & ~_QCOW2_INCOMPAT_KNOWN
        if unknown:
            p.problems.append(f"qcow2 image has unknown incompatible features {unknown:#x}")

    # Header extensions: a list of (type, length, data padded to 8) up to the end of the first
    # cluster. A data-file extension names a host file even if the feature bit is clear.
    offset = header_length
    limit = min(cluster_size, r.size)
    for _ in range(1024):
        if offset + 8 > limit:
            break
        ext = r.read(offset, 8)
        if len(ext) < 8:
            break
        ext_type, ext_len = struct.unpack(">II", ext)
        if ext_type == _QCOW2_EXT_END:
            break
        if offset + 8 + ext_len > limit:
            p.problems.append("qcow2 header extension runs past the first cluster")
            break
        if ext_type == _QCOW2_EXT_DATA_FILE:
            name = r.read(offset + 8, min(ext_len, 1023)).decode("utf-8", "replace")
            msg = f"qcow2 image names an external data file ({name!r}); that is not allowed"
            p.problems.append(msg)
        elif ext_type == _QCOW2_EXT_CRYPTO:
            if "encrypted qcow2 images are not supported" not in p.problems:
                p.problems.append("encrypted qcow2 images are not supported")
        offset += 8 + ((ext_len + 7) & ~7)
    return p


# --------------------------------------------------------------------------------- vmdk
_VMDK_MAGIC = b"KDMV"
_VMDK3_MAGIC = b"COWD"
_VMDK_GD_AT_END = 0xFFFFFFFFFFFFFFFF
_VMDK_MARKER_FOOTER = 3
_VMDK_MARKER_EOS = 0
# Where qemu itself looks for parentFileNameHint in a sparse vmdk, whatever the header says.
_VMDK_QEMU_DESC_OFFSET = 0x200
_VMDK_QEMU_DESC_SIZE = 20 * 512
ALLOWED_VMDK_CREATE_TYPES = frozenset({"monolithicSparse", "streamOptimized"})
_VMDK_EXTENT = re.compile(
    r'^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\S+)(?:\s+"([^"]*)")?(?:\s+(\d+))?', re.MULTILINE
)
_VMDK_CREATE_TYPE = re.compile(r'^\s*createType\s*=\s*"([^"]*)"', re.MULTILINE)
_VMDK_DESCRIPTOR_START = (b"# Disk DescriptorFile", b"#Disk DescriptorFile")


def _check_vmdk_descriptor(text: str, p: _Probe, embedded: bool) -> None:
    m = _VMDK_CREATE_TYPE.search(text)
    create_type = m.group(1) if m else None
    p.subformat = create_type
    extents = _VMDK_EXTENT.findall(text)
    if not embedded:
        # qemu opens every extent of a descriptor-only vmdk by path: any host file.
        named = [f"{kind} {filename!r}" for _a, _s, kind, filename, _o in extents if filename]
        if named:
            p.problems.append(
                f"vmdk descriptor names other files as extents ({', '.join(named)}); "
                "only self-contained monolithicSparse or streamOptimized vmdk are allowed"
            )
        p.problems.append(
            f"descriptor-only vmdk (createType {create_type!r}) keeps its data in other files; "
            "only self-contained monolithicSparse or streamOptimized vmdk are allowed"
        )
    elif create_type not in ALLOWED_VMDK_CREATE_TYPES:
        p.problems.append(
            f"vmdk createType {create_type!r} is not allowed "
            f"(allowed: {', '.join(sorted(ALLOWED_VMDK_CREATE_TYPES))})"
        )
    if embedded:
        if len(extents) != 1:
            p.problems.append(
                f"vmdk descriptor has {len(extents)} extents; exactly one (the file itself) "
                "is allowed"
            )
        else:
            _access, _sectors, kind, filename, _offset = extents[0]
            if kind != "SPARSE":
                p.problems.append(f"vmdk extent type {kind} is not allowed in a sparse vmdk")
            if "/" in filename or "\\" in filename or not filename:
                p.problems.append(f"vmdk extent names another file ({filename!r})")
    if "parentFileNameHint" in text:
        p.problems.append("vmdk descriptor names a parent disk (parentFileNameHint)")


def _vmdk_text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _probe_vmdk(r: _Reader) -> _Probe | None:
    head = r.read(0, 512)
    if head[:4] == _VMDK3_MAGIC:
        return _Probe("vmdk", subformat="vmfsSparse", problems=["VMDK3 (COWD) images are not supported"])
    if head.startswith(_VMDK_DESCRIPTOR_START):
        p = _Probe("vmdk", virtual_size=0)
        _check_vmdk_descriptor(_vmdk_text(r.read(0, _MAX_DESCRIPTOR)), p, embedded=False)
        return p
    if head[:4] != _VMDK_MAGIC:
        return None
    p = _Probe("vmdk")
    if len(head) < 79:
        p.problems.append("vmdk header is truncated")
        return p
    (version, flags, capacity, grain, desc_off, desc_size, gtes, _rgd, gd_off) = struct.unpack_from(
        "<IIQQQQIQQ", head, 4
    )
    if version > 3:
        p.problems.append(f"vmdk version {version} is not supported")
    if capacity == 0:
        # qemu then treats the embedded descriptor as a descriptor file and opens its extents.
        p.problems.append("sparse vmdk with zero capacity defers to its descriptor's extents")
    if gtes > 512 or gtes == 0 or grain == 0:
        p.problems.append("vmdk grain table geometry is invalid")
    if gd_off == _VMDK_GD_AT_END:
        # streamOptimized: the footer (second-to-last sector) overrides the header.
        footer = r.read(r.size - 1536, 1536)
        ok = len(footer) == 1536
        if ok:
            _val, msize, mtype = struct.unpack_from("<QII", footer, 0)
            e_val, e_size, e_type = struct.unpack_from("<QII", footer, 1024)
            ok = (
                msize == 0 and mtype == _VMDK_MARKER_FOOTER and footer[512:516] == _VMDK_MAGIC
                and e_val == 0 and e_size == 0 and e_type == _VMDK_MARKER_EOS
            )
        if not ok:
            p.problems.append("vmdk footer is missing or invalid")
        else:
            (version, flags, capacity, grain, _d_off, _d_size, gtes, _rgd, gd_off) = (
                struct.unpack_from("<IIQQQQIQQ", footer, 516)
            )
            if version > 3 or gtes > 512 or gtes == 0 or grain == 0:
                p.problems.append("vmdk footer header is invalid")
    p.virtual_size = capacity * 512
    if desc_off == 0 or desc_size == 0:
        p.problems.append("sparse vmdk has no embedded descriptor")
    else:
        nbytes = desc_size * 512
        if nbytes > _MAX_DESCRIPTOR:
            p.problems.append(f"vmdk descriptor is too large ({nbytes} bytes)")
        else:
            raw = r.read(desc_off * 512, nbytes)
            if len(raw) < nbytes:
                p.problems.append("vmdk descriptor is truncated")
            _check_vmdk_descriptor(_vmdk_text(raw), p, embedded=True)
    if desc_off * 512 != _VMDK_QEMU_DESC_OFFSET:
        legacy = _vmdk_text(r.read(_VMDK_QEMU_DESC_OFFSET, _VMDK_QEMU_DESC_SIZE))
        if "parentFileNameHint" in legacy:
            p.problems.append("vmdk names a parent disk (parentFileNameHint)")
    return p


# --------------------------------------------------------------------------------- vhd
_VHD_COOKIE = b"conectix"
_VHD_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}


def _vhd_footer(p: _Probe, footer: bytes) -> None:
    if len(footer) < 64:
        p.problems.append("vhd footer is truncated")
        return
    current_size, = struct.unpack_from(">Q", footer, 48)
    disk_type, = struct.unpack_from(">I", footer, 60)
    p.virtual_size = current_size
    p.subformat = _VHD_TYPES.get(disk_type, f"type {disk_type}")
    if disk_type == 4:
        p.problems.append("differencing vhd names a parent disk; not allowed")
    elif disk_type not in _VHD_TYPES:
        p.problems.append(f"vhd disk type {disk_type} is not supported")


def _probe_vhd(r: _Reader) -> _Probe | None:
    head = r.read(0, 512)
    if head[:8] == _VHD_COOKIE:
        p = _Probe("vhd")
        _vhd_footer(p, head)
        return p
    # A fixed vhd is raw data followed by a 512-byte footer; pre-2004 images used 511 bytes.
    for tail_len in (512, 511):
        tail = r.read(r.size - tail_len, tail_len) if r.size >= tail_len + 512 else b""
        if tail[:8] == _VHD_COOKIE:
            p = _Probe("vhd-fixed", strong=False)
            _vhd_footer(p, tail)
            return p
    return None


# --------------------------------------------------------------------------------- vhdx
_VHDX_SIGNATURE = b"vhdxfile"
_VHDX_REGION_TABLES = (192 << 10, 256 << 10)
_VHDX_METADATA_REGION = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
_VHDX_VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8").bytes_le
_VHDX_FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B").bytes_le
_VHDX_PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C").bytes_le
_VHDX_MAX_ENTRIES = 2047


def _probe_vhdx(r: _Reader) -> _Probe | None:
    if r.read(0, 8) != _VHDX_SIGNATURE:
        return None
    p = _Probe("vhdx")
    metadata_offset = None
    for table_offset in _VHDX_REGION_TABLES:
        table = r.read(table_offset, 16)
        if len(table) < 16 or table[:4] != b"regi":
            continue
        count, = struct.unpack_from("<I", table, 8)
        if count > _VHDX_MAX_ENTRIES:
            continue
        entries = r.read(table_offset + 16, 32 * count)
        for i in range(len(entries) // 32):
            guid = entries[i * 32: i * 32 + 16]
            if guid == _VHDX_METADATA_REGION:
                metadata_offset, = struct.unpack_from("<Q", entries, i * 32 + 16)
                break
        if metadata_offset is not None:
            break
    if metadata_offset is None:
        p.problems.append("vhdx region table is missing or has no metadata region")
        return p
    meta = r.read(metadata_offset, 32)
    if len(meta) < 32 or meta[:8] != b"metadata":
        p.problems.append("vhdx metadata table is missing")
        return p
    count, = struct.unpack_from("<H", meta, 10)
    if count > _VHDX_MAX_ENTRIES:
        p.problems.append("vhdx metadata table is invalid")
        return p
    entries = r.read(metadata_offset + 32, 32 * count)
    size = None
    for i in range(len(entries) // 32):
        item = entries[i * 32: i * 32 + 16]
        item_offset, item_len = struct.unpack_from("<II", entries, i * 32 + 16)
        if item == _VHDX_VIRTUAL_DISK_SIZE:
            data = r.read(metadata_offset + item_offset, 8)
            if len(data) == 8 and item_len >= 8:
                size, = struct.unpack("<Q", data)
        elif item == _VHDX_PARENT_LOCATOR:
            p.problems.append("differencing vhdx names a parent disk; not allowed")
        elif item == _VHDX_FILE_PARAMETERS:
            data = r.read(metadata_offset + item_offset, 8)
            if len(data) == 8 and struct.unpack_from("<I", data, 4)[0] & 0x2:
                if "differencing vhdx names a parent disk; not allowed" not in p.problems:
                    p.problems.append("differencing vhdx names a parent disk; not allowed")
    if size is None:
        p.problems.append("vhdx has no virtual disk size")
    else:
        p.virtual_size = size
    return p


# --------------------------------------------------------------------------------- iso
_ISO_FIRST_DESCRIPTOR = 16 * 2048


def _probe_iso(r: _Reader) -> _Probe | None:
    # Walk the volume descriptor set for the primary descriptor (type 1); stop at 255.
    for n in range(64):
        desc = r.read(_ISO_FIRST_DESCRIPTOR + n * 2048, 2048)
        if len(desc) < 6 or desc[1:6] != b"CD001":
            return None if n == 0 else _Probe("iso", problems=["iso has no primary volume descriptor"])
        if desc[0] == 1:
            if len(desc) < 132:
                return _Probe("iso", problems=["iso primary volume descriptor is truncated"])
            blocks, = struct.unpack_from("<I", desc, 80)
            block_size, = struct.unpack_from("<H", desc, 128)
            if blocks * block_size == 0:
                return _Probe("iso", problems=["iso volume size is zero"])
            return _Probe("iso", virtual_size=r.size)
        if desc[0] == 255:
            break
    return _Probe("iso", problems=["iso has no primary volume descriptor"])


# --------------------------------------------------------------------------------- others
_SIMPLE_SIGNATURES: list[tuple[str, int, bytes]] = [
    ("qed", 0, b"QED\x00"),
    ("luks", 0, b"LUKS\xba\xbe"),
    ("vdi", 0x40, struct.pack("<I", 0xBEDA107F)),
    ("gzip", 0, b"\x1f\x8b"),
    ("xz", 0, b"\xfd7zXZ\x00"),
    ("zstd", 0, b"\x28\xb5\x2f\xfd"),
    ("zip", 0, b"PK\x03\x04"),
]
_COMPRESSED = {"gzip", "xz", "zstd", "zip", "bzip2"}


def _probe_simple(r: _Reader) -> list[_Probe]:
    found = []
    for name, offset, magic in _SIMPLE_SIGNATURES:
        if r.read(offset, len(magic)) == magic:
            found.append(_Probe(name))
    head = r.read(0, 4)
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and len(head) == 4:
        found.append(_Probe("bzip2"))
    return found


def _probe_partition_table(r: _Reader) -> _Probe | None:
    for sector in (512, 4096):
        if r.read(sector, 8) == b"EFI PART":
            return _Probe("gpt", virtual_size=r.size, strong=False)
    if r.size >= 512 and r.read(510, 2) == b"\x55\xaa":
        return _Probe("mbr", virtual_size=r.size, strong=False)
    return None


_PROBES = (_probe_qcow2, _probe_vmdk, _probe_vhdx, _probe_vhd, _probe_iso)


def _inspect_fd(fd: int) -> ImageInfo:
    size = os.fstat(fd).st_size
    r = _Reader(fd, size)
    probes: list[_Probe] = []
    for probe in _PROBES:
        found = probe(r)
        if found is not None:
            probes.append(found)
    probes.extend(_probe_simple(r))
    strong = [p for p in probes if p.strong]
    weak = [p for p in probes if not p.strong]
    table = _probe_partition_table(r)
    if table is not None:
        weak.append(table)

    problems: list[str] = []
    if size == 0:
        problems.append("image is empty (zero bytes)")
    if len(strong) > 1:
        names = ", ".join(p.format for p in strong)
        problems.append(f"image matches several formats at once ({names}); refusing to guess")
    chosen = strong[0] if strong else (weak[0] if weak else _Probe("raw", virtual_size=size))
    if chosen.format in _RAW_FAMILY and chosen.format not in ("vhd-fixed",):
        chosen.virtual_size = max(chosen.virtual_size, size)
    for p in strong or [chosen]:
        problems.extend(x for x in p.problems if x not in problems)
    return ImageInfo(
        format=chosen.format,
        virtual_size=chosen.virtual_size,
        file_size=size,
        subformat=chosen.subformat,
        matches=tuple(p.format for p in strong + weak) or ("raw",),
        backing_file=chosen.backing_file,
        problems=tuple(problems),
    )


def inspect(path: str | os.PathLike[str]) -> ImageInfo:
    """Read the headers of `path` and say what it is. Never raises UnsafeImage."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _inspect_fd(fd)
    finally:
        os.close(fd)


def _declared_matches(declared: str, info: ImageInfo) -> bool:
    if declared == "raw" or declared in _RAW_ALIASES:
        return info.format in _RAW_FAMILY
    if declared in ("vhd", "vpc"):
        return info.format in ("vhd", "vhd-fixed")
    return info.format == declared


def verify(
    path: str | os.PathLike[str], declared_format: str, max_virtual_size: int | None = None
) -> ImageInfo:
    """Inspect `path` and raise UnsafeImage unless it is safely what `declared_format` says.

    Returns the ImageInfo (virtual size etc.) when the image may be trusted with
    `qemu-img -f qemu_format(declared_format)`.
    """
    declared = declared_format.lower()
    if declared not in QEMU_FORMAT and declared not in _RAW_ALIASES:
        raise UnsafeImage(f"disk format {declared_format!r} is not supported")
    info = inspect(path)
    if info.file_size == 0:
        raise UnsafeImage("image is empty (zero bytes)")
    if info.format in _COMPRESSED:
        raise UnsafeImage(
            f"image is {info.format}-compressed data, not a disk image; upload it uncompressed"
        )
    if not _declared_matches(declared, info):
        shown = "vhd" if info.format == "vhd-fixed" else info.format
        raise UnsafeImage(
            f"image data is {shown}, but disk_format {declared_format!r} was declared"
        )
    if info.problems:
        raise UnsafeImage(info.problems[0])
    if info.virtual_size <= 0:
        raise UnsafeImage("image has no virtual size")
    if info.virtual_size > ABSURD_VIRTUAL_SIZE:
        raise UnsafeImage(f"image virtual size {info.virtual_size} bytes is absurd")
    if max_virtual_size is not None and info.virtual_size > max_virtual_size:
        raise UnsafeImage(
            f"image virtual size {info.virtual_size} bytes is over the limit of "
            f"{max_virtual_size} bytes"
        )
    return info


def qemu_format(disk_format: str) -> str:
    """The qemu-img `-f` name for a declared disk format (vhd → vpc, iso → raw …)."""
    disk_format = disk_format.lower()
    if disk_format in _RAW_ALIASES:
        return "raw"
    try:
        return QEMU_FORMAT[disk_format]
    except KeyError:
        raise UnsafeImage(f"disk format {disk_format!r} is not supported") from None


async def verify_async(
    path: str | os.PathLike[str], declared_format: str, max_virtual_size: int | None = None
) -> ImageInfo:
    """verify() in a worker thread, then qemu's own opinion: the image must also open in
    `qemu-img info` (format given, under resource limits, through storage.qemu_img).

    Why both: the inspector knows what is dangerous about a header, qemu knows what it can
    open. A qcow2 whose L1, refcount or snapshot table is bigger than qemu allows passes the
    inspector but can never boot; it is refused here instead of going active.
    """
    import asyncio

    from storage import qemu_img

    info = await asyncio.to_thread(verify, path, declared_format, max_virtual_size)
    try:
        opened = await qemu_img.info(path, qemu_format(declared_format))
    except QemuImgError as exc:
        raise UnsafeImage(f"qemu cannot open the image: {_qemu_reason(exc)}") from exc
    if opened.backing_file or opened.data_file:
        raise UnsafeImage("qemu sees a backing or data file in the image; that is not allowed")
    if max_virtual_size is not None and opened.virtual_size > max_virtual_size:
        raise UnsafeImage(
            f"image virtual size {opened.virtual_size} bytes is over the limit of "
            f"{max_virtual_size} bytes"
        )
    return info


def _qemu_reason(exc: QemuImgError) -> str:
    """The last line qemu-img wrote (its reason), without the path it names."""
    lines = [line.strip() for line in str(exc.stderr or exc).splitlines() if line.strip()]
    reason = lines[-1] if lines else str(exc)
    if reason.startswith("qemu-img: Could not open ") and "': " in reason:
        reason = reason.split("': ", 1)[1]
    return reason[:300]
