"""kill -9 the daemon while a client writes records; every acknowledged record survives."""
import asyncio
import random
import signal

from appliance.client import MonostackClient
from appliance.errors import MonostackError
from tests.daemon import ADMIN_PASSWORD, DaemonProcess, run_init, write_config
from tests.reliability.support import LONG

#: test_crash_loop kills a daemon running every component 30 times in CI; this core-only loop
#: (a tight project-write race) keeps a short CI form and its full 50 kills in long mode.
# The foundation issue asks for at least 50 kills in every run; long mode does more.
KILLS = 200 if LONG else 50


async def test_sigkill_during_writes_loses_no_acknowledged_record(tmp_path):
    path, config = write_config(tmp_path, components=["core"])
    run_init(path)
    daemon = DaemonProcess(path, config)
    acked: set[str] = set()
    rng = random.Random(7)
    try:
        for round_no in range(KILLS):
            await asyncio.to_thread(daemon.start)
            client = MonostackClient(socket_path=config.api.socket)
            try:
                await client.login("admin", ADMIN_PASSWORD, "admin")
                # everything acknowledged before the previous kill is still there
                names = {p["name"] for p in (await client.get("/v3/projects"))["projects"]}
                missing = acked - names
                assert not missing, f"round {round_no}: lost acknowledged records {sorted(missing)[:5]}"

                async def writer() -> None:
                    i = 0
                    while True:
                        name = f"r{round_no}-{i}"
                        await client.post("/v3/projects", {"project": {"name": name}})
                        acked.add(name)
                        i += 1

                task = asyncio.create_task(writer())
                await asyncio.sleep(rng.uniform(0.05, 0.4))
                await asyncio.to_thread(daemon.kill, signal.SIGKILL)
                try:
                    await task
                except MonostackError:
                    pass
            finally:
                await client.close()
        await asyncio.to_thread(daemon.start)
        async with MonostackClient(socket_path=config.api.socket) as client:
            await client.login("admin", ADMIN_PASSWORD, "admin")
            names = {p["name"] for p in (await client.get("/v3/projects"))["projects"]}
        assert acked <= names and len(acked) > KILLS
    finally:
        daemon.kill(signal.SIGKILL)
