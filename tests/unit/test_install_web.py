"""`install.sh --web`: the pieces of packaging/web-console.sh run in a scratch root, with the
host-changing commands (systemctl, useradd, chown, setpriv …) stubbed on PATH and logged.
Without systemd the stubbed setpriv drops only its own options, so the real `monostack web`
command line install.sh builds is started (on loopback, with a scratch certificate) and asked
over TLS whether it is up, the way `monostack status` asks."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.config import Config
from appliance.doctor import check_web_console
from appliance.tls import ensure_tls

REPO = Path(__file__).resolve().parents[2]

STUBS = {
    # systemd's answers come from a state file the stub keeps: enabled+active after enable.
    "systemctl": """
echo "systemctl $*" >> "$CALLS"
case "$1" in
  is-enabled|is-active) [ -f "$ROOT/unit-on" ] ;;
  enable) touch "$ROOT/unit-on" ;;
  *) true ;;
esac""",
    "useradd": 'echo "useradd $*" >> "$CALLS"; touch "$ROOT/user-made"',
    "usermod": 'echo "usermod $*" >> "$CALLS"',
    "getent": '[ "$1" = passwd ] && [ -f "$ROOT/user-made" ]',
    "id": 'echo "monostack-web monostack-operators"',
    "chown": 'echo "chown $*" >> "$CALLS"',
    # drops its own options and runs the rest: the real command install.sh builds
    "setpriv": """
