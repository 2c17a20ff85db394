"""Users and projects found by name follow renames, deletions and domains (the name index the
store's watcher keeps)."""
from appliance.config import IdentityConfig
from appliance.identity import IdentityService
from appliance.state import Store


async def test_lookup_by_name_follows_renames_and_deletions(tmp_path):
    store = Store(tmp_path / "state")
    await store.open()
    ident = IdentityService(store, IdentityConfig())
    await ident.bootstrap("admin", "index-admin-pw")
    user = await ident.create_user("alice", "alice-password-1")
    project = await ident.create_project("lab")
    assert ident.user_by_name("alice").id == user.id
    assert ident.project_by_name("lab").id == project.id

    await ident.update_user(user.id, name="alicia")
    await ident.update_project(project.id, name="lab2")
    assert ident.user_by_name("alice") is None and ident.project_by_name("lab") is None
    assert ident.user_by_name("alicia").id == user.id
    assert ident.project_by_name("lab2").id == project.id
    assert ident.user_by_name("alicia", "some-other-domain") is None

    again = await ident.create_user("alice", "alice-password-2")  # the freed name is usable
    assert ident.user_by_name("alice").id == again.id
    await ident.delete_user(user.id)
    await ident.delete_project(project.id)
    assert ident.user_by_name("alicia") is None and ident.project_by_name("lab2") is None
    assert ident.user_by_name("admin") is not None
