"""`monostack status` rendering: one line per subject, problems with their fix, counts."""
from __future__ import annotations

from pathlib import Path

from appliance.config import Config
from appliance.doctor import Check
from appliance.status import StatusReport, check_disk_space, render


def _config(tmp_path: Path, **api) -> Config:
    return Config.for_state_dir(tmp_path, api={"listen": "127.0.0.1:5443", **api})


def test_healthy_daemon_with_counts_and_ca(tmp_path):
    config = _config(tmp_path, tls_cert=str(tmp_path / "tls/server.crt"))
    report = StatusReport(daemon={"status": "ok", "uptime": 3725,
                                  "components": {"image": "ok", "compute": "ok (qemu)"}},
                          counts={"servers": 2, "images": 1, "tokens": 9},
                          checks=[Check("libvirt", "ok", "qemu:///system answers")])
    text = render(config, report, ca_path=tmp_path / "tls/ca.crt")
    assert text.splitlines()[0] == "monostack is healthy"
    assert "up 1h 2m" in text
    assert "compute ok (qemu) · image ok" in text
    assert f"https://127.0.0.1:5443 (clients: export OS_CACERT={tmp_path}/tls/ca.crt)" in text
    assert "2 servers · 1 images" in text and "tokens" not in text


def test_daemon_down_and_failed_checks_say_what_to_fix(tmp_path):
    report = StatusReport(daemon=None, daemon_error="connection refused",
                          checks=[Check("libvirt", "fail", "qemu:///system unreachable",
                                        "systemctl start libvirtd")])
    text = render(_config(tmp_path), report)
    assert text.splitlines()[0] == "monostack needs attention"
    assert "DOWN: connection refused" in text
    assert "FAIL: qemu:///system unreachable — fix: systemctl start libvirtd" in text
    assert not report.healthy


def test_disk_space_is_one_line_per_filesystem(tmp_path):
    checks = check_disk_space(_config(tmp_path))
    assert len(checks) == 1  # everything under tmp_path: one file system
    assert "state, images, volumes, instances" in checks[0].detail


def test_status_says_what_guests_run_under(tmp_path):
    import json

    from appliance.compute.libvirt.kvm_probe import CACHE_NAME
    config = _config(tmp_path)
    usable = Check("hypervisor", "ok", "/dev/kvm opens; …")
    report = StatusReport(daemon={"status": "ok", "uptime": 1}, checks=[usable],
                          hypervisor="KVM")
    assert "hypervisor  guests run under KVM" in render(config, report)
    # /dev/kvm opens, but the probe guest did not boot: TCG, and why
    Path(config.state_dir).mkdir(parents=True)
    (Path(config.state_dir) / CACHE_NAME).write_text(json.dumps(
        {"key": "k", "kvm_boots": False, "detail": "a guest kernel did not boot under KVM"}))
    report.hypervisor = "QEMU"
    text = render(config, report)
    assert "guests run under QEMU/TCG" in text and "did not boot under KVM" in text
    assert "/dev/kvm usable" not in text
    report.checks = [Check("hypervisor", "warn", "KVM not usable (No such file or directory)")]
    assert "QEMU/TCG, several times slower than KVM (KVM not usable" in render(config, report)


def test_doctor_advice_fits_the_host(monkeypatch, tmp_path):
    """A slow libvirtd is slow, not down; no systemctl advice where systemd is not PID 1."""
    from appliance import doctor
    config = _config(tmp_path)
    monkeypatch.setattr(doctor.shutil, "which", lambda name: f"/usr/bin/{name}")
    calls = []

    def slow_then_answers(*cmd, timeout=15):
        calls.append(timeout)
        return (doctor.TIMED_OUT, "no answer") if len(calls) == 1 else (0, "Compiled against")

    monkeypatch.setattr(doctor, "_run", slow_then_answers)
    check = doctor.check_libvirt(config)
    assert check.level == "warn" and "slowly" in check.detail and "start" not in check.fix
    monkeypatch.setattr(doctor, "_run", lambda *cmd, timeout=15: (1, "Failed to connect socket"))
    monkeypatch.setattr(doctor, "systemd_is_init", lambda: False)
    down = doctor.check_libvirt(config)
    assert down.level == "fail" and "systemctl" not in down.fix and "libvirtd -d" in down.fix
    assert "systemctl" not in doctor.check_daemon(config).fix
    monkeypatch.setattr(doctor, "systemd_is_init", lambda: True)
    assert doctor.check_libvirt(config).fix == "systemctl start libvirtd"


def test_ssh_operators_check_says_why_they_cannot_get_in(monkeypatch, tmp_path):
    from appliance import doctor
    snippet = tmp_path / "monostack.conf"
    snippet.write_text("Match Group root\n    ForceCommand /bin/sh tui\n")
    monkeypatch.setattr(doctor, "SSHD_SNIPPET", snippet)
    monkeypatch.setattr(doctor, "FORCE_COMMAND", "/bin/sh tui")
    monkeypatch.setattr(doctor.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(doctor, "systemd_is_init", lambda: False)
    monkeypatch.setattr(doctor, "_run", lambda *cmd, timeout=15: (0, "port 2222\nusepam yes"))
    config = _config(tmp_path, socket_group="root")
    monkeypatch.setattr(doctor, "_listening_tcp_ports", lambda: {5000})
    down = doctor.check_ssh_operators(config)
    assert down is not None and down.level == "warn"
    assert "sshd is not running (nothing listens on port 2222)" in down.detail
    assert down.fix == "/usr/sbin/sshd (systemd is not PID 1 here)"
    monkeypatch.setattr(doctor, "_listening_tcp_ports", lambda: {2222})
    up = doctor.check_ssh_operators(config)
    assert up is not None and up.level == "ok" and "port 2222" in up.detail
    snippet.unlink()
    gone = doctor.check_ssh_operators(config)
    assert gone is not None and gone.level == "warn" and "monostack.conf is missing" in gone.detail


def test_virtlogd_is_asked_not_its_socket_file(monkeypatch, tmp_path):
    """A socket file left by a virtlogd long gone (a /run that is not a tmpfs) is a failure
    with advice; a listening one is ok; a non-qemu URI needs no virtlogd."""
    import dataclasses
    import socket as sk

    from appliance import doctor
    path = tmp_path / "virtlogd-sock"
    monkeypatch.setattr(doctor, "VIRTLOGD_SOCKET", path)
    monkeypatch.setattr(doctor, "systemd_is_init", lambda: False)
    config = dataclasses.replace(_config(tmp_path), compute=dataclasses.replace(
        _config(tmp_path).compute, libvirt_uri="qemu:///system"))
    stale = sk.socket(sk.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    gone = doctor.check_virtlogd(config)
    assert gone.level == "fail" and "no guest can start" in gone.detail
    assert gone.fix == "virtlogd -d (systemd is not PID 1 here)"
    path.unlink()
    live = sk.socket(sk.AF_UNIX)
    live.bind(str(path))
    live.listen()
    try:
        assert doctor.check_virtlogd(config).level == "ok"
    finally:
        live.close()
    config = dataclasses.replace(config, compute=dataclasses.replace(
        config.compute, libvirt_uri="test:///default"))
    assert doctor.check_virtlogd(config) is None
