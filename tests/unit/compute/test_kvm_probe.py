"""The KVM probe: its verdict is remembered per kernel/QEMU/CPU, and its qemu never outlives
the daemon (issue 12: a daemon killed during the probe left qemu running for 30 minutes)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.compute.libvirt import kvm_probe
from appliance.compute.libvirt.kvm_probe import kvm_boots_cached, probe_key, read_verdict
from tests.daemon import ROOT


def fake_qemu(tmp_path: Path, body: str) -> str:
    """A stand-in for qemu-system-x86_64: `-version` answers, anything else runs `body`."""
    qemu = tmp_path / "qemu-fake"
    qemu.write_text(f'#!/bin/sh\n[ "$1" = -version ] && {{ echo "QEMU fake 1.0"; exit 0; }}\n'
                    f"{body}\n")
    qemu.chmod(0o755)
    return str(qemu)


async def test_the_verdict_is_probed_once_then_read_from_the_cache(tmp_path):
    boots = fake_qemu(tmp_path, f'touch {tmp_path}/ran; echo "Linux version 6.1"; sleep 5')
    cache = tmp_path / "kvm-probe.json"
    assert await kvm_boots_cached(boots, "/boot/vmlinuz", 10, cache) is True
    assert (tmp_path / "ran").exists()
    verdict = read_verdict(cache)
    assert verdict is not None and verdict.kvm_boots and verdict.key == probe_key(boots, "/boot/vmlinuz")
    (tmp_path / "ran").unlink()
    t0 = time.monotonic()
    assert await kvm_boots_cached(boots, "/boot/vmlinuz", 10, cache) is True
    assert not (tmp_path / "ran").exists(), "a cached verdict must not boot the probe again"
    assert time.monotonic() - t0 < 2


async def test_a_changed_kernel_qemu_or_cpu_probes_again(tmp_path, monkeypatch):
    hangs = fake_qemu(tmp_path, f"touch {tmp_path}/ran; exec sleep 600")
    cache = tmp_path / "kvm-probe.json"
    key = probe_key(hangs, "/boot/vmlinuz")
    cache.write_text(json.dumps({"key": key, "kvm_boots": True, "detail": "seeded"}))
    assert await kvm_boots_cached(hangs, "/boot/vmlinuz", 0.5, cache) is True
    assert not (tmp_path / "ran").exists()
    # another CPU (a VM migrated to a different host): the key changes, the probe runs again
    monkeypatch.setattr(kvm_probe, "_cpu_identity", lambda: "model name: Other CPU")
    assert probe_key(hangs, "/boot/vmlinuz") != key
    assert await kvm_boots_cached(hangs, "/boot/vmlinuz", 0.5, cache) is False
    assert (tmp_path / "ran").exists()
    assert read_verdict(cache).kvm_boots is False  # type: ignore[union-attr]
    # a cache nobody can parse costs only a probe
    cache.write_text("{not json")
    assert await kvm_boots_cached(hangs, "/boot/vmlinuz", 0.5, cache) is False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_probe_qemu_dies_with_a_killed_daemon(tmp_path):
    pidfile = tmp_path / "qemu.pid"
    hangs = fake_qemu(tmp_path, f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; "
                                "exec sleep 600")
    code = ("import asyncio; from appliance.compute.libvirt.kvm_probe import kvm_boots_kernel; "
            f"asyncio.run(kvm_boots_kernel({hangs!r}, '/boot/vmlinuz', 600))")
    daemon = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists():
            assert daemon.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        qemu_pid = int(pidfile.read_text())
        assert _alive(qemu_pid)
        daemon.send_signal(signal.SIGKILL)  # no finally, no cleanup: only the kernel acts
        daemon.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(qemu_pid):
            assert time.monotonic() < deadline, "the probe's qemu outlived the daemon"
            time.sleep(0.02)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if pidfile.exists() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
