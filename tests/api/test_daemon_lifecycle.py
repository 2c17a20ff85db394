"""The daemon process: clean SIGTERM, lock file, and refusal of a second daemon."""
import signal
import subprocess

from tests.daemon import ROOT, DaemonProcess, _env, monostack_cmd, run_init, write_config


def test_sigterm_exits_cleanly_and_a_second_daemon_is_refused(tmp_path):
    path, config = write_config(tmp_path, components=["core"])
    run_init(path)
    daemon = DaemonProcess(path, config)
    daemon.start()
    try:
        lock = (config.state_dir / "daemon.lock").read_text().strip()
        assert lock == str(daemon.proc.pid)
        second = subprocess.run(monostack_cmd("--config", str(path), "serve"), cwd=ROOT,
                                env=_env(), capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"another monostack daemon (pid {daemon.proc.pid}) already owns" in second.stderr
    finally:
        daemon.kill(signal.SIGTERM)
    assert daemon.proc.returncode == 0
    assert not config.api.socket.exists()
    daemon.start()  # the lock was released
    daemon.stop()
    assert daemon.proc.returncode == 0
