"""`monostack status`: one screen an operator reads to know whether the appliance is well.

It combines what the daemon says about itself (/healthz: components, uptime; and, when the
admin password is at hand, /monostack/status: record counts) with the host checks of
`monostack doctor` (libvirt, the data-plane namespace, storage devices, free space), so it
still says something useful when the daemon is down.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config import Config
from appliance.doctor import (
    Check, check_kvm, check_libvirt, check_namespaces, check_space, check_ssh_operators, check_tls,
    check_virtlogd, check_web_console)
from appliance.errors import MonostackError

#: Tables worth a count on the status screen, in display order (others are bookkeeping).
COUNTED = ("servers", "instances", "images", "volumes", "snapshots", "networks", "subnets",
           "ports", "floating_ips", "containers", "projects", "users")


@dataclass
class StatusReport:
    daemon: dict[str, Any] | None
    daemon_error: str = ""
    counts: dict[str, int] | None = None
    counts_note: str = ""
    checks: list[Check] = field(default_factory=list)
    #: what guests run under, as the daemon says (os-hypervisors): "KVM", "QEMU", or None
    hypervisor: str | None = None

    @property
    def healthy(self) -> bool:
        return (self.daemon is not None and self.daemon.get("status") == "ok"
                and not any(c.level == "fail" for c in self.checks))


def check_object_devices(config: Config) -> Check | None:
    """Object storage devices (directories or mounted disks); None when objects do not run."""
    if config.components and "objects" not in config.components:
        return None
    devices = [Path(d) for d in config.storage.object_devices]
    present = [d for d in devices if d.is_dir()]
    detail = f"{len(present)} of {len(devices)} object devices present"
    missing = [str(d) for d in devices if d not in present]
    if not missing:
        return Check("storage devices", "ok", detail)
    return Check("storage devices", "warn", detail + f"; missing: {', '.join(missing)}",
                 "create the directories (or mount the disks) listed in [storage] object_devices")


def check_disk_space(config: Config) -> list[Check]:
    """doctor's per-directory space checks folded into one line per filesystem."""
    groups: dict[int, list[tuple[str, Check]]] = {}
    for check in check_space(config):
        path = Path(check.detail.split(" under ", 1)[1])
        while not path.exists() and path != path.parent:
            path = path.parent
        label = check.name.removeprefix("space (").removesuffix(")")
        groups.setdefault(path.stat().st_dev, []).append((label, check))
    out = []
    for members in groups.values():
        first = members[0][1]
        free = first.detail.split(" under ", 1)[0]
        out.append(Check("disk space", first.level,
                         f"{free} for {', '.join(label for label, _ in members)}", first.fix))
    return out


def host_checks(config: Config) -> list[Check]:
    checks = [check_kvm(), check_libvirt(config), check_virtlogd(config), check_namespaces(config),
              check_object_devices(config), check_tls(config), *check_disk_space(config),
              check_ssh_operators(config), check_web_console(config)]
    return [c for c in checks if c is not None]


async def daemon_health(config: Config, *, url: str | None = None,
                        cafile: str | None = None) -> tuple[dict[str, Any] | None, str]:
    """(the daemon's /healthz answer, "") or (None, why it did not answer)."""
    from appliance.client import MonostackClient
    async with MonostackClient(url, socket_path=None if url else config.api.socket,
                               cafile=cafile, timeout=15) as client:
        try:
            _, _, body = await client._send("GET", "/healthz", token=None)
            return body, ""
        except MonostackError as exc:
            return None, str(exc)


