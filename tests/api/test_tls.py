"""The TCP API over TLS with the appliance's private CA; the unix socket stays plain."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest

from appliance.client import MonostackClient
from appliance.errors import ServiceUnavailable
from appliance.tls import ensure_tls
from tests.api.test_openstack_cli import OPENSTACK
from tests.daemon import ADMIN_PASSWORD, DaemonProcess, monostack_cmd, run_init, write_config, ROOT, _env


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    tls = ensure_tls(base / "tls", names=(("localhost",), (ipaddress.IPv4Address("127.0.0.1"),)))
    path, config = write_config(base, components=["core"], extra={"api": {
        "tls_cert": str(tls.files.server_cert), "tls_key": str(tls.files.server_key)}})
    run_init(path)
    daemon = DaemonProcess(path, config)
    daemon.start()
    try:
        yield daemon, tls.files.ca_cert
    finally:
        daemon.stop()


async def test_client_with_the_ca_gets_a_token_and_https_catalog(tls_daemon):
    daemon, ca = tls_daemon
    assert daemon.url.startswith("https://127.0.0.1:")
    async with MonostackClient(daemon.url, cafile=str(ca)) as client:
        session = await client.login("admin", ADMIN_PASSWORD, "admin")
        urls = [e["url"] for svc in session.catalog for e in svc["endpoints"]]
        assert urls and all(u.startswith(daemon.url + "/") for u in urls), urls
        assert (await client.get("/monostack/whoami"))["user_name"] == "admin"


async def test_client_without_the_ca_is_refused(tls_daemon):
    daemon, _ = tls_daemon
    async with MonostackClient(daemon.url) as client:
        with pytest.raises(ServiceUnavailable, match="(?i)certificate"):
            await client.login("admin", ADMIN_PASSWORD, "admin")


async def test_unix_socket_stays_plain(tls_daemon):
    daemon, _ = tls_daemon
    async with daemon.client() as client:
        await client.login("admin", ADMIN_PASSWORD, "admin")


def test_openstack_cli_with_os_cacert(tls_daemon):
    daemon, ca = tls_daemon
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "REQUESTS_CA", "SSL_CERT"))}
    env.update(OS_AUTH_URL=daemon.url + "/identity", OS_USERNAME="admin",
               OS_PASSWORD=ADMIN_PASSWORD, OS_PROJECT_NAME="admin",
               OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
               OS_IDENTITY_API_VERSION="3", OS_REGION_NAME="RegionOne", OS_CACERT=str(ca))
    out = subprocess.run([OPENSTACK, "token", "issue", "-f", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["id"]
    out = subprocess.run([OPENSTACK, "catalog", "list", "-f", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    endpoints = " ".join(str(c["Endpoints"]) for c in json.loads(out.stdout))
    assert "https://127.0.0.1:" in endpoints and "http://" not in endpoints
    # without the CA the same call fails on verification
    del env["OS_CACERT"]
    out = subprocess.run([OPENSTACK, "token", "issue", "-f", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "certificate" in out.stderr.lower()


def test_cli_prints_the_ca_path_and_status_over_https(tls_daemon):
    daemon, ca = tls_daemon
    run = lambda *a: subprocess.run(monostack_cmd("--config", str(daemon.config_path), *a),
                                    cwd=ROOT, env={**_env(), "MONOSTACK_ADMIN_PASSWORD": ADMIN_PASSWORD},
                                    capture_output=True, text=True, timeout=120)
    out = run("tls", "ca-path")
    assert out.returncode == 0 and out.stdout.strip() == str(ca)
    out = run("status", "--url", daemon.url)
    assert "daemon" in out.stdout and f"OS_CACERT={ca}" in out.stdout, out.stdout + out.stderr
    assert "DOWN" not in out.stdout
