"""The one place that writes libvirt domain XML (and reads back what we stored in it).

Built with ElementTree from a `DomainSpec`, never by string formatting: every user-supplied
string (names, metadata values, paths) is element text or an attribute value, which
ElementTree escapes. What escaping cannot fix — characters XML 1.0 cannot carry at all (NUL,
most C0 controls, lone surrogates) — is refused with `Invalid` instead of being passed on to
libvirt, which would otherwise fail later with a less useful parse error.

Choices worth knowing:

- `<features><acpi/>`: without ACPI, `virDomainShutdown` has no power button to press and a
  graceful stop always times out.
- Disks use `cache='none'` (O_DIRECT) unless the spec asks for `writeback`; both honour guest
  flushes. `unsafe` would be faster under TCG but drops flushes, unacceptable for volumes.
- Serial console: `<serial type='pty'><log file=… append='on'/>` makes virtlogd append every
  byte the guest prints to a file that survives guest and daemon restarts. virtlogd rotates it at
  `max_size` (default 2 MiB) keeping `max_backups` (default 3) old files, so the log is bounded
  (about 8 MiB per instance with defaults; see /etc/libvirt/virtlogd.conf).
- NICs: `<interface type='ethernet'>` with `<target dev='tapX'/>` makes libvirt create the tap
  (in the root network namespace) on every start; the network component plugs it after start.
  With `precreated_tap` we emit `managed='no'`: libvirt opens an existing tap and the network
  component owns its whole life.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from appliance.compute.driver import (
    METADATA_NAMESPACE,
    METADATA_PREFIX,
    DiskDevice,
    DiskSpec,
    DomainSpec,
    NicSpec,
)
from appliance.errors import Invalid

# Parsed (namespace-resolved) names, for reading back.
_META_ROOT = f"{{{METADATA_NAMESPACE}}}instance"
_META_ENTRY = f"{{{METADATA_NAMESPACE}}}entry"

# XML 1.0 Char production, complemented: anything matching cannot appear in a document at all.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_TARGET = re.compile(r"^(vd|sd|hd)[a-z]{1,2}$")
_META_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")


def xml_text(value: str, what: str) -> str:
    """Return `value` if XML can carry it (ElementTree escapes the rest), else raise Invalid."""
    if not isinstance(value, str):
        raise Invalid(f"{what} must be a string")
    bad = _NOT_XML_CHAR.search(value)
    if bad:
        raise Invalid(f"{what} contains a character XML cannot carry: {bad.group()!r}")
    return value


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise Invalid(f"invalid {what}: {value!r}")
    return value


def _path(value: str, what: str) -> str:
    xml_text(value, what)
    if not value.startswith("/"):
        raise Invalid(f"{what} must be an absolute path: {value!r}")
    return value


def _domain_name(value: str) -> str:
    xml_text(value, "domain name")
    # libvirt refuses '/' (names become file names) and we refuse blank or multi-line names.
    if not value.strip() or "/" in value or "\n" in value or "\r" in value or len(value) > 255:
        raise Invalid(f"invalid domain name: {value!r}")
    return value


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _cpuset(cpus: list[int] | tuple[int, ...]) -> str:
    if not cpus or any((not isinstance(c, int)) or c < 0 for c in cpus):
        raise Invalid(f"invalid cpu set: {cpus!r}")
    return ",".join(str(c) for c in sorted(set(cpus)))


def _tostring(el: ET.Element) -> str:
    return ET.tostring(el, encoding="unicode")


# --- devices ---------------------------------------------------------------------------------

def disk_element(disk: DiskSpec, boot_order: int | None = None) -> ET.Element:
    _check(_TARGET, disk.target, "disk target")
    el = ET.Element("disk", {"type": "file", "device": str(disk.device)})
    driver = {"name": "qemu", "type": str(disk.format), "cache": str(disk.cache)}
    if disk.device == DiskDevice.DISK:
        driver["discard"] = "unmap"
    _sub(el, "driver", **driver)
    _sub(el, "source", file=_path(disk.path, "disk path"))
    _sub(el, "target", dev=disk.target, bus=str(disk.bus))
    if disk.serial:
        _sub(el, "serial", xml_text(disk.serial, "disk serial"))
    if disk.readonly or disk.device == DiskDevice.CDROM:
        _sub(el, "readonly")
    if boot_order is not None:
        _sub(el, "boot", order=str(boot_order))
    return el


def disk_xml(disk: DiskSpec) -> str:
    """Device XML for hot-plug (attachDeviceFlags)."""
    return _tostring(disk_element(disk))


def nic_element(nic: NicSpec) -> ET.Element:
    _check(_MAC, nic.mac, "MAC address")
    _check(_IFNAME, nic.tap_name, "tap name")
    el = ET.Element("interface", {"type": "ethernet"})
    _sub(el, "mac", address=nic.mac.lower())
    target = {"dev": nic.tap_name}
    if nic.precreated_tap:
        target["managed"] = "no"
    _sub(el, "target", **target)
    _sub(el, "model", type=_check(re.compile(r"^[a-z0-9_-]{1,32}$"), nic.model, "NIC model"))
    if nic.mtu is not None:
        if not isinstance(nic.mtu, int) or not 68 <= nic.mtu <= 65535:
            raise Invalid(f"invalid MTU: {nic.mtu!r}")
        _sub(el, "mtu", size=str(nic.mtu))
    return el


def nic_xml(nic: NicSpec) -> str:
    return _tostring(nic_element(nic))


# --- the domain ------------------------------------------------------------------------------

def metadata_element(metadata: dict[str, str]) -> ET.Element:
    """`<monostack:instance>` with one `<monostack:entry key=…>value</…>` per item. Keys are
    attribute values, not element names, so any key XML can carry round-trips; we still limit
    keys to a tame alphabet so they read well in `virsh dumpxml`.

    Written with literal prefixed names and its own xmlns declaration (ElementTree would hoist a
    namespace declaration to <domain>, and libvirt keeps only what is inside <metadata>)."""
    root = ET.Element(f"{METADATA_PREFIX}:instance",
                      {f"xmlns:{METADATA_PREFIX}": METADATA_NAMESPACE})
    for key in sorted(metadata):
        value = metadata[key]
        _check(_META_KEY, key, "metadata key")
        _sub(root, f"{METADATA_PREFIX}:entry", xml_text(str(value), f"metadata value of {key}"),
             key=key)
    return root


def build_domain_xml(spec: DomainSpec, domain_type: str) -> str:
    """The full `<domain>` document for `spec`; `domain_type` is kvm, qemu or test."""
    _check(_UUID, spec.uuid, "domain uuid")
    if domain_type not in ("kvm", "qemu", "test"):
        raise Invalid(f"invalid domain type: {domain_type!r}")
    if not isinstance(spec.vcpus, int) or spec.vcpus < 1:
        raise Invalid(f"invalid vcpu count: {spec.vcpus!r}")
    if not isinstance(spec.memory_mib, int) or spec.memory_mib < 1:
        raise Invalid(f"invalid memory size: {spec.memory_mib!r}")

    dom = ET.Element("domain", type=domain_type)
    _sub(dom, "name", _domain_name(spec.name))
    _sub(dom, "uuid", spec.uuid.lower())
    meta = _sub(dom, "metadata")
    meta.append(metadata_element(spec.metadata))
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "currentMemory", str(spec.memory_mib), unit="MiB")
    vcpu = _sub(dom, "vcpu", str(spec.vcpus), placement="static")

    if spec.cpu_pinning is not None:
        if len(spec.cpu_pinning) != spec.vcpus:
            raise Invalid("cpu_pinning needs one host CPU set per vCPU")
        cputune = _sub(dom, "cputune")
        every: list[int] = []
        for i, pcpus in enumerate(spec.cpu_pinning):
            _sub(cputune, "vcpupin", vcpu=str(i), cpuset=_cpuset(pcpus))
            every.extend(pcpus)
        # qemu's own threads stay on the instance's pCPUs, off other tenants' dedicated ones
        _sub(cputune, "emulatorpin", cpuset=_cpuset(every))
        vcpu.set("cpuset", _cpuset(every))

    if spec.numa_cells:
        _numa_checks(spec)
        nodes = [c.host_node for c in spec.numa_cells if c.host_node is not None]
        if nodes:
            numatune = _sub(dom, "numatune")
            _sub(numatune, "memory", mode="strict", nodeset=_cpuset(nodes))
            for cell in spec.numa_cells:
                if cell.host_node is not None:
                    _sub(numatune, "memnode", cellid=str(cell.id), mode="strict",
                         nodeset=str(cell.host_node))

    # SMBIOS the way Nova sets it: cloud-init's ds-identify recognises an OpenStack guest
    # without a config drive only by this product name, and then asks 169.254.169.254.
    sysinfo = _sub(dom, "sysinfo", type="smbios")
    system = _sub(sysinfo, "system")
    for key, value in (("manufacturer", "monostack"), ("product", "OpenStack Nova"),
                       ("serial", spec.uuid.lower()), ("uuid", spec.uuid.lower()),
                       ("family", "Virtual Machine")):
        _sub(system, "entry", value, name=key)

    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm")
    if spec.direct_boot is not None:
        _sub(os_el, "kernel", _path(spec.direct_boot.kernel, "kernel path"))
        if spec.direct_boot.initrd:
            _sub(os_el, "initrd", _path(spec.direct_boot.initrd, "initrd path"))
        if spec.direct_boot.cmdline:
            _sub(os_el, "cmdline", xml_text(spec.direct_boot.cmdline, "kernel command line"))

    _sub(os_el, "smbios", mode="sysinfo")

    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")

    cpu = None
    if domain_type == "kvm":
        cpu = _sub(dom, "cpu", mode="host-passthrough", check="none")
    if spec.numa_cells:
        cpu = cpu if cpu is not None else _sub(dom, "cpu")
        numa = _sub(cpu, "numa")
        for cell in spec.numa_cells:
            _sub(numa, "cell", id=str(cell.id), cpus=_cpuset(cell.vcpus),
                 memory=str(cell.memory_mib), unit="MiB")

    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")

    devices = _sub(dom, "devices")
    targets = [d.target for d in spec.disks]
    if len(set(targets)) != len(targets):
        raise Invalid(f"duplicate disk targets: {targets}")
    order = list(spec.boot_order)
    if any(t not in targets for t in order):
        raise Invalid(f"boot_order names unknown disks: {order}")
    if not order and spec.disks and spec.direct_boot is None:
        order = [spec.disks[0].target]
    for disk in spec.disks:
        boot = order.index(disk.target) + 1 if disk.target in order else None
        devices.append(disk_element(disk, boot))
    macs = [n.mac.lower() for n in spec.nics]
    if len(set(macs)) != len(macs):
        raise Invalid(f"duplicate MAC addresses: {macs}")
    for nic in spec.nics:
        devices.append(nic_element(nic))

    serial = _sub(devices, "serial", type="pty")
    if spec.console_log_path:
        _sub(serial, "log", file=_path(spec.console_log_path, "console log path"), append="on")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    balloon = _sub(devices, "memballoon", model="virtio")
    _sub(balloon, "stats", period="10")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    return _tostring(dom)


def _numa_checks(spec: DomainSpec) -> None:
    assert spec.numa_cells
    seen: list[int] = []
    for cell in spec.numa_cells:
        seen.extend(cell.vcpus)
    if sorted(seen) != list(range(spec.vcpus)):
        raise Invalid("NUMA cells must cover every vCPU exactly once")
    if sum(c.memory_mib for c in spec.numa_cells) != spec.memory_mib:
        raise Invalid("NUMA cell memory must add up to the domain memory")


# --- reading back ----------------------------------------------------------------------------

@dataclass(frozen=True)
class DiskInfo:
    target: str
    path: str | None
    device: str
    format: str | None


@dataclass(frozen=True)
class NicInfo:
    mac: str
    tap_name: str | None


def parse_metadata(domain_xml: str) -> dict[str, str]:
    """Our key/values from a domain's XML ({} for domains we did not define)."""
    root = ET.fromstring(domain_xml)
    meta = root.find("metadata")
    if meta is None:
        return {}
    inst = meta.find(_META_ROOT)
    if inst is None:
        return {}
    return {e.get("key", ""): e.text or "" for e in inst.findall(_META_ENTRY)}