async def collect(config: Config, *, url: str | None = None, cafile: str | None = None,
                  admin_password: str | None = None) -> StatusReport:
    """Ask the daemon (unix socket unless `url`), then look at the host; never raises for a
    daemon that is down."""
    import asyncio

    from appliance.client import MonostackClient
    client = MonostackClient(url, socket_path=None if url else config.api.socket,
                             cafile=cafile, timeout=15)
    report = StatusReport(daemon=None)
    report.daemon, report.daemon_error = await daemon_health(config, url=url, cafile=cafile)
    async with client:
        if report.daemon is not None:
            if admin_password:
                try:
                    await client.login(os.environ.get("MONOSTACK_ADMIN_USER", "admin"),
                                       admin_password,
                                       os.environ.get("MONOSTACK_ADMIN_PROJECT", "admin"))
                    report.counts = (await client.get("/monostack/status"))["counts"]
                    if url:  # over TCP the component lines are shown to an admin token only
                        report.daemon = (await client.get("/healthz")) or report.daemon
                except MonostackError as exc:
                    report.counts_note = f"not available ({exc})"
                try:
                    hvs = (await client.get("/compute/v2.1/os-hypervisors/detail"))
                    report.hypervisor = hvs["hypervisors"][0]["hypervisor_type"]
                except (MonostackError, KeyError, IndexError):
                    pass  # no compute, or not admin: the host checks still say what they can
            else:
                report.counts_note = ("not available (run as root, or set "
                                      "MONOSTACK_ADMIN_PASSWORD)")
    report.checks = await asyncio.to_thread(host_checks, config)
    return report


def hypervisor_in_use(config: Config, device: Check, daemon_says: str | None) -> Check:
    """What guests run under, not only whether /dev/kvm opens: a nested host opens it and the
    daemon's probe still picks TCG."""
    if daemon_says == "KVM":
        return Check("hypervisor", "ok", "guests run under KVM")
    if daemon_says == "QEMU":
        why = device.detail if device.level != "ok" else "KVM cannot run guests here"
        from appliance.compute.libvirt.kvm_probe import CACHE_NAME, read_verdict
        verdict = read_verdict(Path(config.state_dir) / CACHE_NAME)
        if device.level == "ok" and verdict is not None and not verdict.kvm_boots:
            why = verdict.detail
        return Check("hypervisor", "ok", f"guests run under QEMU/TCG, several times slower "
                                         f"than KVM ({why})")
    if device.level == "ok":
        return Check("hypervisor", "ok", "/dev/kvm opens; whether guests run under KVM or "
                                         "QEMU/TCG the daemon says (run as root, daemon up)")
    return device


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def render(config: Config, report: StatusReport, *, ca_path: Path | None = None) -> str:
    """The human summary: one aligned line per subject, problems spelled out with their fix."""
    lines: list[tuple[str, str]] = []
    if report.daemon is None:
        lines.append(("daemon", f"DOWN: {report.daemon_error or 'not answering'}"))
    else:
        state = report.daemon.get("status", "?")
        lines.append(("daemon", f"{state}, up {_duration(report.daemon.get('uptime', 0))} "
                                f"(socket {config.api.socket})"))
        components = report.daemon.get("components", {})
        if components:
            lines.append(("components", " · ".join(f"{name} {components[name]}"
                                                   for name in sorted(components))))
    if config.api.listen:
        api = config.api.base_url
        if ca_path is not None:
            api += f" (clients: export OS_CACERT={ca_path})"
        lines.append(("api", api))
    for check in report.checks:
        if check.name == "hypervisor":
            check = hypervisor_in_use(config, check, report.hypervisor)
        mark = "" if check.level == "ok" else f"{check.level.upper()}: "
        text = mark + check.detail
        if check.fix:
            text += f" — fix: {check.fix}"
        lines.append((check.name, text))
    if report.counts is not None:
        shown = [f"{report.counts[t]} {t}" for t in COUNTED if t in report.counts]
        lines.append(("counts", " · ".join(shown) or "nothing yet"))
    elif report.counts_note and report.daemon is not None:
        lines.append(("counts", report.counts_note))
    width = max(len(name) for name, _ in lines)
    verdict = "monostack is healthy" if report.healthy else "monostack needs attention"
    return "\n".join([verdict, *(f"  {name:<{width}}  {text}" for name, text in lines)])
