"""Domain XML is built from typed records and no user string can change its structure."""
import xml.etree.ElementTree as ET

import pytest

from appliance.compute.driver import (
    DirectBoot, DiskBus, DiskCache, DiskDevice, DiskFormat, DiskSpec, DomainSpec,
    GuestNumaCell, NicSpec,
)
from appliance.compute.libvirt.domain_xml import (
    build_domain_xml, disk_xml, find_device_xml, nic_xml, parse_disks, parse_metadata,
    parse_metadata_element, parse_nics,
)
from appliance.errors import Invalid

UUID = "0b5b6f2e-8f7a-4c1e-9a53-0d1f2a3b4c5d"
HOSTILE = [
    "a<b", "a&b", 'x"]]>y', "it's", '"><devices><disk type="file"><evil>', "' onload='x",
    "<![CDATA[ x ]]>", "&amp;", "<!-- c -->", "\u00e9\u4e2d\U0001f600",
]


def spec(**kw) -> DomainSpec:
    base = dict(uuid=UUID, name="inst-1", vcpus=1, memory_mib=128,
                disks=[DiskSpec("/var/lib/x/disk.qcow2")],
                nics=[NicSpec("52:54:00:12:34:56", "tap0b5b6f2e", 1450)])
    base.update(kw)
    return DomainSpec(**base)


def structure(xml: str) -> list[str]:
    return [el.tag for el in ET.fromstring(xml).iter()]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_cannot_inject_elements(hostile):
    def build(s: str) -> str:
        return build_domain_xml(spec(name=s, metadata={"display_name": s},
                                     console_log_path="/var/log/" + s,
                                     disks=[DiskSpec("/d/" + s, serial=s)],
                                     direct_boot=DirectBoot("/k/" + s, cmdline=s)), "qemu")
    plain, xml = build("x"), build(hostile)
    root = ET.fromstring(xml)
    assert root.findtext("name") == hostile
    assert parse_metadata(xml) == {"display_name": hostile}
    assert root.find("devices/disk/source").get("file") == "/d/" + hostile
    assert root.findtext("devices/disk/serial") == hostile
    assert root.findtext("os/cmdline") == hostile
    # exactly the same elements as with a harmless string
    assert structure(xml) == structure(plain)


@pytest.mark.parametrize("bad", ["a\x00b", "bell\x07", "esc\x1b[0m", "\ud800", "\ufffe"])
def test_characters_xml_cannot_carry_are_refused(bad):
    with pytest.raises(Invalid):
        build_domain_xml(spec(metadata={"k": bad}), "qemu")
    with pytest.raises(Invalid):
        build_domain_xml(spec(name=bad), "qemu")


@pytest.mark.parametrize("name", ["", "  ", "a/b", "two\nlines"])
def test_bad_domain_names_are_refused(name):
    with pytest.raises(Invalid):
        build_domain_xml(spec(name=name), "qemu")


@pytest.mark.parametrize("field,value", [
    ("uuid", "not-a-uuid"), ("uuid", UUID + "<x/>"), ("vcpus", 0), ("memory_mib", -1),
])
def test_bad_scalars_are_refused(field, value):
    with pytest.raises(Invalid):
        build_domain_xml(spec(**{field: value}), "qemu")


@pytest.mark.parametrize("nic", [
    NicSpec("52:54:00:12:34:5g", "tap1"), NicSpec("52:54:00:12:34:56", "tap'><x"),
    NicSpec("52:54:00:12:34:56", "a-very-long-tap-name"), NicSpec("52:54:00:12:34:56", "t", 10),
])
def test_bad_nics_are_refused(nic):
    with pytest.raises(Invalid):
        build_domain_xml(spec(nics=[nic]), "qemu")


def test_metadata_round_trips_and_keys_are_checked():
    meta = {"project_id": "p1", "flavor": "m1.tiny", "user_id": "u", "display_name": "web & db"}
    assert parse_metadata(build_domain_xml(spec(metadata=meta), "kvm")) == meta
    with pytest.raises(Invalid):
        build_domain_xml(spec(metadata={"bad key": "v"}), "qemu")


def test_metadata_element_declares_our_namespace_itself():
    xml = build_domain_xml(spec(metadata={"a": "1"}), "qemu")
    assert xml.startswith('<domain type="qemu">')  # no namespace hoisted onto <domain>
    assert 'xmlns:monostack="https://monostack.dev/xmlns/instance/1"' in xml
    assert parse_metadata_element('<instance><entry key="a">1</entry></instance>') == {"a": "1"}


def test_uuid_acpi_serial_log_and_console():
    xml = build_domain_xml(spec(console_log_path="/var/log/monostack/c.log"), "qemu")
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu"
    assert root.findtext("uuid") == UUID
    assert root.find("features/acpi") is not None
    serial = root.find("devices/serial")
    assert serial.get("type") == "pty"
    assert serial.find("log").attrib == {"file": "/var/log/monostack/c.log", "append": "on"}
    assert root.find("devices/console").get("type") == "pty"
    assert root.find("cpu") is None  # TCG: qemu's default model


def test_kvm_passes_the_host_cpu_through():
    root = ET.fromstring(build_domain_xml(spec(), "kvm"))
    assert root.find("cpu").get("mode") == "host-passthrough"


def test_interface_is_ethernet_tap_with_mtu():
    root = ET.fromstring(build_domain_xml(spec(), "qemu"))
    iface = root.find("devices/interface")
    assert iface.get("type") == "ethernet"
    assert iface.find("target").attrib == {"dev": "tap0b5b6f2e"}
    assert iface.find("model").get("type") == "virtio"
    assert iface.find("mtu").get("size") == "1450"
    pre = ET.fromstring(nic_xml(NicSpec("52:54:00:00:00:01", "tapx", precreated_tap=True)))
    assert pre.find("target").attrib == {"dev": "tapx", "managed": "no"}


