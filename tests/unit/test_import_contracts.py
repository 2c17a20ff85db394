"""The import rules of the architecture (pyproject.toml [tool.importlinter]) hold.

They are checked here rather than by a separate CI step so every test run enforces them: the
TUI reaches the daemon only through appliance.client, storage knows nothing of the appliance,
libvirt, pyroute2 and tinydb each enter through one door, domain code does not import the HTTP
layer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs lint-imports on this checkout (it puts its cwd first on sys.path)."""
    exe = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(exe), "--no-cache", "--no-logo", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


def test_every_import_contract_is_kept():
    run = lint_imports()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout, run.stdout


def test_a_crossing_import_breaks_its_contract(tmp_path):
    """The contracts are live: a tree where storage imports the daemon and the TUI imports the
    compute manager is refused by the same configuration."""
    for pkg in ("appliance", "storage", "tui"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "appliance" / "client.py").write_text("")
    (tmp_path / "appliance" / "errors.py").write_text("")
    (tmp_path / "appliance" / "compute").mkdir()
    (tmp_path / "appliance" / "compute" / "__init__.py").write_text("")
    (tmp_path / "appliance" / "compute" / "libvirt").mkdir()
    (tmp_path / "appliance" / "compute" / "libvirt" / "__init__.py").write_text("import libvirt\n")
    (tmp_path / "appliance" / "compute" / "manager.py").write_text("import libvirt\n")
    (tmp_path / "storage" / "blobs.py").write_text("from appliance import errors\n")
    (tmp_path / "tui" / "app.py").write_text(
        "from appliance.client import X\nfrom appliance.errors import Y\n"
        "from appliance.compute import manager\n")
    config = tmp_path / "contracts.toml"
    text = (ROOT / "pyproject.toml").read_text()
    config.write_text(text[text.index("[tool.importlinter]"):])
    exe = Path(sys.executable).parent / "lint-imports"
    run = subprocess.run(
        [str(exe), "--no-cache", "--no-logo", str(config),
         "--contract", "tui-client-only", "--contract", "storage-standalone",
         "--contract", "libvirt-door"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode != 0, run.stdout
    assert "tui.app -> appliance.compute.manager" in run.stdout, run.stdout
    assert "storage.blobs -> appliance.errors" in run.stdout, run.stdout
    assert "appliance.compute.manager -> libvirt" in run.stdout, run.stdout
    assert "appliance.compute.libvirt -> libvirt" not in run.stdout, run.stdout
