"""Acceptance: the appliance exactly as `packaging/install.sh` leaves it on a clean Debian 12
root (tests/acceptance/sandbox.py), used the way the README tells a newcomer to use it.

One root per module, installed once, then in order: what the installer left (files, modes,
daemon, sshd, clients); the README's "Use it" commands run verbatim as root; an operator added
with a key SSHes in through the installed sshd and lands in the installed TUI, driven through
an 80x24 pseudo-terminal (log in, see Instances, open a guest's serial console, type into the
guest, get back, quit); the operator listed, their key rotated, then removed; and a second
installer run that changes nothing.

Nothing here uses the test checkout's Python or config: every command runs inside the root.
Guests run under QEMU/TCG (the sandbox has no /dev/kvm).
"""
from __future__ import annotations

import re
import time

import pytest

from appliance.client import MonostackClient
from tests.acceptance.pty_session import PtySession
from tests.acceptance.sandbox import PASSWORD, SANDBOX_MARKS, Sandbox, install, sandbox_root
from tests.daemon import ROOT, free_port
from tests.guest_image import PROMPT, READY_MARKER

pytestmark = SANDBOX_MARKS

OPERATOR = "alice"
OPERATOR_PASSWORD = "alice-Op3rator-pw"
SSH = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
       "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]


class Installed:
    def __init__(self, box: Sandbox, port: int, first_run: str) -> None:
        self.box = box
        self.port = port
        self.first_run = first_run

    def sh(self, script: str, *, timeout: float = 300, check: bool = True,
           env: dict[str, str] | None = None) -> str:
        """A root shell in the root, as the README's reader has one (HOME=/root, cwd /root)."""
        out = self.box.run("bash", "-c", f"cd /root && {script}", timeout=timeout, env=env)
        if check:
            assert out.returncode == 0, (f"{script!r} exited {out.returncode}:\n"
                                         f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return out.stdout + out.stderr


@pytest.fixture(scope="module")
def appliance():
    with sandbox_root() as box:
        port = free_port()
        first = install(box, port)
        yield Installed(box, port, first.stdout + first.stderr)


def readme_use_it() -> list[str]:
    """The commands of the README's "Use it" block, one per entry, as printed."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Use it\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\n((?: {4}.*\n)+)", section)
    assert block, "the README's 'Use it' section has no command block"
    commands, current = [], ""
    for line in block.group(1).splitlines():
        current += line[4:].rstrip() + "\n"
        if not line.rstrip().endswith("\\"):
            commands.append(current.rstrip("\n"))
            current = ""
    return commands


def test_install_leaves_a_running_appliance_with_clients_and_sshd(appliance):
    out, root = appliance.first_run, appliance.box.root
    assert "systemd is not PID 1 here: starting the daemon directly" in out
    assert "systemd is not PID 1 here: started sshd myself" in out
    assert "created a private CA" in out
    assert PASSWORD not in out
    assert "/etc/monostack/admin-openrc" in out and "/etc/monostack/admin-password" in out

    # nothing of the development machine: Debian's python, our own venv, the clients in it
    assert "home = /usr/bin" in (root / "opt/monostack/venv/pyvenv.cfg").read_text()
    for cmd in ("monostack", "openstack", "swift"):
        link = root / "usr/local/bin" / cmd
        assert link.is_symlink() and str(link.readlink()) == f"/opt/monostack/venv/bin/{cmd}"
    # secrets root-only; what operators need readable by all
    etc = root / "etc/monostack"
    assert etc.stat().st_mode & 0o777 == 0o755
    for secret in ("admin-password", "admin-openrc"):
        assert (etc / secret).stat().st_mode & 0o077 == 0, secret
    assert (etc / "monostack.toml").stat().st_mode & 0o007 == 0
    assert (etc / "client.toml").stat().st_mode & 0o777 == 0o644
    assert PASSWORD not in (etc / "client.toml").read_text()
    assert (etc / "tls/ca.crt").is_file()
    assert 'tls_cert = "/etc/monostack/tls/server.crt"' in (etc / "monostack.toml").read_text()
    assert PASSWORD not in (root / "var/log/monostack.log").read_text()


async def test_the_api_answers_on_socket_and_tls(appliance):
    root, port = appliance.box.root, appliance.port
    async with MonostackClient(socket_path=root / "run/monostack/api.sock") as client:
        session = await client.login("admin", PASSWORD, "admin")
        urls = [e["url"] for svc in session.catalog for e in svc["endpoints"]]
        assert urls and all(u.startswith(f"https://127.0.0.1:{port}/") for u in urls), urls
        images = (await client.get("/image/v2/images?name=tinyguest"))["images"]
        assert [i["status"] for i in images] == ["active"], images
    status = appliance.box.run("monostack", "status", "--url", f"https://127.0.0.1:{port}",
                               env={"MONOSTACK_ADMIN_PASSWORD": PASSWORD})
    assert "DOWN" not in status.stdout, status.stdout + status.stderr
    assert "OS_CACERT=/etc/monostack/tls/ca.crt" in status.stdout
    assert appliance.sh("monostack tls ca-path").strip() == "/etc/monostack/tls/ca.crt"


#: Runs the README's `monostack web` line (COMMAND, its comment kept) in the background,
#: fetches its page over TLS once it listens, then stops it.
WEB_CHECK = """set -u
( exec COMMAND
) >/root/web.log 2>&1 &
web=$!
fetch='import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile="/etc/monostack/tls/ca.crt")
sys.stdout.write(urllib.request.urlopen("https://127.0.0.1:8443/", context=ctx, timeout=5).read().decode())'
page=
for _ in $(seq 1 240); do
  page=$(python3 -c "$fetch" 2>/dev/null) && break
  kill -0 $web 2>/dev/null || break
  sleep 0.25
done
kill $web 2>/dev/null; wait $web
echo "$page"; cat /root/web.log
"""


def test_readme_use_it_commands_work_verbatim(appliance):
    commands = readme_use_it()
    assert any(c.startswith("openstack server create") for c in commands), commands
    assert any(c.startswith("swift ") for c in commands), commands
    # The TUI line opens the console as the README's reader would: in a terminal.
    for command in [c for c in commands if c.split()[:2] == ["monostack", "tui"]]:
        tui = PtySession(appliance.box.argv("bash", "-c", command,
                                            env={"TERM": "xterm-256color"}))
        try:
            tui.wait_for("Password", "Project", timeout=60)
            tui.send("\x11")  # Ctrl+Q
            assert tui.wait_exit() == 0
        finally:
            tui.close()
    # The web line serves until stopped: it must answer the console's page over the
    # appliance's TLS (its CA trusted, nothing else), then it is stopped.
    for command in [c for c in commands if c.split()[:2] == ["monostack", "web"]]:
        page = appliance.sh(WEB_CHECK.replace("COMMAND", command), timeout=180)
        assert "/static/js/textual.js" in page, page
    script = "\n".join(["set -euo pipefail"]
                       + [c for c in commands if c.split()[:2] not in (["monostack", "tui"],
                                                                       ["monostack", "web"])])
    out = appliance.sh(script, timeout=600)
    assert "monostack is healthy" in out, out
    assert re.search(r"\bstatus\s*\|\s*ACTIVE\b", out), out
    assert "etc/hostname" in out, out  # `swift list notes` shows the upload


def test_status_says_hypervisor_in_use_and_ssh_access(appliance):
    out = appliance.sh("monostack status")
    assert re.search(r"hypervisor\s+guests run under QEMU/TCG", out), out
    assert re.search(r"ssh operators\s+can get in: sshd listens on port 22", out), out


def _console_log(appliance: Installed, server: str) -> str:
    return appliance.sh(f". /etc/monostack/admin-openrc && openstack console log show {server}",
                        check=False)


def test_ssh_operator_lands_in_the_tui_and_types_into_a_guest(appliance):
    deadline = time.monotonic() + 300  # vm1, from the README's commands, boots under TCG
    while READY_MARKER not in _console_log(appliance, "vm1"):
        assert time.monotonic() < deadline, _console_log(appliance, "vm1")[-2000:]
        time.sleep(2)
    appliance.sh("ssh-keygen -q -t ed25519 -N '' -f /root/alice_key")
    added = appliance.sh(f"monostack operator add {OPERATOR} --key /root/alice_key.pub",
                         env={"MONOSTACK_OPERATOR_PASSWORD": OPERATOR_PASSWORD})
    assert f"ssh -t {OPERATOR}@" in added and f"/home/{OPERATOR}/openrc" in added, added
    openrc = (appliance.box.root / "home" / OPERATOR / "openrc").read_text()
    assert "OS_USERNAME=alice" in openrc and OPERATOR_PASSWORD not in openrc

    # a command instead of a terminal: the forced TUI refuses, nothing else runs
    r = appliance.box.run(*SSH, "-i", "/root/alice_key", f"{OPERATOR}@127.0.0.1", "echo pwned",
                          timeout=60)
    assert "pwned" not in r.stdout and r.returncode != 0, r
    assert "needs an interactive terminal" in r.stderr, r

    ssh = PtySession(appliance.box.argv(*SSH, "-t", "-i", "/root/alice_key",
                                        f"{OPERATOR}@127.0.0.1",
                                        env={"TERM": "xterm-256color"}), columns=80, lines=24)
    try:
        ssh.wait_for("Password", "Project", timeout=90)
        ssh.settle()
        # a fresh home remembers nobody: focus starts on User; Tab moves on
        ssh.type(OPERATOR)
        ssh.wait_for(OPERATOR)
        ssh.send("\t")
        ssh.settle()
        ssh.type(OPERATOR_PASSWORD)
        ssh.wait_for("•" * len(OPERATOR_PASSWORD))
        ssh.send("\t")
        ssh.settle()
        ssh.type("admin")
        ssh.wait_for("admin  ")
        ssh.settle()
        ssh.send("\r")
        ssh.wait_for(f"{OPERATOR}@admin", timeout=60)
        ssh.settle()
        ssh.send("2")  # Instances (the overview also names vm1 and ACTIVE: wait for the table)
        ssh.wait_for("Name  Status", "vm1", "ACTIVE", timeout=60)
        ssh.settle()
        ssh.send("c")  # the selected (only) instance's serial console
        ssh.wait_for("Ctrl+]", timeout=60)
        ssh.settle()
        ssh.send("\r")  # a fresh prompt: the console attached after boot
        ssh.wait_for(PROMPT.strip(), timeout=60)
        ssh.type("echo ssh-$((6*7))\r")
        ssh.wait_for("ssh-42", timeout=60)
        ssh.send("\x1d")  # Ctrl+] then any key: back to monostack
        ssh.settle()
        ssh.send("q")
        screen = ssh.wait_for("Name  Status", "vm1", "ACTIVE", timeout=30)
        assert "ssh-42" not in screen
        ssh.settle()
        ssh.send("\x11")  # Ctrl+Q: the TUI ends, and with it the SSH session
        assert ssh.wait_exit(30) == 0
    finally:
        print("--- operator's last screen ---\n" + ssh.text())
        ssh.close()


def test_operators_are_listed_rotated_and_removed(appliance):
    listed = appliance.sh("monostack operator list")
    assert re.search(rf"^{OPERATOR}: appliance user member@admin; 1 key\(s\)", listed, re.M), \
        listed
    appliance.sh("ssh-keygen -q -t ed25519 -N '' -f /root/alice_key2")
    appliance.sh(f"monostack operator rotate-key {OPERATOR} --key /root/alice_key2.pub")
    old = appliance.box.run(*SSH, "-i", "/root/alice_key", f"{OPERATOR}@127.0.0.1", timeout=60)
    assert old.returncode == 255 and "Permission denied" in old.stderr, old
    new = appliance.box.run(*SSH, "-i", "/root/alice_key2", f"{OPERATOR}@127.0.0.1", timeout=60)
    assert "needs an interactive terminal" in new.stderr, new  # in, and forced to the TUI

    removed = appliance.sh(f"monostack operator remove {OPERATOR}")
    assert "appliance user" in removed, removed
    assert appliance.sh(f"getent passwd {OPERATOR}", check=False).strip() == ""
    assert not (appliance.box.root / "home" / OPERATOR).exists()
    gone = appliance.box.run(*SSH, "-i", "/root/alice_key2", f"{OPERATOR}@127.0.0.1",
                             timeout=60)
    assert gone.returncode == 255 and "Permission denied" in gone.stderr, gone
    token = appliance.sh(f". /etc/monostack/admin-openrc && OS_USERNAME={OPERATOR} "
                         f"OS_PASSWORD={OPERATOR_PASSWORD} openstack token issue", check=False)
    assert "401" in token or "authenticate" in token.lower(), token
    assert "no operators" in appliance.sh("monostack operator list")


def test_a_second_install_changes_nothing(appliance):
    second = install(appliance.box, appliance.port)
    assert "nothing changed" in second.stdout, second.stdout
    assert "started" not in second.stdout and "wrote" not in second.stdout, second.stdout
