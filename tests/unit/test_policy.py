import pytest

from appliance.errors import Forbidden
from appliance.identity.policy import AuthContext, allowed, enforce


def ctx(*roles, project="p1", user="u1"):
    return AuthContext(user, "name", project, "proj", frozenset(roles), "tok")


def test_admin_only_rules_refuse_members_and_readers():
    assert allowed(ctx("admin"), "identity:list_users")
    assert not allowed(ctx("member"), "identity:list_users")
    with pytest.raises(Forbidden):
        enforce(ctx("reader"), "identity:create_project")


def test_reader_reads_but_does_not_write_in_own_project():
    assert allowed(ctx("reader"), "compute:list_servers", target_project_id="p1")
    assert not allowed(ctx("reader"), "compute:create_server", target_project_id="p1")
    assert allowed(ctx("member"), "compute:create_server", target_project_id="p1")


def test_other_projects_are_refused_to_non_admins():
    assert not allowed(ctx("member"), "compute:get_server", target_project_id="p2")
    assert allowed(ctx("admin"), "compute:get_server", target_project_id="p2")


def test_own_user_record_is_readable():
    assert allowed(ctx("reader"), "identity:get_user", target_user_id="u1")
    assert not allowed(ctx("reader"), "identity:get_user", target_user_id="u2")


def test_a_network_is_visible_to_its_project_admins_and_all_when_shared_or_external():
    from appliance.identity.policy import network_visible
    from appliance.network.records import Network

    private = Network(id="n1", name="n", project_id="p1")
    assert network_visible(private, "p1", False)
    assert not network_visible(private, "p2", False)
    assert not network_visible(private, None, False)
    assert network_visible(private, "p2", True)
    assert network_visible(Network(id="n2", name="s", project_id="p1", shared=True), "p2", False)
    assert network_visible(Network(id="n3", name="e", project_id="p1", external=True), "p2",
                           False)
