"""Long instance actions as the operator sees them: which step of how many, for how long, and
why it failed.

Nova reports a task state ("spawning") and, where the daemon knows it, a `progress`
percentage; a build under load can sit in one task state for minutes. `TaskWatch` keeps, per
server, when its current action began (a build from the server's creation time, other actions
from when this console first saw them), turns the task state into a step of its action
("spawning 4/4 · 70%"), and tells when an action ended in failure, with the
instance's fault as the reason. Pure: fed servers and a clock, no widgets.
"""
from __future__ import annotations

from dataclasses import dataclass

from tui.clock import parse_iso
from tui.cloud import Server

#: The steps of each long action, in the order Nova's task states go through them.
STEPS: dict[str, tuple[str, ...]] = {
    "build": ("scheduling", "networking", "block_device_mapping", "spawning"),
    "resize": ("resize_prep", "resize_migrating", "resize_migrated", "resize_finish"),
    "rebuild": ("rebuilding", "rebuild_block_device_mapping", "rebuild_spawning"),
}
ACTION_OF = {state: action for action, states in STEPS.items() for state in states}


def action_of(task_state: str) -> str:
    return ACTION_OF.get(task_state, task_state)


def elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


@dataclass
class Running:
    action: str
    started: float


@dataclass(frozen=True)
class Failure:
    server: Server
    action: str
    reason: str


class TaskWatch:
    def __init__(self) -> None:
        self.running: dict[str, Running] = {}
        self.status: dict[str, str] = {}
        self.primed = False

    def update(self, servers: list[Server], now: float) -> list[Failure]:
        """Note the servers' tasks; return the actions that ended in failure since last time
        (a server that turned ERROR, or one made since the first look that is born ERROR)."""
        failures = []
        for s in servers:
            was = self.running.get(s.id)
            before = self.status.get(s.id)
            if s.task_state:
                action = action_of(s.task_state)
                if was is None or was.action != action:
                    begun = parse_iso(s.created) if action == "build" else None
                    self.running[s.id] = Running(action, min(begun or now, now))
            else:
                self.running.pop(s.id, None)
                turned_bad = before not in (None, "ERROR") or (before is None and self.primed)
                if s.status == "ERROR" and turned_bad:
                    action = was.action if was else "build" if before in (None, "BUILD") \
                        else "action"
                    failures.append(Failure(s, action, s.fault or "no reason recorded"))
        self.status = {s.id: s.status for s in servers}
        self.running = {k: v for k, v in self.running.items() if k in self.status}
        self.primed = True
        return failures

    def describe(self, server: Server, now: float) -> str:
        """'spawning 4/4 · 70% · 1m 05s' for a server in a long action, '' when idle. The
        percentage shows only when the daemon reports one (0 means it does not know)."""
        if not server.task_state:
            return ""
        run = self.running.get(server.id)
        steps = STEPS.get(action_of(server.task_state), ())
        text = server.task_state
        if server.task_state in steps:
            text += f" {steps.index(server.task_state) + 1}/{len(steps)}"
        if 0 < server.progress < 100:
            text += f" · {server.progress}%"
        if run is not None:
            text += f" · {elapsed(now - run.started)}"
        return text
