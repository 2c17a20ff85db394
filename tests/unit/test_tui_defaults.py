"""The New-instance form's default network: the project's one internal network, never an
external one (as Horizon does)."""
from __future__ import annotations

from tui.screens.instances import default_network

EXT = {"id": "ext", "router:external": True, "shared": True, "project_id": "admin"}
MINE = {"id": "mine", "router:external": False, "shared": False, "project_id": "p1"}
OTHER = {"id": "other", "router:external": False, "shared": False, "project_id": "p1"}
SHARED = {"id": "shared", "router:external": False, "shared": True, "project_id": "admin"}


def test_the_projects_one_internal_network_is_the_default():
    assert default_network([EXT, MINE, SHARED], "p1") == "mine"


def test_an_external_network_is_never_the_default():
    assert default_network([EXT], "p1") is None
    assert default_network([dict(EXT, project_id="p1")], "p1") is None


def test_the_one_shared_internal_network_when_the_project_has_none():
    assert default_network([EXT, SHARED], "p1") == "shared"


def test_no_default_when_the_choice_is_not_obvious():
    assert default_network([MINE, OTHER, SHARED], "p1") is None
    assert default_network([EXT, SHARED, dict(SHARED, id="shared2")], "p1") is None


def test_the_footer_hint_names_exactly_the_screen_keys_given():
    from tui.app import key_ranges
    assert key_ranges(list("123456789")) == "1…9"
    assert key_ranges(list("1234568")) == "1…6,8"
    assert key_ranges(list("12")) == "1,2"
    assert key_ranges(["1"]) == "1"
