"""SSH into the appliance (issue 8): a real OpenSSH server on a loopback port, configured from
the SHIPPED packaging/ssh/monostack.conf snippet, forces operators into the TUI.

An operator made by `monostack operator add` logs in with a key (ssh -tt inside a private tmux
server), sees the TUI's login screen, logs in with appliance credentials, sees the instance
list, quits, and the SSH connection closes. A non-operator account keeps its normal shell; the
operator cannot run a command (`ssh op@host echo pwned` runs the TUI, which refuses a session
without a terminal and exits at once).

Everything is unique per run (group, users, port, tmux socket, daemon) and removed in finally:
the test never touches the real monostack-operators group or the machine's sshd.

The operator's unix account runs the TUI itself, so it must be able to execute our Python: when
the test's interpreter lives somewhere an unprivileged user cannot reach (a venv on a pyenv
under a 0700 /root), the ForceCommand wrapper runs the system python of the same version over a
hard-linked copy of our site-packages instead.
"""
from __future__ import annotations

import asyncio
import grp
import os
import pwd
import shutil
import site
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.compute_support import TEST_IMAGE_ID, seed_test_image
from tests.daemon import ADMIN_PASSWORD, ROOT, DaemonProcess, free_port, run_init, write_config

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates unix users and runs sshd: needs root"),
    pytest.mark.skipif(not (os.path.exists("/usr/sbin/sshd") and shutil.which("ssh")
                            and shutil.which("tmux") and shutil.which("useradd")),
                       reason="needs openssh-server, openssh-client, tmux, passwd"),
]

SNIPPET = ROOT / "packaging" / "ssh" / "monostack.conf"
TEST_ROOT = Path("/var/lib/monostack-test")
OPERATOR_PASSWORD = "operator-Pa55-word"


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("timeout", 60)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def _reachable_by_others(python: str) -> bool:
    """Can an unprivileged account run `python` and import our dependencies?"""
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", python, "-c", "import textual, aiohttp"],
        cwd="/", capture_output=True, timeout=60)
    return probe.returncode == 0


