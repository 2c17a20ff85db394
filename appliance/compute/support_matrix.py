"""The hypervisor support matrix, generated from the driver's declared capabilities.

README.md carries the table this module prints (`monostack support-matrix`); a unit test
compares the two, so the documentation cannot drift from what the driver declares. The words
here only say what each capability means and why a hypervisor lacks it: the yes/no cells come
from `capabilities_for` in the libvirt driver.
"""
from __future__ import annotations

import dataclasses

from appliance.compute.driver import DriverCapabilities, HypervisorType

#: capability field → (what a user does with it, {hypervisor: why it is missing there})
ROWS: dict[str, tuple[str, dict[HypervisorType, str]]] = {
    "runs_guests": ("a real guest runs: its disks, network and statistics are real", {
        HypervisorType.TEST: "it only records domains and their states; nothing executes"}),
    "supports_pause": ("pause / unpause", {}),
    "supports_suspend": ("suspend / resume (managed save to disk)", {}),
    "supports_hotplug_disk": ("attach / detach a volume to a running server", {
        HypervisorType.TEST: "no virDomainAttachDeviceFlags"}),
    "supports_hotplug_nic": ("attach / detach a port to a running server", {
        HypervisorType.TEST: "no virDomainAttachDeviceFlags"}),
    "supports_snapshot": ("snapshot a stopped server's root disk to an image", {}),
    "supports_live_snapshot": ("snapshot a running server without downtime (push backup)", {
        HypervisorType.TEST: "no virDomainBackupBegin"}),
    "supports_serial_console": ("interactive serial console (TUI, websocket)", {
        HypervisorType.TEST: "no virDomainOpenConsole"}),
    "supports_console_log": ("console log (`openstack console log show`)", {
        HypervisorType.TEST: "no virtlogd; a test domain never prints"}),
    "supports_cpu_pinning": ("dedicated CPUs (flavor hw:cpu_policy=dedicated)", {}),
    "supports_numa": ("guest NUMA topology (flavor hw:numa_nodes)", {}),
    "supports_direct_boot": ("boot a kernel + initrd without a bootloader", {}),
    "supports_lifecycle_events": ("state changes seen at once (crash, guest shutdown)", {}),
    "supports_host_cpu": ("guest sees the host CPU model and flags (host-passthrough)", {
        HypervisorType.QEMU: "TCG emulates a generic CPU; there is no host CPU to pass through",
        HypervisorType.TEST: "no guest, no CPU"}),
}

COLUMNS: tuple[tuple[HypervisorType, str], ...] = (
    (HypervisorType.KVM, "kvm"),
    (HypervisorType.QEMU, "qemu (TCG)"),
    (HypervisorType.TEST, "test driver"),
)

HEADER = ("Everything runs under QEMU/TCG when KVM is unusable (no /dev/kvm, nested hosts "
          "where a probe guest does not boot): the same verbs, several times slower. "
          "The test driver (`test:///default`) serves the API tests.")


def capabilities() -> dict[HypervisorType, DriverCapabilities]:
    from appliance.compute.libvirt.driver import capabilities_for
    return {hv: capabilities_for(hv) for hv, _ in COLUMNS}


def support_matrix_markdown(caps: dict[HypervisorType, DriverCapabilities] | None = None) -> str:
    """The markdown table (no trailing newline), one row per capability field, in field order."""
    caps = caps or capabilities()
    names = [f.name for f in dataclasses.fields(DriverCapabilities)]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise KeyError(f"support matrix: describe the new capabilities {unknown} in ROWS")
    head = ["Action", *(label for _, label in COLUMNS), "Why not"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name in names:
        action, why = ROWS[name]
        cells = ["yes" if getattr(caps[hv], name) else "no" for hv, _ in COLUMNS]
        reasons = "; ".join(f"{label}: {why[hv]}" for hv, label in COLUMNS
                            if not getattr(caps[hv], name) and hv in why)
        lines.append("| " + " | ".join([action, *cells, reasons]) + " |")
    return "\n".join(lines)


BEGIN = "<!-- support-matrix:begin (generated: monostack support-matrix) -->"
END = "<!-- support-matrix:end -->"


def readme_block() -> str:
    return "\n".join([BEGIN, HEADER, "", support_matrix_markdown(), END])


def extract_block(text: str) -> str | None:
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        return None
    return text[start:end + len(END)]