echo "setpriv $*" >> "$CALLS"
while [ $# -gt 0 ]; do case "$1" in --*) shift ;; *) break ;; esac; done
exec "$@" """,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def root(tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, body in STUBS.items():
        (stubs / name).write_text("#!/bin/bash\n" + body + "\n")
        (stubs / name).chmod(0o755)
    prefix = tmp_path / "opt"
    (prefix / "venv/bin").mkdir(parents=True)
    shim = prefix / "venv/bin/monostack"  # the installed program: this checkout's
    shim.write_text(f"#!/bin/sh\npwd > {tmp_path}/started-in\n"
                    f"cd {REPO} && exec {sys.executable} -m appliance \"$@\"\n")
    shim.chmod(0o755)
    etc = tmp_path / "etc"
    ensure_tls(etc / "tls", ["localhost"])
    (etc / "monostack.toml").write_text('state_dir = "/nonexistent"\n\n[api]\n'
                                        'socket = "/nonexistent.sock"\n')
    (tmp_path / "units").mkdir()
    return tmp_path


def run_piece(root: Path, script: str, *, systemd: bool, listen: str) -> tuple[str, str]:
    """Source web-console.sh as install.sh does and run `script`; returns (output, calls
    made by this run)."""
    calls = root / "calls"
    calls.write_text("")
    prelude = f"""
set -euo pipefail
SRC={REPO}; PREFIX={root}/opt; ETC={root}/etc
WEB_RUN={root}/run-web WEB_LOG={root}/web.log WEB_SOCKET={root}/api.sock
WEB_UNIT_DIR={root}/units
say() {{ echo "monostack install: $*"; }}
warn() {{ echo "monostack install: WARNING: $*" >&2; }}
alive() {{ [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }}
systemd_running() {{ {'true' if systemd else 'false'}; }}
changed=0; restart=0
. "$SRC/packaging/web-console.sh"
WEB_LISTEN={listen}
"""
    env = dict(os.environ, PATH=f"{root}/stubs:{os.environ['PATH']}", CALLS=str(calls),
               ROOT=str(root))
    done = subprocess.run(["bash", "-c", prelude + script + '\necho "changed=$changed"'],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr, calls.read_text()


def test_listen_addresses_are_host_port_with_an_unprivileged_port(root):
    out, _ = run_piece(root, """
for a in 0.0.0.0:8443 127.0.0.1:9000 '[::]:8443' console.example.org:65535 \\
         0.0.0.0:443 0.0.0.0:70000 8443 'a b:8443' '0.0.0.0:84x3'; do
  web_listen_valid "$a" && echo "ok $a" || echo "no $a"
done""", systemd=False, listen="0.0.0.0:8443")
    assert [line for line in out.splitlines() if line[:3] in ("ok ", "no ")] == [
        "ok 0.0.0.0:8443", "ok 127.0.0.1:9000", "ok [::]:8443", "ok console.example.org:65535",
        "no 0.0.0.0:443", "no 0.0.0.0:70000", "no 8443", "no a b:8443", "no 0.0.0.0:84x3"]


def test_under_systemd_the_unit_is_installed_and_enabled_once(root):
    out, calls = run_piece(root, "enable_web_console; web_console_summary", systemd=True,
                           listen="0.0.0.0:9443")
    unit = (root / "units/monostack-web.service").read_text()
    assert f"ExecStart={root}/opt/venv/bin/monostack web --listen 0.0.0.0:9443" in unit
    assert "--config" not in unit and "DynamicUser=yes" in unit and "User=root" not in unit
    assert "systemctl daemon-reload" in calls and "systemctl enable --now monostack-web" in calls
    assert 'listen = "0.0.0.0:9443"' in (root / "etc/monostack.toml").read_text()
    assert Config.load(root / "etc/monostack.toml").web.listen == "0.0.0.0:9443"
    assert "changed=1" in out

    out, calls = run_piece(root, "enable_web_console", systemd=True, listen="0.0.0.0:9443")
    assert "changed=0" in out
    assert "enable" not in calls.replace("is-enabled", "") and "restart" not in calls

    out, calls = run_piece(root, "enable_web_console", systemd=True, listen="0.0.0.0:9444")
    assert "--listen 0.0.0.0:9444" in (root / "units/monostack-web.service").read_text()
    assert "systemctl restart monostack-web" in calls
    assert (root / "etc/monostack.toml").read_text().count("listen =") == 1


def test_without_systemd_it_starts_once_as_an_unprivileged_user_and_status_sees_it(root):
    listen = f"127.0.0.1:{_free_port()}"
    pid = None
    try:
        out, calls = run_piece(root, "enable_web_console; web_console_summary",
                               systemd=False, listen=listen)
        pid = int((root / "run-web/web.pid").read_text())
        assert "useradd --system --user-group --no-create-home" in calls
        assert "--groups monostack-operators monostack-web" in calls
        assert "setpriv --reuid=monostack-web --regid=monostack-web --init-groups" in calls
        assert "started the web console myself as user monostack-web" in out
        assert f"https://127.0.0.1:{listen.split(':')[1]}/ — started by install.sh as user " \
               f"monostack-web (pid {pid}" in out
        # the pid is the console's own, with a clean environment and its own copy of the key
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"web" in cmdline and listen.encode() in cmdline
        assert (root / "started-in").read_text().strip() == "/"  # not the installer's cwd
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"HOME={root}/run-web".encode() in environ and b"CALLS" not in b" ".join(environ)
        key = root / "run-web/server.key"
        assert key.read_bytes() == (root / "etc/tls/server.key").read_bytes()
        assert key.stat().st_mode & 0o777 == 0o400
        up = check_web_console(Config.load(root / "etc/monostack.toml"))
        assert up.level == "ok" and up.detail.startswith("up on https://"), up

        out, calls = run_piece(root, "enable_web_console", systemd=False, listen=listen)
        assert "changed=0" in out and "setpriv" not in calls and "useradd" not in calls
        assert int((root / "run-web/web.pid").read_text()) == pid
    finally:
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)  # the console and its spare TUI (its session)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists() or \
                        Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                    break
                time.sleep(0.05)
    down = check_web_console(Config.load(root / "etc/monostack.toml"))
    assert down.level == "warn" and down.detail.startswith("not answering")


def test_no_web_stops_the_console_and_later_runs_leave_it_off(root):
    """`install.sh --no-web`: the console stops, [web] leaves the config (so later runs do not
    start it again and status says off), its key copy goes; a second --no-web changes nothing."""
    listen = f"127.0.0.1:{_free_port()}"
    pid = None
    try:
        run_piece(root, "enable_web_console", systemd=False, listen=listen)
        pid = int((root / "run-web/web.pid").read_text())
        out, _ = run_piece(root, "disable_web_console; web_console_summary", systemd=False,
                           listen=listen)
        assert f"stopping it (pid {pid})" in out and "changed=1" in out
        assert "off (bash packaging/install.sh --web" in out
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists() or \
                    Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the console is still running")
        conf = (root / "etc/monostack.toml").read_text()
        assert "[web]" not in conf and "listen" not in conf and "[api]" in conf
        assert Config.load(root / "etc/monostack.toml").web.listen is None
        assert not (root / "run-web/server.key").exists()
        out, _ = run_piece(root, "disable_web_console", systemd=False, listen=listen)
        assert "changed=0" in out
    finally:
        if pid is not None and Path(f"/proc/{pid}").exists():
            os.killpg(pid, signal.SIGTERM)
    run_piece(root, "enable_web_console", systemd=True, listen="0.0.0.0:9443")
    out, calls = run_piece(root, "disable_web_console", systemd=True, listen="0.0.0.0:9443")
    assert "systemctl disable --now monostack-web" in calls and "changed=1" in out
