"""`monostack serve` with a slowed compute driver, so a test can kill -9 the daemon in the middle
of a build or a delete (the components are the real ones named in the config).

    python -m tests.serve_slow <config.toml>

Seconds from the environment:
  MONOSTACK_TEST_SPAWN_DELAY    sleep before the driver's spawn (no domain yet)
  MONOSTACK_TEST_SPAWN_HOLD     sleep after spawn returned (the domain runs, the build has not
                                recorded it: the worst moment to die)
  MONOSTACK_TEST_DESTROY_DELAY  sleep before the driver's destroy (domain and disks still there)
  MONOSTACK_TEST_SPAWN_LANDS_LATE  the spawn is stuck this long in "libvirt", and still lands
                                when its caller stops waiting (as a define already sent does)
  MONOSTACK_TEST_ORPHAN_SWEEP   seconds between the compute manager's orphan sweeps
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


def _seconds(env: str) -> float:
    return float(os.environ.get(env, "0") or 0)


def _slow(name: str, before: float, after: float = 0.0) -> None:
    if not before and not after:
        return
    real = getattr(LibvirtDriver, name)

    async def slowed(self, *args, **kwargs):
        await asyncio.sleep(before)
        result = await real(self, *args, **kwargs)
        await asyncio.sleep(after)
        return result

    setattr(LibvirtDriver, name, slowed)


def _lands_late(seconds: float) -> None:
    if not seconds:
        return
    real = LibvirtDriver.spawn

    async def stuck(self, spec):
        async def land():
            await asyncio.sleep(seconds)
            await real(self, spec)
        landing = asyncio.ensure_future(land())
        _landings.add(landing)
        landing.add_done_callback(_landings.discard)
        await asyncio.shield(landing)

    LibvirtDriver.spawn = stuck


_landings: set[asyncio.Future] = set()


def main() -> None:
    config = Config.load(Path(sys.argv[1]))
    setup_logging(config.log.level, "text")
    _slow("spawn", _seconds("MONOSTACK_TEST_SPAWN_DELAY"), _seconds("MONOSTACK_TEST_SPAWN_HOLD"))
    _slow("destroy", _seconds("MONOSTACK_TEST_DESTROY_DELAY"))
    _lands_late(_seconds("MONOSTACK_TEST_SPAWN_LANDS_LATE"))
    if _seconds("MONOSTACK_TEST_ORPHAN_SWEEP"):
        from appliance.compute import reconcile
        reconcile.ORPHAN_SWEEP_INTERVAL = _seconds("MONOSTACK_TEST_ORPHAN_SWEEP")
    asyncio.run(Appliance(config).run())


if __name__ == "__main__":
    main()
