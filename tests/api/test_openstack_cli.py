"""The real `openstack` CLI against a real `monostack serve` process over TCP."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon import ADMIN_PASSWORD, DaemonProcess, run_init, write_config

OPENSTACK = shutil.which("openstack") or str(Path(sys.executable).parent / "openstack")


@pytest.fixture(scope="module")
def cli_daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    path, config = write_config(base, components=["core"])
    run_init(path)
    daemon = DaemonProcess(path, config)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def openstack(daemon, *args, user="admin", password=ADMIN_PASSWORD, project="admin"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_URL=daemon.url + "/identity", OS_USERNAME=user, OS_PASSWORD=password,
               OS_PROJECT_NAME=project, OS_USER_DOMAIN_NAME="Default",
               OS_PROJECT_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3",
               OS_REGION_NAME="RegionOne")
    out = subprocess.run([OPENSTACK, *args], env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"openstack {' '.join(args)} failed: {out.stderr[-2000:]}")
    return out.stdout


def test_openstack_cli_token_project_user_role_catalog(cli_daemon):
    tok = json.loads(openstack(cli_daemon, "token", "issue", "-f", "json"))
    assert tok["id"] and tok["project_id"] and tok["user_id"]

    proj = json.loads(openstack(cli_daemon, "project", "create", "cli-proj", "-f", "json"))
    assert proj["name"] == "cli-proj"
    user = json.loads(openstack(cli_daemon, "user", "create", "--password", "dave-pw",
                                "--project", "cli-proj", "dave", "-f", "json"))
    assert user["name"] == "dave"
    openstack(cli_daemon, "role", "add", "--user", "dave", "--project", "cli-proj", "member")
    assigned = json.loads(openstack(cli_daemon, "role", "assignment", "list", "--user", "dave",
                                    "--names", "-f", "json"))
    assert [a["Role"] for a in assigned] == ["member"]

    catalog = json.loads(openstack(cli_daemon, "catalog", "list", "-f", "json"))
    assert "identity" in {c["Type"] for c in catalog}

    # the new member can log in with the CLI, and is refused admin-only calls
    tok = json.loads(openstack(cli_daemon, "token", "issue", "-f", "json",
                               user="dave", password="dave-pw", project="cli-proj"))
    assert tok["project_id"] == proj["id"]
    with pytest.raises(AssertionError, match="403|Forbidden|not authorized|Policy"):
        openstack(cli_daemon, "user", "list", user="dave", password="dave-pw", project="cli-proj")


def test_openstack_cli_catalog_resources_and_default_project(cli_daemon):
    services = json.loads(openstack(cli_daemon, "service", "list", "-f", "json"))
    assert "identity" in {s["Type"] for s in services}
    endpoints = json.loads(openstack(cli_daemon, "endpoint", "list", "-f", "json"))
    assert {e["Interface"] for e in endpoints} == {"public", "internal", "admin"}
    regions = json.loads(openstack(cli_daemon, "region", "list", "-f", "json"))
    assert [r["Region"] for r in regions] == ["RegionOne"]
    # no OS_PROJECT_NAME: Keystone scopes the token to the user's default project
    tok = json.loads(openstack(cli_daemon, "token", "issue", "-f", "json", project=""))
    assert tok["project_id"]


def test_openstack_cli_application_credential_login(cli_daemon):
    """Automation's way in: a credential made with the CLI, then used with
    OS_AUTH_TYPE=v3applicationcredential instead of a password."""
    made = json.loads(openstack(cli_daemon, "application", "credential", "create", "cli-ci",
                                "-f", "json"))
    made = {k.lower().replace(" ", "_"): v for k, v in made.items()}  # "Secret" in newer CLIs
    assert made["secret"] and made["project_id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_URL=cli_daemon.url + "/identity", OS_AUTH_TYPE="v3applicationcredential",
               OS_APPLICATION_CREDENTIAL_ID=made["id"],
               OS_APPLICATION_CREDENTIAL_SECRET=made["secret"], OS_REGION_NAME="RegionOne",
               OS_IDENTITY_API_VERSION="3")
    out = subprocess.run([OPENSTACK, "token", "issue", "-f", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["project_id"] == made["project_id"]
    listed = json.loads(openstack(cli_daemon, "application", "credential", "list", "-f", "json"))
    assert [c.get("Name", c.get("name")) for c in listed] == ["cli-ci"]
    openstack(cli_daemon, "application", "credential", "delete", "cli-ci")
    out = subprocess.run([OPENSTACK, "token", "issue"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0


def test_openstack_cli_system_scope(cli_daemon):
    openstack(cli_daemon, "user", "create", "--password", "sys-pw", "sysadmin")
    openstack(cli_daemon, "role", "add", "--system", "all", "--user", "sysadmin", "admin")
    listed = json.loads(openstack(cli_daemon, "role", "assignment", "list", "--system", "all",
                                  "--names", "-f", "json"))
    assert any(a["User"].startswith("sysadmin") and a["System"] == "all" for a in listed), listed
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_URL=cli_daemon.url + "/identity", OS_USERNAME="sysadmin",
               OS_PASSWORD="sys-pw", OS_USER_DOMAIN_NAME="Default", OS_SYSTEM_SCOPE="all",
               OS_IDENTITY_API_VERSION="3", OS_REGION_NAME="RegionOne")
    out = subprocess.run([OPENSTACK, "user", "list", "-f", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sysadmin" in {u["Name"] for u in json.loads(out.stdout)}


def test_openstack_cli_domains(cli_daemon):
    openstack(cli_daemon, "domain", "create", "cli-dom")
    openstack(cli_daemon, "project", "create", "--domain", "cli-dom", "dom-proj")
    openstack(cli_daemon, "user", "create", "--domain", "cli-dom", "--password", "dp",
              "dom-user")
    openstack(cli_daemon, "role", "add", "--user", "dom-user", "--user-domain", "cli-dom",
              "--project", "dom-proj", "--project-domain", "cli-dom", "member")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_URL=cli_daemon.url + "/identity", OS_USERNAME="dom-user",
               OS_PASSWORD="dp", OS_USER_DOMAIN_NAME="cli-dom", OS_PROJECT_NAME="dom-proj",
               OS_PROJECT_DOMAIN_NAME="cli-dom", OS_IDENTITY_API_VERSION="3",
               OS_REGION_NAME="RegionOne")
    out = subprocess.run([OPENSTACK, "token", "issue", "-f", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    names = {d["Name"] for d in json.loads(openstack(cli_daemon, "domain", "list", "-f", "json"))}
    assert {"Default", "cli-dom"} <= names
    openstack(cli_daemon, "domain", "set", "--disable", "cli-dom")
    openstack(cli_daemon, "domain", "delete", "cli-dom")
    assert "cli-dom" not in {d["Name"] for d in json.loads(
        openstack(cli_daemon, "domain", "list", "-f", "json"))}
