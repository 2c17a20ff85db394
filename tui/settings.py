"""What the TUI remembers between runs: the last user and project, the theme. Never a password.

Kept in $XDG_CONFIG_HOME/monostack/tui.json (~/.config/monostack/tui.json by default); a broken
or unreadable file is treated as empty rather than stopping the operator from logging in.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "monostack" / "tui.json"


@dataclass
class Settings:
    last_user: str = ""
    last_project: str = ""
    theme: str = "textual-dark"
    path: Path | None = field(default=None, repr=False, compare=False)
    #: False for browser sessions: one server account serves many operators, and one must
    #: not find the last one's user name filled in.
    persist: bool = field(default=True, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        path = path or default_path()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        known = {k: str(v) for k, v in data.items() if k in ("last_user", "last_project", "theme")}
        return cls(**known, path=path)

    def save(self) -> None:
        if not self.persist:
            return
        path = self.path or default_path()
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2) + "\n")
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home must not break the console
