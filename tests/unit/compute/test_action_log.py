"""The instance action log: a build's step is recorded with the action in the create's own
commit (no commit of its own before the guest starts), and a step is never opened twice, so
a build re-driven after a crash finishes the event its first attempt opened."""
from __future__ import annotations

from appliance.compute.actions import ActionLog
from appliance.state import Store

BUILD = "compute__do_build_and_run_instance"


async def _log(tmp_path) -> tuple[Store, ActionLog]:
    store = Store(tmp_path)
    await store.open()
    return store, ActionLog(store)


async def test_a_step_begun_with_its_action_takes_no_commit_of_its_own(tmp_path):
    store, log = await _log(tmp_path)
    try:
        ops, action_id = log.begin_ops("i1", "p1", "create", event=BUILD)
        await store.commit(ops)
        (event,) = log.get("i1", action_id.split(":", 1)[1]).events
        assert event.event == BUILD and event.finish_time is None and event.start_time > 0
        size = store.journal_size
        await log.event_started(action_id, BUILD)  # the task starting: already open
        assert store.journal_size == size
        await log.event_finished(action_id, BUILD)
        (event,) = log.get("i1", action_id.split(":", 1)[1]).events
        assert event.result == "Success" and event.finish_time >= event.start_time
    finally:
        await store.close()


async def test_a_step_is_opened_once_and_a_redriven_attempt_finishes_it(tmp_path):
    store, log = await _log(tmp_path)
    try:
        ops, action_id = log.begin_ops("i1", "p1", "stop")
        await store.commit(ops)
        request_id = action_id.split(":", 1)[1]
        assert log.get("i1", request_id).events == []
        await log.event_started(action_id, "compute_stop_instance")
        first = log.get("i1", request_id).events[0].start_time
        # a crash, then the task run again: the open step is not opened a second time
        await log.event_started(action_id, "compute_stop_instance")
        await log.event_finished(action_id, "compute_stop_instance")
        (event,) = log.get("i1", request_id).events
        assert event.start_time == first and event.result == "Success"
        # a later run of the same step (the first one finished) is a new event
        await log.event_started(action_id, "compute_stop_instance")
        assert len(log.get("i1", request_id).events) == 2
    finally:
        await store.close()