def operator_python(base: Path) -> str:
    """A command prefix (shell words) that runs `python -m appliance` as any user."""
    if _reachable_by_others(sys.executable):
        return f"env PYTHONPATH={ROOT} {sys.executable} -m appliance"
    system = shutil.which(f"python{sys.version_info[0]}.{sys.version_info[1]}",
                          path="/usr/bin:/usr/local/bin")
    if not system:
        pytest.skip(f"{sys.executable} is not reachable by other users and there is no system "
                    f"python{sys.version_info[0]}.{sys.version_info[1]}")
    sites = [Path(p) for p in site.getsitepackages() if Path(p).is_dir()]
    copies = []
    for i, sp in enumerate(sites):
        dest = base / f"site{i}"
        # hard links: a second or two for our 200+ MB of packages, no space used
        if subprocess.run(["cp", "-al", str(sp), str(dest)], capture_output=True).returncode:
            shutil.rmtree(dest, ignore_errors=True)
            _run(["cp", "-a", str(sp), str(dest)], timeout=300)
        copies.append(str(dest))
    launcher = base / "launch.py"
    launcher.write_text(
        "import runpy, site, sys\n"
        f"for p in {copies!r}:\n"
        "    site.addsitedir(p)\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "runpy.run_module('appliance', run_name='__main__', alter_sys=True)\n")
    launcher.chmod(0o644)
    return f"{system} {launcher}"


def sshd_config(*, group: str, force_command: str, port: int, host_key: Path, pid_file: Path,
                users: list[str]) -> str:
    """The test server's config: loopback, key-only, no PAM, then the shipped snippet verbatim
    except for the group name and the ForceCommand path."""
    snippet = SNIPPET.read_text()
    assert snippet.count("Match Group monostack-operators") == 1
    assert snippet.count("ForceCommand /usr/local/bin/monostack tui") == 1
    snippet = snippet.replace("Match Group monostack-operators", f"Match Group {group}")
    snippet = snippet.replace("ForceCommand /usr/local/bin/monostack tui",
                              f"ForceCommand {force_command}")
    head = f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile {pid_file}
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {' '.join(users)}
StrictModes yes
LogLevel VERBOSE
"""
    return head + "\n" + snippet


class Tmux:
    """A private tmux server (-L): never sees or disturbs anyone else's sessions."""

    def __init__(self, socket_name: str, conf: Path) -> None:
        self.socket = socket_name
        # panes stay after their command exits so the last screen can be read and asserted
        conf.write_text("set -g remain-on-exit on\n")
        self.conf = conf

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, "-f", str(self.conf), *args],
                              capture_output=True, text=True, check=check, timeout=30)

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", "main", "-x", "120", "-y", "40", command)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "main").stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "main", *(["-l"] if literal else []), *keys)

    def dead(self) -> bool:
        r = self.tmux("display-message", "-p", "-t", "main", "#{pane_dead}", check=False)
        return r.returncode != 0 or r.stdout.strip() == "1"

    def wait_for(self, *texts: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"never saw {texts!r} on the screen:\n{screen}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=30)
        # kill-server leaves its socket file behind
        tmpdir = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        (tmpdir / self.socket).unlink(missing_ok=True)


def _userdel(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    uid = pwd.getpwnam(name).pw_uid
    for proc in Path("/proc").iterdir():  # leftovers of this test's own unique user, by pid
        try:
            if proc.name.isdigit() and proc.stat().st_uid == uid:
                os.kill(int(proc.name), 9)
        except OSError:
            pass
    subprocess.run(["userdel", "-r", name], capture_output=True, timeout=30)


async def _boot_instance(daemon: DaemonProcess, name: str, scratch: Path) -> None:
    client = daemon.client()
    await client.login("admin", ADMIN_PASSWORD, "admin")
    try:
        await seed_test_image(client, scratch)
        sid = (await client.post("/compute/v2.1/servers", {"server": {
            "name": name, "imageRef": TEST_IMAGE_ID, "flavorRef": "1"}}))["server"]["id"]
        for _ in range(300):
            status = (await client.get(f"/compute/v2.1/servers/{sid}"))["server"]["status"]
            if status in ("ACTIVE", "ERROR"):
                break
            await asyncio.sleep(0.1)
        assert status == "ACTIVE", status
    finally:
        await client.close()


async def _check_login(daemon: DaemonProcess, user: str, password: str) -> None:
    client = daemon.client()
    try:
        await client.login(user, password, "admin")
    finally:
        await client.close()


def test_operator_lands_in_tui_and_others_keep_their_shell(tmp_path):
    t0 = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    group, op, nonop = f"msg{tag}", f"mso{tag}", f"msn{tag}"
    base = TEST_ROOT / uuid.uuid4().hex[:12]
    tmux = Tmux(f"mso{tag}", tmp_path / "tmux.conf")
    daemon: DaemonProcess | None = None
    sshd: subprocess.Popen | None = None
    try:
        # -- the appliance: socket in a 0755 directory the operator's account can traverse --
        base.mkdir(parents=True, mode=0o755)
        TEST_ROOT.chmod(0o755)
        base.chmod(0o755)
        subprocess.run(["groupadd", group], check=True, timeout=30)
        cfg_path, config = write_config(base, components=["images", "compute"],
                                         extra={"api": {"socket_group": group}})
        cfg_path.chmod(0o644)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        run_init(cfg_path)
        daemon = DaemonProcess(cfg_path, config)
        daemon.start()
        sock = Path(config.api.socket)
        assert sock.stat().st_gid == grp.getgrnam(group).gr_gid
        assert sock.stat().st_mode & 0o777 == 0o660
        vm_name = f"sshvm-{tag}"
        asyncio.run(_boot_instance(daemon, vm_name, tmp_path))

        # -- keys and accounts: the operator through the product's own command --
        key = tmp_path / "id_ed25519"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        host_key = tmp_path / "host_ed25519"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
        pub = key.with_suffix(".pub").read_text().strip()
        _run([sys.executable, "-m", "appliance", "--config", str(cfg_path), "operator", "add",
              op, "--key", pub, "--password", OPERATOR_PASSWORD, "--project", "admin",
              "--role", "member", "--group", group],
             cwd=ROOT, env=dict(env, MONOSTACK_ADMIN_PASSWORD=ADMIN_PASSWORD))
        assert op in grp.getgrnam(group).gr_mem
        asyncio.run(_check_login(daemon, op, OPERATOR_PASSWORD))
        assert pwd.getpwnam(op).pw_dir and Path(pwd.getpwnam(op).pw_dir).is_dir()
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*",
                        nonop], check=True, timeout=30)
        home = Path(pwd.getpwnam(nonop).pw_dir)
        (home / ".ssh").mkdir(mode=0o700)
        (home / ".ssh" / "authorized_keys").write_text(pub + "\n")
        (home / ".ssh" / "authorized_keys").chmod(0o600)
        uid, gid = pwd.getpwnam(nonop).pw_uid, pwd.getpwnam(nonop).pw_gid
        for p in (home / ".ssh", home / ".ssh" / "authorized_keys"):
            os.chown(p, uid, gid)

        # -- the ForceCommand wrapper and sshd, built from the shipped snippet --
        wrapper = base / "monostack-tui"
        wrapper.write_text("#!/bin/sh\n"
                           f"exec {operator_python(base)} --config {cfg_path} tui "
                           f"--socket {sock}\n")
        wrapper.chmod(0o755)
        port = free_port()
        cfg = tmp_path / "sshd_config"
        cfg.write_text(sshd_config(group=group, force_command=str(wrapper), port=port,
                                   host_key=host_key, pid_file=tmp_path / "sshd.pid",
                                   users=[op, nonop]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        _run(["/usr/sbin/sshd", "-t", "-f", str(cfg)])
        log = tmp_path / "sshd.log"
        sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(cfg), "-E", str(log)])
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.5):
                    break
            except OSError:
                assert sshd.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        ssh = ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
               "-o", "LogLevel=ERROR", "-p", str(port)]
        t_setup = time.monotonic() - t0

        # -- a non-operator keeps the normal shell --
        r = subprocess.run([*ssh, f"{nonop}@127.0.0.1", "echo", "shell-ok"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.strip() == "shell-ok", (r, log.read_text())

        # -- the operator cannot run a command: ForceCommand runs the TUI, which wants a tty --
        r = subprocess.run([*ssh, f"{op}@127.0.0.1", "echo", "pwned"],
                           capture_output=True, text=True, timeout=60)
        assert "pwned" not in r.stdout + r.stderr
        assert r.returncode != 0
        assert "needs an interactive terminal" in r.stderr, (r, log.read_text())

        # -- the operator's interactive session: TUI login, instance list, quit, closed --
        tmux.start(" ".join([*ssh, "-tt", f"{op}@127.0.0.1"]))
        tmux.wait_for("Log in", "OpenStack in a box", "Password", "Project")
        # a fresh home remembers no user: focus starts on User; Tab moves to Password, Project
        tmux.keys(op, literal=True)
        tmux.wait_for(op)
        time.sleep(0.5)  # a Tab hot on the heels of typing was sometimes lost (1 run in ~6)
        tmux.keys("Tab")
        time.sleep(0.5)
        tmux.keys(OPERATOR_PASSWORD, literal=True)
        tmux.wait_for("•" * len(OPERATOR_PASSWORD))
        time.sleep(0.5)
        tmux.keys("Tab")
        time.sleep(0.5)
        tmux.keys("admin", literal=True)
        tmux.wait_for("admin  ")
        tmux.keys("Enter")
        tmux.wait_for("Overview", f"{op}@admin")
        tmux.keys("2")
        screen = tmux.wait_for(vm_name, "ACTIVE")
        assert "Instances" in screen
        tmux.keys("C-q")
        deadline = time.monotonic() + 30
        while not tmux.dead():
            assert time.monotonic() < deadline, tmux.screen()
            time.sleep(0.2)
        assert "Connection to 127.0.0.1 closed" in tmux.screen() or tmux.dead()
        # the TUI remembered the user in the operator's own home, never the password
        settings = Path(pwd.getpwnam(op).pw_dir) / ".config" / "monostack" / "tui.json"
        assert op in settings.read_text() and OPERATOR_PASSWORD not in settings.read_text()
        print(f"\nssh operator test: setup {t_setup:.1f}s, "
              f"total {time.monotonic() - t0:.1f}s")
    finally:
        tmux.kill()
        if sshd is not None and sshd.poll() is None:
            sshd.terminate()
            try:
                sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sshd.kill()
                sshd.wait(timeout=10)
        for user in (op, nonop):
            _userdel(user)
        subprocess.run(["groupdel", group], capture_output=True, timeout=30)
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
