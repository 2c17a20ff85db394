"""Status badges: one colour per state family, the word always shown (NO_COLOR stays readable)."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

GOOD = {"ACTIVE", "AVAILABLE", "IN-USE", "UP", "ENABLED", "RUNNING"}
BUSY = {"BUILD", "REBOOT", "HARD_REBOOT", "RESIZE", "VERIFY_RESIZE", "MIGRATING", "REBUILD",
        "CREATING", "DOWNLOADING", "UPLOADING", "ATTACHING", "DETACHING", "EXTENDING",
        "QUEUED", "SAVING", "IMPORTING", "DELETING", "PENDING", "RESCUE"}
BAD = {"ERROR", "ERROR_DELETING", "ERROR_EXTENDING", "KILLED", "DOWN", "FAILED", "DISABLED"}
PARKED = {"PAUSED", "SUSPENDED", "SHELVED", "SHELVED_OFFLOADED", "LOCKED"}

STYLES = {"good": "bold green", "busy": "bold yellow", "bad": "bold red",
          "parked": "bold magenta", "off": "dim"}


def status_family(status: str) -> str:
    s = status.upper()
    if s in GOOD:
        return "good"
    if s in BUSY or s.endswith("ING"):
        return "busy"
    if s in BAD or s.startswith("ERROR"):
        return "bad"
    if s in PARKED:
        return "parked"
    return "off"


def status_text(status: str) -> Text:
    return Text(status.upper(), style=STYLES[status_family(status)])


class StatusBadge(Static):
    """A single status word, coloured by family (ACTIVE green, BUILD yellow, ERROR red)."""

    DEFAULT_CSS = "StatusBadge { width: auto; }"

    def __init__(self, status: str = "", **kw) -> None:
        super().__init__(status_text(status) if status else "", **kw)

    def set_status(self, status: str) -> None:
        self.update(status_text(status))
