"""Instance records as the store holds them: the nested parts (claim, fault, ports, volume
attachments …) are typed records once decoded, and a document written by an installed
appliance before they were typed still loads, reopened from its state directory, and is
written back in a format that keeps every key it had, with the same value."""
from __future__ import annotations

import copy

from appliance.compute.records import (
    Fault,
    FlavorSnapshot,
    Instance,
    PowerState,
    TaskState,
    VmState,
    VolumeAttachment,
)
from appliance.compute.scheduler import Claim, NumaCellUse
from appliance.seams import PortBinding
from appliance.state import Put, Repository, Store, from_doc, to_doc

#: an instance as an installed appliance stored it (the format every nested record keeps):
#: a resize waiting for confirmation, pinned to two NUMA cells, after an earlier fault
OLD_DOC = {
    "id": "6f1c0d5e-8a57-4d43-9a53-2b1f0c7e9a10", "name": "web-1",
    "project_id": "p1", "user_id": "u1",
    "flavor": {"id": "2", "name": "m1.small", "vcpus": 2, "ram": 2048, "disk": 20,
               "ephemeral": 0, "swap": 0, "extra_specs": {"hw:numa_nodes": "2"}},
    "image_id": "img-1", "root_volume_id": None, "key_name": "k", "key_data": "ssh-ed25519 AAA",
    "vm_state": "resized", "task_state": None, "power_state": 1,
    "addresses": {"private": [{"version": 4, "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed",
                               "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]},
    "ports": [{"port_id": "port-1", "network_id": "net-1", "network_name": "private",
               "mac": "fa:16:3e:00:00:01", "tap_name": "tap1234", "mtu": 1450,
               "fixed_ips": ["10.0.0.5"], "precreated_tap": True}],
    "requested_networks": [{"uuid": "net-1"}],
    "fault": {"code": 500, "message": "resize was interrupted by a daemon restart",
              "details": "", "created": 1764990000.5},
    "metadata": {"role": "web"}, "tags": [], "config_drive": False, "user_data": None,
    "locked": False, "locked_reason": None, "host": "h", "availability_zone": "nova",
    "description": None, "access_ipv4": "", "access_ipv6": "",
    "security_groups": ["default"],
    "volume_attachments": [
        {"id": "root-1", "volume_id": "root-1", "device": "/dev/vda",
         "path": "/var/lib/monostack/volumes/root-1", "format": "raw", "boot": True,
         "delete_on_termination": True},
        {"id": "vol-1", "volume_id": "vol-1", "device": "/dev/vdb",
         "path": "/var/lib/monostack/volumes/vol-1", "format": "raw"}],
    "created_at": 1764980000.0, "updated_at": 1764990000.5, "launched_at": 1764980100.0,
    "terminated_at": None, "pinned_cpus": [0, 2],
    "claim": {"vcpus": 2, "ram_mb": 2048, "disk_gb": 20, "pcpus": [0, 2],
              "numa": [{"host_node": 0, "vcpus": [0], "memory_mb": 1024, "pcpus": [0]},
                       {"host_node": 1, "vcpus": [1], "memory_mb": 1024, "pcpus": [2]}]},
    "old_claim": {"vcpus": 1, "ram_mb": 512, "disk_gb": 1, "pcpus": [], "numa": []},
    "old_flavor": {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1,
                   "ephemeral": 0, "swap": 0, "extra_specs": {}},
    "resume_running": True, "server_group_id": None, "launch_index": 0,
    "reservation_id": "r-abc", "hostname": "web-1",
}


async def stored(tmp_path, doc):
    """The document committed to a store, the store closed and opened again from disk."""
    store = Store(tmp_path)
    await store.open()
    await store.commit([Put("instances", doc["id"], copy.deepcopy(doc))])
    await store.close()
    store = Store(tmp_path)
    await store.open()
    return store


async def test_an_old_format_instance_loads_with_typed_nested_records(tmp_path):
    store = await stored(tmp_path, OLD_DOC)
    inst = Repository(store, "instances", Instance).require(OLD_DOC["id"])

    assert (inst.vm_state, inst.task_state, inst.power_state) == (
        VmState.RESIZED, None, PowerState.RUNNING)
    assert inst.claim == Claim(vcpus=2, ram_mb=2048, disk_gb=20, pcpus=(0, 2), numa=(
        NumaCellUse(host_node=0, vcpus=(0,), memory_mb=1024, pcpus=(0,)),
        NumaCellUse(host_node=1, vcpus=(1,), memory_mb=1024, pcpus=(2,))))
    assert inst.old_claim == Claim(vcpus=1, ram_mb=512, disk_gb=1)
    assert inst.flavor == FlavorSnapshot(id="2", name="m1.small", vcpus=2, ram=2048, disk=20,
                                         extra_specs={"hw:numa_nodes": "2"})
    assert inst.old_flavor == FlavorSnapshot(id="1", name="m1.tiny", vcpus=1, ram=512, disk=1)
    assert inst.fault == Fault(code=500, message="resize was interrupted by a daemon restart",
                               details="", created=1764990000.5)
    assert inst.ports == [PortBinding(
        port_id="port-1", network_id="net-1", network_name="private", mac="fa:16:3e:00:00:01",
        tap_name="tap1234", mtu=1450, fixed_ips=["10.0.0.5"], precreated_tap=True)]
    root, data = inst.volume_attachments
    assert root == VolumeAttachment(id="root-1", volume_id="root-1", device="/dev/vda",
                                    path="/var/lib/monostack/volumes/root-1", boot=True,
                                    delete_on_termination=True)
    # keys an attach did not write take the defaults the code read them with before
    assert (data.target, data.boot, data.delete_on_termination) == ("vdb", False, False)
    await store.close()


def subset(old: object, new: object) -> bool:
    """Every key of `old` is in `new`, with the same value (nested alike)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and subset(v, new[k])
                                             for k, v in old.items())
    if isinstance(old, list):
        return isinstance(new, list) and len(old) == len(new) and all(
            subset(a, b) for a, b in zip(old, new))
    return old == new and type(old) is type(new)


async def test_a_loaded_instance_is_written_back_keeping_every_key_and_value(tmp_path):
    store = await stored(tmp_path, OLD_DOC)
    inst = Repository(store, "instances", Instance).require(OLD_DOC["id"])
    written = to_doc(inst)
    assert subset(OLD_DOC, written)
    assert set(written) == set(OLD_DOC)  # no top-level field appears or goes
    assert from_doc(Instance, written) == inst
    await store.close()


async def test_typed_parts_survive_a_save_and_reopen(tmp_path):
    store = Store(tmp_path)
    await store.open()
    repo = Repository(store, "instances", Instance)
    inst = Instance(id="i1", name="n", project_id="p", user_id="u",
                    flavor=FlavorSnapshot(id="1", name="t", vcpus=1, ram=64, disk=1),
                    task_state=TaskState.SPAWNING,
                    claim=Claim(vcpus=1, ram_mb=64, disk_gb=1, pcpus=(3,)),
                    fault=Fault(code=409, message="m", details="d", created=1.0))
    await repo.save(inst)
    await store.close()
    store = Store(tmp_path)
    await store.open()
    back = Repository(store, "instances", Instance).require("i1")
    assert back.claim == inst.claim and back.fault == inst.fault
    assert back.flavor == inst.flavor
    assert back.task_state is TaskState.SPAWNING and back.old_claim is None
    await store.close()


async def test_decodes_of_one_document_share_frozen_parts_and_a_save_gives_new_ones(tmp_path):
    """A listing decodes a stored flavor once; a change saved puts a new document, which
    is decoded anew (never a record of the document it replaced)."""
    store = await stored(tmp_path, OLD_DOC)
    repo = Repository(store, "instances", Instance)
    first, second = repo.require(OLD_DOC["id"]), repo.require(OLD_DOC["id"])
    assert first is not second and first.flavor is second.flavor
    assert first.ports is not second.ports  # lists stay each record's own

    bigger = FlavorSnapshot(id="3", name="m1.large", vcpus=4, ram=4096, disk=40)
    first.flavor = bigger
    await repo.save(first)
    again = repo.require(OLD_DOC["id"])
    assert again.flavor == bigger and again.flavor is not second.flavor
    assert second.flavor.name == "m1.small"  # a record already decoded is not changed
    await store.close()
