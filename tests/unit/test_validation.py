"""The one schema door: what it accepts, and that every refusal is a BadRequest naming the field."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api.schemas import compute, identity, image, network, types, volume
from appliance.api import validation as vs
from appliance.api.validation import compile_all, validate
from appliance.errors import BadRequest


def refused(schema: dict, body: object) -> str:
    with pytest.raises(BadRequest) as exc:
        validate(schema, body)
    return exc.value.message


def test_every_schema_is_a_valid_json_schema_and_compiled_ahead():
    """compile_all (run by the daemon once settled) checks every schema against the metaschema
    and leaves nothing for a request to compile on the event loop."""
    assert compile_all() > 100
    compiled = dict(vs._compiled)
    for module in (compute, identity, image, network, types, volume):
        for name in dir(module):
            value = getattr(module, name)
            if isinstance(value, dict) and name.isupper() and not name.startswith("_") \
                    and ("type" in value or "properties" in value):
                assert id(value) in compiled, f"{module.__name__}.{name} not compiled ahead"
    validate(compute.SERVER_CREATE, {"server": {"name": "a", "flavorRef": "1",
                                                "imageRef": "3f0e8ad2-7d6f-4b9a-9a8e-2b3f3f0e8ad2"}})
    assert vs._compiled == compiled


def test_wrapped_bodies_name_the_field_inside_the_wrapper():
    msg = refused(compute.SERVER_CREATE,
                  {"server": {"name": "a", "flavorRef": "1", "max_count": 0}})
    assert msg.startswith("Invalid input for field/attribute max_count. Value: 0.")
    assert "field/attribute flavorRef" in refused(compute.SERVER_CREATE, {"server": {"name": "a"}})
    assert "field/attribute bogus" in refused(
        compute.SERVER_CREATE, {"server": {"name": "a", "flavorRef": "1", "bogus": 1}})
    assert "field/attribute networks[1].fixed_ip" in refused(
        compute.SERVER_CREATE, {"server": {"name": "a", "flavorRef": "1", "networks": [
            {"uuid": "x"}, {"uuid": "x", "fixed_ip": "1.2.3"}]}})


def test_a_sibling_of_the_wrapper_keeps_its_own_name():
    msg = refused(compute.SERVER_CREATE, {"server": {"name": "a", "flavorRef": "1"},
                                          "os:scheduler_hints": {"group": ["a", "b"]}})
    assert "field/attribute os:scheduler_hints.group" in msg


@pytest.mark.parametrize("value", [64.5, 64.0, True, float("inf"), 10 ** 30, 0, [64]])
def test_integers_are_json_integers_in_range(value):
    assert "field/attribute ram" in refused(
        compute.FLAVOR_CREATE, {"flavor": {"name": "f", "ram": value, "vcpus": 1, "disk": 0}})


def test_digit_strings_only_where_upstream_takes_them():
    validate(compute.FLAVOR_CREATE, {"flavor": {"name": "f", "ram": "64", "vcpus": 1,
                                                "disk": 0}})
    assert "field/attribute mtu" in refused(network.NETWORK_CREATE,
                                            {"network": {"mtu": "1500"}})


@pytest.mark.parametrize("name", ["a\n", "a\x00b", "\x1b[2J", "a\x85", "x" * 256, ""])
def test_names_refuse_control_characters_trailing_newlines_and_length(name):
    assert "field/attribute name" in refused(compute.SERVER_CREATE,
                                             {"server": {"name": name, "flavorRef": "1"}})


def test_strict_booleans_in_neutron_nova_strings_where_nova_takes_them():
    assert "admin_state_up" in refused(network.NETWORK_CREATE,
                                       {"network": {"admin_state_up": "yes"}})
    validate(compute.SERVER_CREATE, {"server": {"name": "a", "flavorRef": "1",
                                                "config_drive": "true"}})
    assert types.nova_bool("True") and not types.nova_bool("no") and not types.nova_bool(None)


def test_public_keys_are_one_loadable_line():
    key = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdxh2BgqE7xMVm/eSg1nbkgF/nYbQFfbJ1wuS8lmE2n "
           "me@host")
    validate(compute.KEYPAIR_CREATE, {"keypair": {"name": "k", "public_key": key + "\n"}})
    for bad in (key + "\n" + key, "ssh-rsa AAAA", "not a key", key.replace("AAAAC3", "BBBBC3")):
        assert "field/attribute public_key" in refused(
            compute.KEYPAIR_CREATE, {"keypair": {"name": "k", "public_key": bad}})


def test_a_huge_value_is_not_echoed_back():
    msg = refused(network.NETWORK_CREATE, {"network": {"name": "x" * 100_000}})
    assert len(msg) < 400


def test_what_the_openstack_cli_sends_passes():
    validate(compute.SERVER_CREATE, {"server": {
        "name": "S", "imageRef": "6f6c1c52-7b5a-4a4e-9c3c-1a2b3c4d5e6f", "flavorRef": "1",
        "key_name": "K", "min_count": 1, "max_count": 1,
        "networks": [{"uuid": "6f6c1c52-7b5a-4a4e-9c3c-1a2b3c4d5e6f"}],
        "block_device_mapping_v2": [{"uuid": "6f6c1c52-7b5a-4a4e-9c3c-1a2b3c4d5e6f",
                                     "boot_index": 0, "source_type": "image",
                                     "destination_type": "local",
                                     "delete_on_termination": True}]}})
    validate(compute.FLAVOR_CREATE, {"flavor": {
        "name": "f1", "ram": 128, "vcpus": 1, "disk": 1, "swap": 0,
        "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": True, "id": None}})
    validate(volume.VOLUME_CREATE, {"volume": {
        "name": "V", "size": 1, "imageRef": None, "snapshot_id": None, "source_volid": None,
        "volume_type": None, "availability_zone": None, "description": None,
        "metadata": None, "backup_id": None, "consistencygroup_id": None}})
    validate(network.SECURITY_GROUP_RULE_CREATE, {"security_group_rule": {
        "security_group_id": "x", "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_ip_prefix": "0.0.0.0/0"}})
    validate(image.IMAGE_CREATE, {"name": "IMG", "disk_format": "qcow2",
                                  "container_format": "bare",
                                  "owner_specified.openstack.md5": "",
                                  "owner_specified.openstack.object": "images/IMG"})


@settings(max_examples=80, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=20))
def test_any_json_gets_an_answer_never_an_exception_other_than_bad_request(body):
    json.dumps(body)
    for schema in (compute.SERVER_CREATE, compute.SERVER_ACTION, network.PORT_CREATE,
                   volume.VOLUME_ACTION, image.IMAGE_PATCH, identity.USER_CREATE):
        try:
            validate(schema, body)
        except BadRequest as exc:
            assert exc.message.startswith(("Invalid input for field/attribute ",
                                           "Invalid request body."))
