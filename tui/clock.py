"""The TUI's sense of time: real by default, frozen in tests so snapshots never drift.

Every timestamp the UI shows goes through `Clock` (the header clock, "3m ago" columns), so a
test that freezes it gets the same frame every run. Times in the future (clock skew between a
remote daemon and this terminal, or a frozen test clock) read as "now", never as negative.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone, tzinfo


class Clock:
    def __init__(self, frozen: float | None = None, tz: tzinfo | None = None) -> None:
        self.frozen = frozen
        self.tz = tz

    def now(self) -> float:
        return self.frozen if self.frozen is not None else time.time()

    def wall(self) -> str:
        """HH:MM:SS for the header."""
        return datetime.fromtimestamp(self.now(), self.tz).strftime("%H:%M:%S")

    def ago(self, when: float | None) -> str:
        if not when:
            return "—"
        delta = self.now() - when
        if delta < 60:
            return "now"
        if delta < 3600:
            return f"{int(delta // 60)}m ago"
        if delta < 86400:
            return f"{int(delta // 3600)}h ago"
        return f"{int(delta // 86400)}d ago"

    def until(self, when: float | None) -> str:
        """'in 23h 50m' for a future time (a lease's expiry), 'expired' once past."""
        if not when:
            return "—"
        delta = when - self.now()
        if delta <= 0:
            return "expired"
        if delta < 3600:
            return f"in {int(delta // 60)}m"
        if delta < 86400:
            return f"in {int(delta // 3600)}h {int(delta % 3600 // 60)}m"
        return f"in {int(delta // 86400)}d {int(delta % 86400 // 3600)}h"


def parse_iso(value: str | None) -> float | None:
    """OpenStack timestamps ('2026-01-01T00:00:00Z', with or without fraction) → epoch."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()
