"""Long actions in the TUI: step of how many, elapsed time, and the failure reason."""
from __future__ import annotations

from tui.cloud import Server
from tui.tasks import TaskWatch, elapsed

T0 = 1767268800.0  # 2026-01-01T12:00:00Z


def _server(status="BUILD", task=None, fault="", sid="s1"):
    return Server(id=sid, name="web-1", status=status, task_state=task, power_state=0,
                  flavor="m1", image="img", addresses=[], networks=[], security_groups=[],
                  key_name=None, locked=False, fault=fault, host="",
                  created="2026-01-01T12:00:00Z", volumes=[])


def test_a_build_shows_its_step_and_time_since_creation():
    watch = TaskWatch()
    s = _server(task="spawning")
    assert watch.update([s], T0 + 65) == []
    assert watch.describe(s, T0 + 65) == "spawning 4/4 · 1m 05s"


def test_other_actions_count_from_when_first_seen():
    watch = TaskWatch()
    s = _server("RESIZE", "resize_migrating")
    watch.update([s], T0 + 100)
    assert watch.describe(s, T0 + 130) == "resize_migrating 2/4 · 30s"
    idle = _server("ACTIVE")
    watch.update([idle], T0 + 140)
    assert watch.describe(idle, T0 + 140) == "" and not watch.running


def test_a_failed_action_reports_the_fault_once():
    watch = TaskWatch()
    watch.update([_server("ACTIVE", "rebuilding")], T0)
    failed = watch.update([_server("ERROR", fault="NoValidHost: no room")], T0 + 5)
    assert [(f.action, f.reason) for f in failed] == [("rebuild", "NoValidHost: no room")]
    assert watch.update([_server("ERROR", fault="NoValidHost: no room")], T0 + 9) == []


def test_servers_already_in_error_at_first_look_are_not_news_but_new_ones_are():
    watch = TaskWatch()
    assert watch.update([_server("ERROR", fault="old")], T0) == []
    born_bad = _server("ERROR", fault="NoValidHost", sid="s2")
    failed = watch.update([_server("ERROR", fault="old"), born_bad], T0 + 1)
    assert [(f.server.id, f.action) for f in failed] == [("s2", "build")]


def test_elapsed_reads_short():
    assert (elapsed(-3), elapsed(59), elapsed(61), elapsed(3725)) == ("0s", "59s", "1m 01s",
                                                                      "1h 02m")


def test_the_daemons_progress_shows_as_a_percentage_when_it_knows_one():
    from dataclasses import replace
    watch = TaskWatch()
    s = replace(_server(task="spawning"), progress=70)
    watch.update([s], T0 + 65)
    assert watch.describe(s, T0 + 65) == "spawning 4/4 · 70% · 1m 05s"
    unknown = _server("ACTIVE", "rebooting")  # 0: the daemon does not say
    watch.update([unknown], T0 + 65)
    assert "%" not in watch.describe(unknown, T0 + 70)


def test_a_server_body_progress_is_read_as_a_bounded_integer():
    body = {"id": "s1", "status": "BUILD", "progress": 42}
    assert Server.from_api(body).progress == 42
    assert Server.from_api({**body, "progress": None}).progress == 0
    assert Server.from_api({**body, "progress": "junk"}).progress == 0
    assert Server.from_api({**body, "progress": 250}).progress == 100
