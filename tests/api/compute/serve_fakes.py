"""`monostack serve` with the fake image component, for subprocess (kill -9) tests.

    python -m tests.api.compute.serve_fakes <config.toml> [init]

MONOSTACK_TEST_SPAWN_DELAY / MONOSTACK_TEST_DESTROY_DELAY (seconds) slow the driver's spawn /
destroy so a test can kill the daemon in the middle of a build or a delete.
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from appliance.compute.libvirt.driver import LibvirtDriver
from appliance.config import Config
from appliance.logging_setup import setup_logging
from appliance.service import Appliance
from tests.api.compute.fakes import COMPONENTS
from tests.daemon import ADMIN_PASSWORD


def _slow(name: str, env: str) -> None:
    delay = float(os.environ.get(env, "0") or 0)
    if not delay:
        return
    real = getattr(LibvirtDriver, name)

    async def slowed(self, *args, **kwargs):
        await asyncio.sleep(delay)
        return await real(self, *args, **kwargs)

    setattr(LibvirtDriver, name, slowed)


async def _init(config: Config) -> None:
    app = Appliance(config, components=COMPONENTS)
    await app.startup(listen=False)
    try:
        await app.ctx.identity.bootstrap("admin", ADMIN_PASSWORD, "admin")
        proj = app.ctx.identity.project_by_name("admin")
        for c in app.ctx.components.values():
            if hasattr(c, "bootstrap"):
                await c.bootstrap(proj)
    finally:
        await app.shutdown()


def main() -> None:
    config = Config.load(Path(sys.argv[1]))
    setup_logging(config.log.level, "text")
    if sys.argv[2:] == ["init"]:
        asyncio.run(_init(config))
        return
    _slow("spawn", "MONOSTACK_TEST_SPAWN_DELAY")
    _slow("destroy", "MONOSTACK_TEST_DESTROY_DELAY")
    asyncio.run(Appliance(config, components=COMPONENTS).run())


if __name__ == "__main__":
    main()
