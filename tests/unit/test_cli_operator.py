"""`monostack tui` without a terminal and `operator add --group`: what the SSH ForceCommand
relies on (tests/acceptance/ drives the whole path through the installed sshd)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from appliance.cli import build_parser
from appliance.operators import OPERATORS_GROUP
from tests.daemon import ROOT


def test_tui_without_a_terminal_exits_at_once_and_says_why():
    # `ssh operator@host some-command` runs the ForceCommand with pipes, not a tty
    r = subprocess.run([sys.executable, "-m", "appliance", "tui", "--socket", "/nonexistent"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert r.returncode == 2
    assert "needs an interactive terminal" in r.stderr
    assert r.stdout == ""


def test_operator_add_group_defaults_to_the_shipped_snippets_group():
    parser = build_parser()
    args = parser.parse_args(["operator", "add", "alice", "--key", "k"])
    assert args.group == OPERATORS_GROUP == "monostack-operators"
    args = parser.parse_args(["operator", "add", "alice", "--key", "k", "--group", "ops2"])
    assert args.group == "ops2"


def test_operator_add_without_a_password_or_terminal_says_how_to_give_one():
    """No --password, no environment, stdin not a terminal and empty: a sentence, not a
    getpass traceback (EOFError), and nothing is created."""
    env = {k: v for k, v in os.environ.items() if k != "MONOSTACK_OPERATOR_PASSWORD"}
    r = subprocess.run([sys.executable, "-m", "appliance", "operator", "add", "nobody-xyz",
                        "--key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@laptop"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "--password, MONOSTACK_OPERATOR_PASSWORD or on standard input" in r.stderr
    with pytest.raises(KeyError):
        pwd.getpwnam("nobody-xyz")


def test_tui_finds_the_socket_without_reading_anything_root_only(tmp_path):
    """An SSH operator's TUI runs as the operator: the daemon's config may be unreadable."""
    from appliance.client_config import ClientConfig, tui_socket
    secret = tmp_path / "monostack.toml"
    secret.write_text('[api]\nsocket = "/run/elsewhere/api.sock"\n')
    secret.chmod(0o000)
    missing = tmp_path / "client.toml"
    # no client config: the daemon config only when readable, else the daemon's default
    readable = os.access(secret, os.R_OK)  # root reads anything
    expected = Path("/run/elsewhere/api.sock") if readable else Path("/run/monostack/api.sock")
    assert tui_socket(None, missing, daemon_config=secret) == expected
    assert tui_socket(None, missing, daemon_config=None) == Path("/run/monostack/api.sock")
    # the installer's client config wins, and holds nothing secret
    client = ClientConfig(socket=Path("/run/x/api.sock"), url="https://127.0.0.1:5000",
                          cacert=Path("/etc/monostack/tls/ca.crt"))
    assert client.write(missing) is True
    assert client.write(missing) is False  # unchanged: nothing to do
    assert missing.stat().st_mode & 0o777 == 0o644
    assert ClientConfig.load(missing) == client
    assert tui_socket(None, missing, daemon_config=secret) == Path("/run/x/api.sock")


def test_tui_socket_from_an_unreadable_daemon_config_as_another_user(qemu_dir):
    """The real crash: `ssh -t alice@host` ran the TUI, which read the root-only config."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as another user")
    # qemu_dir: a directory other users can traverse (pytest's tmp_path sits under a 0700
    # directory, so the other user met EACCES before our code ran and the test skipped)
    tmp_path = qemu_dir
    secret = tmp_path / "monostack.toml"
    secret.write_text("[api]\n")
    secret.chmod(0o600)
    code = ("from pathlib import Path; from appliance.client_config import tui_socket; "
            f"print(tui_socket(None, Path('{tmp_path}/none.toml'), "
            f"daemon_config=Path('{secret}')))")
    r = subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-c", code],
                       cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode and "Permission denied" in r.stderr and "python" in r.stderr.lower():
        pytest.skip(f"{sys.executable} is not reachable by other users")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "/run/monostack/api.sock"


def test_openrc_for_an_operator_holds_no_password_and_the_admins_does():
    from appliance.client_config import ClientConfig, openrc
    client = ClientConfig(url="https://127.0.0.1:5000", cacert=Path("/etc/monostack/tls/ca.crt"))
    op = openrc(client, "alice", "admin")
    assert "export OS_AUTH_URL=https://127.0.0.1:5000/identity" in op
    assert "OS_CACERT=/etc/monostack/tls/ca.crt" in op and "OS_PASSWORD=" not in op
    admin = openrc(client, "admin", "admin", password="it's $secret")
    # quoted for the shell: sourcing it yields the password byte for byte
    r = subprocess.run(["sh", "-c", admin + 'printf %s "$OS_PASSWORD"'], capture_output=True,
                       text=True, timeout=30)
    assert r.stdout == "it's $secret"


def test_operator_unix_lifecycle_list_rotate_remove(tmp_path):
    """operator add/list/rotate-key/remove on a unique group and user (root only)."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and passwd")
    from appliance.errors import Conflict, Invalid
    from appliance.operators import (
        add_unix_operator, list_unix_operators, remove_unix_operator, rotate_unix_key)
    tag = uuid.uuid4().hex[:6]
    group, name, other, service = f"msg{tag}", f"mso{tag}", f"msn{tag}", f"mss{tag}"
    key1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@laptop"
    key2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo two@laptop"
    try:
        add_unix_operator(name, key1, group=group)
        add_unix_operator(name, key1, group=group)  # again: the key is not doubled
        (op,) = list_unix_operators(group)
        assert op.name == name and op.keys == ("ssh-ed25519 one@laptop",)
        keys = rotate_unix_key(name, key2, group=group)
        assert keys.read_text() == key2 + "\n"
        assert keys.stat().st_mode & 0o777 == 0o600
        assert keys.stat().st_uid == pwd.getpwnam(name).pw_uid
        with pytest.raises(Invalid):
            rotate_unix_key(name, "ssh-ed25519 AAAA x\nssh-rsa AAAA evil", group=group)
        # an account that is not an operator is never touched
        subprocess.run(["useradd", other], check=True, timeout=30)
        with pytest.raises(Conflict):
            remove_unix_operator(other, group=group)
        # nor a service account in the group (the web console's): not listed, not removable
        subprocess.run(["useradd", "--system", "--shell", "/usr/sbin/nologin", "--groups", group,
                        service], check=True, timeout=30)
        assert [op.name for op in list_unix_operators(group)] == [name]
        with pytest.raises(Conflict, match="service account"):
            remove_unix_operator(service, group=group)
        home = Path(pwd.getpwnam(name).pw_dir)
        remove_unix_operator(name, group=group)
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        assert not home.exists()
        assert list_unix_operators(group) == []
    finally:
        for user in (name, other, service):
            subprocess.run(["userdel", "--remove", user], capture_output=True, timeout=30)
        subprocess.run(["groupdel", group], capture_output=True, timeout=30)
