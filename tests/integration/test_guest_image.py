"""The test guest boots under real libvirt (qemu:///system, TCG) and does what
every VM test relies on: a shell on the serial console, the config drive read,
hot-plugged disks visible as /dev/vdb, and a clean poweroff on ACPI shutdown.

Each test defines its own uniquely named domain and disk directory and removes
both in a finally, so a failure leaves nothing behind and running daemons are
never touched.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import time
import tty
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.guest_image import (
    INSTANCE_NAME_PREFIX,
    PROMPT,
    READY_MARKER,
    TEST_ROOT,
    GuestImage,
    ensure_guest_image,
    make_traversable_dir,
)

libvirt = pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

LIBVIRT_URI = "qemu:///system"
BOOT_TIMEOUT = 60.0
DOMAIN_PREFIX = "msgi-"


# --- host plumbing ----------------------------------------------------------

def _virsh_works() -> bool:
    probe = subprocess.run(
        ["virsh", "-c", LIBVIRT_URI, "list"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


def _ensure_libvirtd() -> None:
    """Start virtlogd + libvirtd when nothing answers on qemu:///system."""
    if _virsh_works():
        return
    subprocess.run(["virtlogd", "-d"], check=False)
    subprocess.run(["libvirtd", "-d"], check=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _virsh_works():
            return
        time.sleep(0.5)
    pytest.skip("libvirtd does not answer on qemu:///system")


@pytest.fixture(scope="module")
def conn() -> Iterator["libvirt.virConnect"]:
    if os.geteuid() != 0:
        pytest.skip("qemu:///system guests need root")
    _ensure_libvirtd()
    connection = libvirt.open(LIBVIRT_URI)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture(scope="module")
def image() -> GuestImage:
    started = time.monotonic()
    built = ensure_guest_image()
    print(f"\nguest image ready in {time.monotonic() - started:.2f}s: {built.qcow2}")
    return built


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A directory libvirt-qemu can traverse (not pytest's tmp_path), removed at the end."""
    path = make_traversable_dir(TEST_ROOT / f"guest-image-test-{uuid.uuid4().hex[:12]}")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- domain XML (ElementTree only) ------------------------------------------

@dataclass
class CdromSpec:
    iso: Path
    bus: str  # "ide" (pc machine) or "scsi" (virtio-scsi controller)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def domain_xml(name: str, disk: Path, console_log: Path, cdrom: CdromSpec | None = None) -> str:
    domain = ET.Element("domain", type="qemu")
    _sub(domain, "name", name)
    _sub(domain, "memory", "256", unit="MiB")
    _sub(domain, "vcpu", "1")
    os_el = _sub(domain, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    _sub(os_el, "boot", dev="hd")
    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")
    devices = _sub(domain, "devices")

    root_disk = _sub(devices, "disk", type="file", device="disk")
    _sub(root_disk, "driver", name="qemu", type="qcow2")
    _sub(root_disk, "source", file=str(disk))
    _sub(root_disk, "target", dev="vda", bus="virtio")

    if cdrom is not None:
        if cdrom.bus == "scsi":
            _sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")
        drive = _sub(devices, "disk", type="file", device="cdrom")
        _sub(drive, "driver", name="qemu", type="raw")
        _sub(drive, "source", file=str(cdrom.iso))
        _sub(drive, "target", dev="hdc" if cdrom.bus == "ide" else "sda", bus=cdrom.bus)
        _sub(drive, "readonly")

    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "log", file=str(console_log), append="off")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    _sub(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def hotplug_disk_xml(path: Path) -> str:
    disk = ET.Element("disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2")
    _sub(disk, "source", file=str(path))
    _sub(disk, "target", dev="vdb", bus="virtio")
    return ET.tostring(disk, encoding="unicode")


# --- a running guest and its serial console ---------------------------------

@dataclass
class Guest:
    """A defined+started domain, its console log, and (once attached) its pty."""

    domain: "libvirt.virDomain"
    console_log: Path
    started_at: float
    _pty_fd: int | None = None
    _drain: threading.Thread | None = None
    _closing: threading.Event = field(default_factory=threading.Event)
    _removed: bool = False

    def console(self) -> str:
        try:
            return self.console_log.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, text: str, timeout: float = BOOT_TIMEOUT, after: int = 0) -> float:
        """Seconds since start when `text` showed up in the console (from offset `after`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.console()[after:]:
                return time.monotonic() - self.started_at
            time.sleep(0.1)
        raise AssertionError(
            f"{text!r} not on the console after {timeout:.0f}s; console was:\n{self.console()[-3000:]}"
        )

    def attach_pty(self) -> None:
        """Open the serial pty (raw), draining it so the guest never blocks on output."""
        desc = ET.fromstring(self.domain.XMLDesc(0))
        source = desc.find("./devices/serial/source")
        assert source is not None, "live XML has no serial pty source"
        fd = os.open(source.get("path"), os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        self._pty_fd = fd

        def drain() -> None:
            while not self._closing.is_set():
                try:
                    if not os.read(fd, 4096):
                        return
                except OSError:
                    return

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()

    def run(self, command: str, expect: str, timeout: float = 30.0) -> str:
        """Type `command` at the shell and wait until `expect` appears after it."""
        if self._pty_fd is None:
            self.attach_pty()
        offset = len(self.console())
        os.write(self._pty_fd, command.encode() + b"\n")
        self.wait_for(expect, timeout=timeout, after=offset)
        return self.console()[offset:]

    def close(self) -> None:
        self._closing.set()
        if self._pty_fd is not None:
            os.close(self._pty_fd)
            self._pty_fd = None

    def remove(self) -> None:
        """Destroy and undefine the domain; safe to call twice."""
        self.close()
        if self._removed:
            return
        self._removed = True
        try:
            if self.domain.isActive():
                self.domain.destroy()
        except libvirt.libvirtError:
            pass
        try:
            self.domain.undefine()
        except libvirt.libvirtError:
            pass


@pytest.fixture(scope="module")
def boot(conn, image, workdir):
    """boot(cdrom=None) -> Guest; every domain is destroyed and undefined at the end.

    Module-scoped because defining a domain can be slow on this host (libvirt
    re-probes QEMU capabilities), so the plain-guest tests share one guest.
    """
    guests: list[Guest] = []

    def _boot(cdrom: CdromSpec | None = None) -> Guest:
        name = f"{DOMAIN_PREFIX}{uuid.uuid4().hex[:12]}"
        disk = image.overlay(workdir / f"{name}.qcow2")
        log = workdir / f"{name}.console.log"
        domain = conn.defineXML(domain_xml(name, disk, log, cdrom))
        guest = Guest(domain=domain, console_log=log, started_at=time.monotonic())
        guests.append(guest)
        domain.create()
        # Boot times count from here: create() itself can take long on a host
        # where libvirt re-probes QEMU capabilities on every call.
        guest.started_at = time.monotonic()
        return guest

    try:
        yield _boot
    finally:
        for guest in guests:
            guest.remove()


@pytest.fixture(scope="module")
def plain_guest(boot) -> Guest:
    """One guest without config drive, shared by the tests below in file order
    (the ACPI shutdown test comes last)."""
    return boot()


def _config_drive(path: Path, meta: dict, pretty: bool = False) -> Path:
    """An ISO9660 config drive (label config-2) holding openstack/latest/meta_data.json."""
    import pycdlib

    data = json.dumps(meta, indent=2 if pretty else None).encode()
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="config-2")
    iso.add_directory("/OPENSTACK", rr_name="openstack", joliet_path="/openstack")
    iso.add_directory("/OPENSTACK/LATEST", rr_name="latest", joliet_path="/openstack/latest")
    iso.add_fp(
        io.BytesIO(data), len(data), "/OPENSTACK/LATEST/META_DATA.JSON;1",
        rr_name="meta_data.json", joliet_path="/openstack/latest/meta_data.json",
    )
    iso.write(str(path))
    iso.close()
    path.chmod(0o644)
    return path


# --- tests ------------------------------------------------------------------

def test_guest_boots_to_a_shell_on_the_serial_console(plain_guest):
    guest = plain_guest
    ready = guest.wait_for(READY_MARKER)
    prompt = guest.wait_for(PROMPT)
    print(f"\nTCG boot (from domain start): ready after {ready:.2f}s, prompt after {prompt:.2f}s")
    assert "monostack-guest booting" in guest.console()
    # The expected text is computed by the guest, so the echoed command cannot match it.
    out = guest.run("echo sum=$((6*7))", "sum=42")
    assert "sum=42\r\n" in out


def test_hotplugged_disk_appears_as_vdb(plain_guest, workdir):
    guest = plain_guest
    guest.wait_for(PROMPT)
    extra = workdir / "hotplug.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(extra), "16M"], check=True)
    extra.chmod(0o644)
    guest.domain.attachDeviceFlags(hotplug_disk_xml(extra), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    out = guest.run(
        "for i in $(seq 50); do [ -b /dev/vdb ] && break; sleep 0.2; done; ls /dev/vdb; echo probe-$((1+1))",
        "probe-2\r\n",
    )
    assert "/dev/vdb\r\n" in out


def test_acpi_shutdown_powers_the_guest_off(plain_guest):
    guest = plain_guest
    guest.wait_for(PROMPT)
    asked = time.monotonic()
    guest.domain.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    deadline = asked + 30
    while guest.domain.isActive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not guest.domain.isActive(), f"guest still running; console:\n{guest.console()[-2000:]}"
    print(f"\nACPI shutdown took {time.monotonic() - asked:.2f}s")
    assert "monostack-guest shutting down" in guest.console()


@pytest.mark.parametrize("bus", ["ide", "scsi"])
def test_guest_reads_name_and_keys_from_config_drive(boot, workdir, bus):
    name = f"probe-{uuid.uuid4()}"
    key = f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{uuid.uuid4().hex} probe@monostack"
    meta = {
        "uuid": str(uuid.uuid4()),
        # A nested "name" before the top-level one must not be taken for it.
        "keys": [{"name": "probe-key", "type": "ssh", "data": key + "\n"}],
        "public_keys": {"probe-key": key + "\n"},
        "hostname": name,
        "name": name,
        "launch_index": 0,
        "availability_zone": "nova",
    }
    iso = _config_drive(workdir / f"config-{bus}.iso", meta, pretty=(bus == "scsi"))
    guest = boot(CdromSpec(iso=iso, bus=bus))
    try:
        guest.wait_for(READY_MARKER)
        console = guest.console()
        assert f"{INSTANCE_NAME_PREFIX}{name}\r\n" in console
        assert "public-keys: 1 installed" in console
        guest.wait_for(PROMPT)
        out = guest.run("cat /root/.ssh/authorized_keys; echo keys-$((1+1))", "keys-2\r\n")
        assert key in out
    finally:
        guest.remove()
