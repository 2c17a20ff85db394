"""Nova's instance actions: what was asked of a server, by whom, and how each step ended.

Every server action (create, stop, start, reboot, resize, rebuild, rescue, attach, delete…)
is recorded when the API accepts it, with the request id, user and project of the call, and
the conductor adds an event per step with its start, finish and result; a failed step keeps
the error and its traceback (shown to admins only, as Nova does). `openstack server event
list/show` read them, and the TUI shows why a build failed.

Bounded: a server keeps its newest MAX_PER_INSTANCE actions; they go with the server.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from appliance.request_context import current
from appliance.state import FieldIndex, Repository, Store, from_doc

MAX_PER_INSTANCE = 100

#: conductor action → (Nova's action name, Nova's event name)
NAMES: dict[str, tuple[str, str]] = {
    "build": ("create", "compute__do_build_and_run_instance"),
    "delete": ("delete", "compute_terminate_instance"),
    "start": ("start", "compute_start_instance"),
    "stop": ("stop", "compute_stop_instance"),
    "reboot": ("reboot", "compute_reboot_instance"),
    "pause": ("pause", "compute_pause_instance"),
    "unpause": ("unpause", "compute_unpause_instance"),
    "suspend": ("suspend", "compute_suspend_instance"),
    "resume": ("resume", "compute_resume_instance"),
    "resize": ("resize", "compute_resize_instance"),
    "confirm_resize": ("confirmResize", "compute_confirm_resize"),
    "revert_resize": ("revertResize", "compute_revert_resize"),
    "rebuild": ("rebuild", "compute_rebuild_instance"),
    "rescue": ("rescue", "compute_rescue_instance"),
    "unrescue": ("unrescue", "compute_unrescue_instance"),
    "snapshot": ("createImage", "compute_snapshot_instance"),
    "attach_volume": ("attach_volume", "compute_attach_volume"),
    "detach_volume": ("detach_volume", "compute_detach_volume"),
    "attach_interface": ("attach_interface", "compute_attach_interface"),
    "detach_interface": ("detach_interface", "compute_detach_interface"),
}


@dataclass
class ActionEvent:
    event: str
    start_time: float
    finish_time: float | None = None
    result: str | None = None  # "Success" | "Error" | None while running
    traceback: str | None = None
    details: str | None = None


@dataclass
class InstanceAction:
    id: str  # instance id + request id: one action per request per server
    instance_id: str
    action: str
    request_id: str
    user_id: str
    project_id: str
    start_time: float
    updated_at: float
    message: str | None = None
    events: list[ActionEvent] = field(default_factory=list)


class ActionLog:
    def __init__(self, store: Store) -> None:
        self.repo = Repository(store, "instance_actions", InstanceAction)
        #: instance id → its action ids: recording an action trims that server's list, and
        #: scanning every server's actions made each create cost more as servers were added
        self._by_instance = FieldIndex(store, self.repo.table, lambda d: d.get("instance_id"))

    def _of(self, instance_id: str) -> list[InstanceAction]:
        return [from_doc(InstanceAction, d) for d in self._by_instance.docs(instance_id)]

    def of_instance(self, instance_id: str) -> list[InstanceAction]:
        """Newest first, as Nova lists them."""
        items = self._of(instance_id)
        return sorted(items, key=lambda a: (a.start_time, a.id), reverse=True)

    def get(self, instance_id: str, request_id: str) -> InstanceAction | None:
        return self.repo.get(f"{instance_id}:{request_id}")

    def begin_ops(self, instance_id: str, project_id: str, action: str, *,
                  event: str | None = None) -> tuple[list[Any], str]:
        """The store ops recording `action` (a Nova action name) as the current request's, and
        dropping the instance's oldest beyond MAX_PER_INSTANCE, for the caller to commit with
        its own change; and the action's id. `event`: its first step, started now (a build
        starts the moment its record is stored: one commit fewer before the guest starts)."""
        req = current()
        now = time.time()
        record = InstanceAction(id=f"{instance_id}:{req.request_id}", instance_id=instance_id,
                                action=action, request_id=req.request_id,
                                user_id=req.user_id, project_id=project_id, start_time=now,
                                updated_at=now)
        if event is not None:
            record.events.append(ActionEvent(event=event, start_time=now))
        return [self.repo.put_op(record), *self._trim_ops(instance_id)], record.id

    async def event_started(self, action_id: str, event: str) -> None:
        """No-op when the event is already open (recorded with its action, or by an attempt
        a crash interrupted: the re-driven attempt finishes that one)."""
        action = self._get(action_id)
        if action is None or any(e.event == event and e.finish_time is None
                                 for e in action.events):
            return
        action.events.append(ActionEvent(event=event, start_time=time.time()))
        action.updated_at = time.time()
        await self.repo.store.commit([self.repo.put_op(action)])

    async def event_finished(self, action_id: str, event: str,
                             error: BaseException | None = None) -> None:
        action = self._get(action_id)
        if action is None:
            return
        now = time.time()
        ev = next((e for e in reversed(action.events)
                   if e.event == event and e.finish_time is None), None)
        if ev is None:
            ev = ActionEvent(event=event, start_time=now)
            action.events.append(ev)
        ev.finish_time, ev.result = now, "Error" if error else "Success"
        if error is not None:
            ev.details = str(error)[:1000] or type(error).__name__
            ev.traceback = "".join(traceback.format_exception(error))[-8000:]
            action.message = "Error"
        action.updated_at = now
        await self.repo.store.commit([self.repo.put_op(action)])

    def forget_ops(self, instance_id: str) -> list[Any]:
        return [self.repo.delete_op(a.id)
                for a in self._of(instance_id)]

    def _trim_ops(self, instance_id: str) -> list[Any]:
        items = sorted(self._of(instance_id), key=lambda a: (a.start_time, a.id))
        return [self.repo.delete_op(a.id) for a in items[:max(0, len(items) + 1
                                                            - MAX_PER_INSTANCE)]]

    def _get(self, action_id: str) -> InstanceAction | None:
        return self.repo.get(action_id) if action_id else None
