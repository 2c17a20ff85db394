"""What the daemon imports before its API answers (issue 16: start to ready).

Importing is most of a warm start (~80% before the lazy imports): a module no first request
needs is imported when first used, a component's modules only when it runs. A fresh
interpreter starts a real Appliance (images + compute on test:///default) the way `monostack
serve` does (listening before compute settles) and reports sys.modules at that moment.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.daemon import ROOT, _env, write_config

PROBE = """
import asyncio, json, sys
from pathlib import Path
from appliance.config import Config
from appliance.service import Appliance

async def main():
    app = Appliance(Config.load(Path(sys.argv[1])))
    await app.startup(settle=False)
    loaded = sorted({m.split(".")[0] for m in sys.modules} | set(sys.modules))
    await app.shutdown()
    print(json.dumps(loaded))

asyncio.run(main())
"""


def _loaded_when_answering(tmp_path: Path) -> set[str]:
    path, _ = write_config(tmp_path, components=["images", "compute"])
    run = subprocess.run([sys.executable, "-c", PROBE, str(path)], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout.strip().splitlines()[-1]))


def test_a_daemon_answers_without_importing_what_no_first_request_needs(tmp_path):
    loaded = _loaded_when_answering(tmp_path)
    assert "appliance.api.compute" in loaded and "appliance.compute.manager" in loaded
    never = {"textual", "tui"}  # the operator's console is never the daemon's
    first_use = {"jsonschema", "referencing", "pycdlib"}  # a body to check, a drive to build
    not_running = {"pyroute2", "h11", "appliance.network.manager", "appliance.api.network",
                   "appliance.api.objects", "appliance.api.volume", "storage.objects",
                   "appliance.volumes.component", "appliance.objects.component"}
    assert loaded.isdisjoint(never | first_use | not_running), \
        sorted(loaded & (never | first_use | not_running))


def test_the_daemon_modules_of_every_component_never_import_the_tui():
    code = ("import sys, appliance.cli, appliance.service, appliance.api.app, "
            "appliance.images.component, appliance.volumes.component, "
            "appliance.network.component, appliance.compute.component, "
            "appliance.objects.component, appliance.api.network, appliance.api.objects; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui')))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