def test_disks_cache_modes_cdrom_and_boot_order():
    disks = [DiskSpec("/i/root.qcow2"), DiskSpec("/i/rescue.qcow2", target="vdb"),
             DiskSpec("/i/disk.config", format=DiskFormat.RAW, target="sda", bus=DiskBus.SATA,
                      device=DiskDevice.CDROM),
             DiskSpec("/v/vol.raw", format=DiskFormat.RAW, target="vdc",
                      cache=DiskCache.WRITEBACK, serial="vol-id")]
    root = ET.fromstring(build_domain_xml(spec(disks=disks, boot_order=["vdb", "vda"]), "qemu"))
    by_target = {d.find("target").get("dev"): d for d in root.iterfind("devices/disk")}
    assert by_target["vda"].find("driver").attrib == {
        "name": "qemu", "type": "qcow2", "cache": "none", "discard": "unmap"}
    assert by_target["vdb"].find("boot").get("order") == "1"
    assert by_target["vda"].find("boot").get("order") == "2"
    assert by_target["sda"].get("device") == "cdrom"
    assert by_target["sda"].find("readonly") is not None
    assert by_target["sda"].find("boot") is None
    assert by_target["vdc"].find("driver").get("cache") == "writeback"
    assert root.find("os/boot") is None  # per-device boot order only
    assert [d.target for d in parse_disks(ET.tostring(root, encoding="unicode"))] == [
        "vda", "vdb", "sda", "vdc"]


def test_default_boot_is_first_disk_and_direct_boot_has_none():
    root = ET.fromstring(build_domain_xml(spec(), "qemu"))
    assert root.find("devices/disk/boot").get("order") == "1"
    root = ET.fromstring(build_domain_xml(spec(direct_boot=DirectBoot(
        "/b/vmlinuz", "/b/initrd", "console=ttyS0 x=<&>")), "qemu"))
    assert root.find("devices/disk/boot") is None
    assert root.findtext("os/kernel") == "/b/vmlinuz"
    assert root.findtext("os/cmdline") == "console=ttyS0 x=<&>"


def test_duplicate_targets_macs_and_unknown_boot_devices_are_refused():
    with pytest.raises(Invalid):
        build_domain_xml(spec(disks=[DiskSpec("/a"), DiskSpec("/b")]), "qemu")
    with pytest.raises(Invalid):
        build_domain_xml(spec(nics=[NicSpec("52:54:00:00:00:01", "t1"),
                                    NicSpec("52:54:00:00:00:01", "t2")]), "qemu")
    with pytest.raises(Invalid):
        build_domain_xml(spec(boot_order=["vdz"]), "qemu")
    with pytest.raises(Invalid):
        build_domain_xml(spec(disks=[DiskSpec("relative/path")]), "qemu")


def test_cpu_pinning_and_numa():
    s = spec(vcpus=2, memory_mib=256, cpu_pinning=[[2], [3]],
             numa_cells=[GuestNumaCell(0, (0,), 128, host_node=0),
                         GuestNumaCell(1, (1,), 128, host_node=1)])
    root = ET.fromstring(build_domain_xml(s, "kvm"))
    pins = [(p.get("vcpu"), p.get("cpuset")) for p in root.iterfind("cputune/vcpupin")]
    assert pins == [("0", "2"), ("1", "3")]
    assert root.find("cputune/emulatorpin").get("cpuset") == "2,3"
    cells = root.findall("cpu/numa/cell")
    assert [(c.get("id"), c.get("cpus"), c.get("memory")) for c in cells] == [
        ("0", "0", "128"), ("1", "1", "128")]
    assert root.find("numatune/memory").get("nodeset") == "0,1"
    assert [m.get("nodeset") for m in root.iterfind("numatune/memnode")] == ["0", "1"]


def test_inconsistent_pinning_or_numa_is_refused():
    with pytest.raises(Invalid):
        build_domain_xml(spec(vcpus=2, cpu_pinning=[[0]]), "qemu")
    with pytest.raises(Invalid):
        build_domain_xml(spec(vcpus=2, memory_mib=256,
                              numa_cells=[GuestNumaCell(0, (0,), 128)]), "qemu")
    with pytest.raises(Invalid):
        build_domain_xml(spec(vcpus=1, memory_mib=256,
                              numa_cells=[GuestNumaCell(0, (0,), 128)]), "qemu")


def test_hotplug_device_xml_and_lookup():
    d = disk_xml(DiskSpec("/v/vol", format=DiskFormat.RAW, target="vdb"))
    n = nic_xml(NicSpec("52:54:00:AA:BB:CC", "tapz"))
    dom = build_domain_xml(spec(), "qemu").replace(
        "</devices>", d + n + "</devices>")
    assert find_device_xml(dom, "disk", {"target": "vdb"}) is not None
    assert find_device_xml(dom, "interface", {"mac": "52:54:00:aa:bb:cc"}) is not None
    assert find_device_xml(dom, "disk", {"target": "vdq"}) is None
    assert [n.mac for n in parse_nics(dom)] == ["52:54:00:12:34:56", "52:54:00:aa:bb:cc"]


def test_smbios_says_openstack_nova_so_cloud_init_asks_the_metadata_service():
    root = ET.fromstring(build_domain_xml(spec(), "qemu"))
    entries = {e.get("name"): e.text for e in root.findall("./sysinfo[@type='smbios']/system/entry")}
    assert entries["product"] == "OpenStack Nova"
    assert entries["uuid"] == root.findtext("uuid")
    assert root.find("./os/smbios").get("mode") == "sysinfo"
