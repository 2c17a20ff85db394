"""`monostack backup` during a write load, then `restore` into a fresh state dir."""
import asyncio
import os
import subprocess

import pytest

from appliance.client import MonostackClient
from tests.daemon import ADMIN_PASSWORD, ROOT, DaemonProcess, _env, monostack_cmd, run_init, write_config


def cli(config_path, *args, check=True):
    env = _env()
    env["MONOSTACK_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    return subprocess.run(monostack_cmd("--config", str(config_path), *args), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=check)


async def test_backup_under_load_restores_everything_acknowledged_before_it(tmp_path):
    path, config = write_config(tmp_path / "a", components=["core"])
    run_init(path)
    daemon = DaemonProcess(path, config)
    await asyncio.to_thread(daemon.start)
    acked_before: set[str] = set()
    try:
        async with MonostackClient(socket_path=config.api.socket) as client:
            await client.login("admin", ADMIN_PASSWORD, "admin")
            stop = asyncio.Event()
            acked: list[str] = []

            async def writer():
                i = 0
                while not stop.is_set():
                    name = f"p{i}"
                    await client.post("/v3/projects", {"project": {"name": name}})
                    acked.append(name)
                    i += 1

            task = asyncio.create_task(writer())
            await asyncio.sleep(0.5)
            acked_before = set(acked)
            backup = tmp_path / "backup.json"
            out = await asyncio.to_thread(cli, path, "backup", str(backup))
            assert "backup written" in out.stdout
            await asyncio.sleep(0.3)
            stop.set()
            await task
            assert len(acked) > len(acked_before) > 0
            assert oct(os.stat(backup).st_mode & 0o777) == "0o600"

        # restore refuses while a daemon owns the state dir
        busy = await asyncio.to_thread(cli, path, "restore", str(backup), check=False)
        assert busy.returncode != 0 and "already owns" in busy.stderr
    finally:
        daemon.stop()

    path2, config2 = write_config(tmp_path / "b", components=["core"])
    out = await asyncio.to_thread(cli, path2, "restore", str(backup))
    assert "restored state" in out.stdout
    daemon2 = DaemonProcess(path2, config2)
    await asyncio.to_thread(daemon2.start)
    try:
        async with MonostackClient(socket_path=config2.api.socket) as client:
            await client.login("admin", ADMIN_PASSWORD, "admin")
            names = {p["name"] for p in (await client.get("/v3/projects"))["projects"]}
        assert acked_before <= names
    finally:
        daemon2.stop()


def test_restore_rejects_a_file_that_is_not_a_backup(tmp_path):
    path, _ = write_config(tmp_path, components=["core"])
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    out = cli(path, "restore", str(junk), check=False)
    assert out.returncode == 2 and "not a monostack state backup" in out.stderr
