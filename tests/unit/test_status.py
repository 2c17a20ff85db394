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