def parse_metadata_element(fragment: str) -> dict[str, str]:
    """Same, from the element virDomainGetMetadata returns (libvirt hands it back with the
    namespace stripped: `<instance><entry key=…>`)."""
    inst = ET.fromstring(fragment)
    return {e.get("key", ""): e.text or "" for e in inst
            if e.tag in ("entry", _META_ENTRY)}


def parse_disks(domain_xml: str) -> list[DiskInfo]:
    root = ET.fromstring(domain_xml)
    out = []
    for d in root.iterfind("devices/disk"):
        target = d.find("target")
        source = d.find("source")
        driver = d.find("driver")
        out.append(DiskInfo(
            target=target.get("dev", "") if target is not None else "",
            path=source.get("file") if source is not None else None,
            device=d.get("device", "disk"),
            format=driver.get("type") if driver is not None else None,
        ))
    return out


def parse_nics(domain_xml: str) -> list[NicInfo]:
    root = ET.fromstring(domain_xml)
    out = []
    for i in root.iterfind("devices/interface"):
        mac = i.find("mac")
        target = i.find("target")
        out.append(NicInfo(mac=(mac.get("address", "") if mac is not None else "").lower(),
                           tap_name=target.get("dev") if target is not None else None))
    return out


def find_device_xml(domain_xml: str, kind: str, match: dict[str, str]) -> str | None:
    """The live XML of one device (`disk` by target dev, `interface` by mac) for detaching:
    libvirt matches detach requests best when handed its own description of the device."""
    root = ET.fromstring(domain_xml)
    for dev in root.iterfind(f"devices/{kind}"):
        if kind == "disk":
            t = dev.find("target")
            if t is not None and t.get("dev") == match.get("target"):
                return _tostring(dev)
        elif kind == "interface":
            m = dev.find("mac")
            if m is not None and m.get("address", "").lower() == match.get("mac", "").lower():
                return _tostring(dev)
    return None
