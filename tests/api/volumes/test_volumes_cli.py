"""The real `openstack` CLI driving volumes (and images) on a `monostack serve` process."""
from __future__ import annotations

import json
import time

import pytest

from tests.api.images.conftest import make_qcow2, needs_qemu_img
from tests.api.test_openstack_cli import openstack
from tests.daemon import DaemonProcess, run_init, write_config

pytestmark = needs_qemu_img


@pytest.fixture(scope="module")
def cli_daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("volcli")
    path, config = write_config(base, components=["images", "volumes"])
    run_init(path)
    daemon = DaemonProcess(path, config)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def wait_for(daemon, kind: str, name: str, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = json.loads(openstack(daemon, *kind.split(), "show", name, "-f", "json"))
        if shown["status"] == status:
            return shown
        assert time.monotonic() < deadline, f"{kind} {name} stuck in {shown['status']}"
        time.sleep(0.5)


def test_openstack_volume_create_snapshot_delete(cli_daemon, tmp_path):
    vol = json.loads(openstack(cli_daemon, "volume", "create", "--size", "1", "cli-vol",
                               "-f", "json"))
    assert vol["name"] == "cli-vol" and vol["size"] == 1
    wait_for(cli_daemon, "volume", "cli-vol", "available")
    listed = json.loads(openstack(cli_daemon, "volume", "list", "-f", "json"))
    assert [v["Name"] for v in listed] == ["cli-vol"]

    snap = json.loads(openstack(cli_daemon, "volume", "snapshot", "create", "--volume", "cli-vol",
                                "cli-snap", "-f", "json"))
    assert snap["name"] == "cli-snap"
    wait_for(cli_daemon, "volume snapshot", "cli-snap", "available")
    with pytest.raises(AssertionError, match="snapshot"):
        openstack(cli_daemon, "volume", "delete", "cli-vol")
    openstack(cli_daemon, "volume", "snapshot", "delete", "cli-snap")
    deadline = time.monotonic() + 30
    while json.loads(openstack(cli_daemon, "volume", "snapshot", "list", "-f", "json")):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    openstack(cli_daemon, "volume", "delete", "cli-vol")
    deadline = time.monotonic() + 30
    while json.loads(openstack(cli_daemon, "volume", "list", "-f", "json")):
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_openstack_volume_from_image(cli_daemon, tmp_path):
    disk = make_qcow2(tmp_path / "vsrc.qcow2", "64M", b"from the image\n" * 10)
    openstack(cli_daemon, "image", "create", "--file", str(disk), "--disk-format", "qcow2",
              "--container-format", "bare", "vol-img")
    vol = json.loads(openstack(cli_daemon, "volume", "create", "--image", "vol-img", "--size", "1",
                               "cli-boot", "-f", "json"))
    assert vol["name"] == "cli-boot"
    shown = wait_for(cli_daemon, "volume", "cli-boot", "available")
    assert shown["bootable"] in (True, "true")
    assert shown["volume_image_metadata"]["image_name"] == "vol-img"
    openstack(cli_daemon, "volume", "set", "--property", "purpose=test", "cli-boot")
    shown = json.loads(openstack(cli_daemon, "volume", "show", "cli-boot", "-f", "json"))
    assert shown["properties"] == {"purpose": "test"}
    openstack(cli_daemon, "volume", "set", "--size", "2", "cli-boot")
    assert wait_for(cli_daemon, "volume", "cli-boot", "available")["size"] == 2
    openstack(cli_daemon, "volume", "delete", "cli-boot")
