from __future__ import annotations

import pytest

from tests.tui.harness import ThreadDaemon


@pytest.fixture(autouse=True)
def _private_config_home(tmp_path, monkeypatch):
    """The TUI must never read or write the developer's real ~/.config/monostack."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture(scope="module")
def tui_daemon(tmp_path_factory):
    """A real daemon (identity only) on a background thread, shared by a module's tests."""
    daemon = ThreadDaemon(tmp_path_factory.mktemp("tui-daemon")).start()
    try:
        yield daemon
    finally:
        daemon.stop()
