"""Ansible's openstack.cloud collection against a real `monostack serve`: the lab playbook
builds a network, router, security group, key pair, volume and a server with a floating IP,
and tears them down; each direction runs twice, and the second run changes nothing."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.network.conftest import needs_root
from tests.compute_support import make_tiny_qcow2
from tests.daemon import ADMIN_PASSWORD, DaemonProcess, run_init, write_config

PLAYBOOK = Path(__file__).with_name("lab.yml")
ANSIBLE = str(Path(sys.executable).parent / "ansible-playbook")
#: The interpreter the collection's modules run in. openstack.cloud 2.5.0 (what PyPI's
#: `ansible` ships) reads openstack.version, which openstacksdk 4.15 removed: a lab user pins
#: openstacksdk<4.15 for Ansible, and so does tests/run.sh, in a venv of its own, so the
#: `openstack` CLI tests keep the newest SDK.
MODULE_PYTHON = Path(sys.prefix) / "ansible-sdk" / "bin" / "python"

pytestmark = [needs_root,
              pytest.mark.skipif(not (Path(ANSIBLE).exists() and MODULE_PYTHON.exists()),
                                 reason="tests/run.sh installs ansible and its SDK venv")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("ansible")
    path, config = write_config(base)
    run_init(path)
    daemon = DaemonProcess(path, config)
    daemon.start()
    try:
        (base / "clouds.yaml").write_text(f"""clouds:
  lab:
    auth:
      auth_url: {daemon.url}/identity
      username: admin
      password: {ADMIN_PASSWORD}
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
""")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(base / "id_lab")], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(OS_CLIENT_CONFIG_FILE=str(base / "clouds.yaml"), OS_CLOUD="lab",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_HOME=str(base / ".ansible"))
        image = make_tiny_qcow2(base / "cirros.qcow2")
        subprocess.run([str(Path(sys.executable).parent / "openstack"), "image", "create",
                        "--disk-format", "qcow2", "--file", str(image), "--public", "cirros"],
                       env=env, check=True, capture_output=True, timeout=120)
        yield daemon, base, env
    finally:
        daemon.stop()


def _play(base: Path, env: dict, state: str) -> dict[str, int]:
    out = subprocess.run(
        [ANSIBLE, str(PLAYBOOK), "-e", f"state={state}",
         "-e", f"public_key_file={base / 'id_lab.pub'}",
         "-e", f"ansible_python_interpreter={MODULE_PYTHON}"],
        env=env, capture_output=True, text=True, timeout=900)
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+"
                      r"failed=(\d+)", out.stdout)
    assert out.returncode == 0 and recap, out.stdout[-6000:] + out.stderr[-3000:]
    return {"ok": int(recap[1]), "changed": int(recap[2]), "failed": int(recap[4])}


def test_lab_playbook_builds_and_tears_down_idempotently(lab):
    daemon, base, env = lab
    first = _play(base, env, "present")
    assert first["changed"] >= 10 and first["failed"] == 0
    again = _play(base, env, "present")
    assert again["changed"] == 0, "a second run of the same playbook changed something"
    gone = _play(base, env, "absent")
    assert gone["changed"] >= 5
    assert _play(base, env, "absent")["changed"] == 0
