"""The real `openstack` CLI and `monostack image-import` against a `monostack serve` process."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from tests.api.images.conftest import make_qcow2, needs_qemu_img
from tests.api.test_openstack_cli import openstack
from tests.daemon import ADMIN_PASSWORD, ROOT, DaemonProcess, _env, monostack_cmd, run_init, write_config

pytestmark = needs_qemu_img


@pytest.fixture(scope="module")
def cli_daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("imgcli")
    path, config = write_config(base, components=["images"])
    run_init(path)
    daemon = DaemonProcess(path, config)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def test_openstack_image_create_list_show_save_delete(cli_daemon, tmp_path):
    disk = make_qcow2(tmp_path / "cli.qcow2", "32M", os.urandom(1 << 20))
    created = json.loads(openstack(cli_daemon, "image", "create", "--file", str(disk),
                                   "--disk-format", "qcow2", "--container-format", "bare",
                                   "cli-img", "-f", "json"))
    assert created["status"] == "active"
    listed = json.loads(openstack(cli_daemon, "image", "list", "-f", "json"))
    assert [i["Name"] for i in listed] == ["cli-img"]
    shown = json.loads(openstack(cli_daemon, "image", "show", "cli-img", "-f", "json"))
    assert shown["checksum"] == hashlib.md5(disk.read_bytes()).hexdigest()
    assert shown["disk_format"] == "qcow2" and shown["size"] == disk.stat().st_size
    saved = tmp_path / "saved.qcow2"
    openstack(cli_daemon, "image", "save", "--file", str(saved), "cli-img")  # verifies sha512
    assert saved.read_bytes() == disk.read_bytes()
    openstack(cli_daemon, "image", "set", "--property", "hw_disk_bus=virtio", "--min-disk", "1",
              "cli-img")
    shown = json.loads(openstack(cli_daemon, "image", "show", "cli-img", "-f", "json"))
    assert shown["min_disk"] == 1 and shown["properties"]["hw_disk_bus"] == "virtio"
    openstack(cli_daemon, "image", "delete", "cli-img")
    assert json.loads(openstack(cli_daemon, "image", "list", "-f", "json")) == []


def test_openstack_refuses_hostile_image_with_the_reason(cli_daemon, tmp_path):
    bad = tmp_path / "bad.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw",
                    str(bad), "1M"], check=True)
    with pytest.raises(AssertionError, match="backing"):
        openstack(cli_daemon, "image", "create", "--file", str(bad), "--disk-format", "qcow2",
                  "--container-format", "bare", "cli-hostile")
    images = json.loads(openstack(cli_daemon, "image", "list", "-f", "json"))
    assert all(i["Status"] != "active" for i in images if i["Name"] == "cli-hostile")
    for i in images:
        openstack(cli_daemon, "image", "delete", i["ID"])


def test_monostack_image_import_and_check(cli_daemon, tmp_path):
    disk = make_qcow2(tmp_path / "imp.qcow2", "16M")
    env = {**_env(), "MONOSTACK_ADMIN_PASSWORD": ADMIN_PASSWORD}
    cmd = monostack_cmd("--config", str(cli_daemon.config_path), "image-import")

    def run(*args):
        return subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)

    assert run("--check", "tinyguest").returncode == 1
    out = run("--name", "tinyguest", "--disk-format", "qcow2", str(disk))
    assert out.returncode == 0, out.stderr
    assert "active" in out.stdout
    assert run("--check", "tinyguest").returncode == 0
    refused = run("--name", "liar", "--disk-format", "raw", str(disk))
    assert refused.returncode != 0 and "qcow2" in refused.stderr
    assert run("--check", "liar").returncode == 1
    shown = json.loads(openstack(cli_daemon, "image", "show", "tinyguest", "-f", "json"))
    assert shown["visibility"] == "public"
