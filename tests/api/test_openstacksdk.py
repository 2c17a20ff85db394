"""openstacksdk used directly, as scripts and tools do: one connection, every service."""
from __future__ import annotations

import pytest

from tests.api.network.conftest import needs_root
from tests.compute_support import make_tiny_qcow2
from tests.daemon import ADMIN_PASSWORD, DaemonProcess, run_init, write_config

openstack = pytest.importorskip("openstack")
pytestmark = needs_root


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    base = tmp_path_factory.mktemp("sdk")
    path, config = write_config(base)
    run_init(path)
    daemon = DaemonProcess(path, config)
    daemon.start()
    try:
        c = openstack.connect(auth_url=daemon.url + "/identity", username="admin",
                              password=ADMIN_PASSWORD, project_name="admin",
                              user_domain_name="Default", project_domain_name="Default",
                              region_name="RegionOne", identity_api_version="3")
        c.scratch = base
        yield c
        c.close()
    finally:
        daemon.stop()


def test_identity(conn):
    project = conn.identity.create_project(name="sdk-proj", domain_id="default")
    user = conn.identity.create_user(name="sdk-user", password="pw", default_project_id=project.id)
    member = conn.identity.find_role("member")
    conn.identity.assign_project_role_to_user(project, user, member)
    assert conn.identity.validate_user_has_project_role(project, user, member)
    assert "sdk-proj" in {p.name for p in conn.identity.projects()}
    assert {s.type for s in conn.identity.services()} >= {"identity", "compute", "network"}
    assert conn.identity.find_domain("Default").id == "default"
    conn.identity.delete_user(user)
    conn.identity.delete_project(project)


def test_image_volume_and_snapshot(conn):
    path = make_tiny_qcow2(conn.scratch / "sdk.qcow2")
    image = conn.create_image("sdk-image", filename=str(path), disk_format="qcow2",
                              container_format="bare", wait=True)
    assert conn.image.get_image(image.id).status == "active"
    vol = conn.block_storage.create_volume(name="sdk-vol", size=1)
    vol = conn.block_storage.wait_for_status(vol, "available", wait=120)
    snap = conn.block_storage.create_snapshot(volume_id=vol.id, name="sdk-snap")
    snap = conn.block_storage.wait_for_status(snap, "available", wait=120)
    assert snap.volume_id == vol.id
    conn.block_storage.delete_snapshot(snap)
    conn.block_storage.wait_for_delete(snap, wait=120)
    conn.block_storage.delete_volume(vol)
    conn.block_storage.wait_for_delete(vol, wait=120)
    conn.image.delete_image(image)


def test_network_server_and_floating_ip(conn):
    ext = conn.network.create_network(name="sdk-ext", is_router_external=True)
    conn.network.create_subnet(network_id=ext.id, cidr="198.51.100.0/24", ip_version=4,
                               is_dhcp_enabled=False)
    net = conn.network.create_network(name="sdk-net")
    subnet = conn.network.create_subnet(network_id=net.id, cidr="10.30.0.0/24", ip_version=4)
    router = conn.network.create_router(name="sdk-router",
                                        external_gateway_info={"network_id": ext.id})
    conn.network.add_interface_to_router(router, subnet_id=subnet.id)
    sg = conn.network.create_security_group(name="sdk-sg")
    conn.network.create_security_group_rule(security_group_id=sg.id, direction="ingress",
                                            protocol="tcp", port_range_min=22,
                                            port_range_max=22)
    path = make_tiny_qcow2(conn.scratch / "boot.qcow2")
    image = conn.create_image("sdk-boot", filename=str(path), disk_format="qcow2",
                              container_format="bare", wait=True)
    flavor = conn.compute.find_flavor("m1.tiny")
    server = conn.compute.create_server(name="sdk-vm", image_id=image.id, flavor_id=flavor.id,
                                        networks=[{"uuid": net.id}],
                                        security_groups=[{"name": "sdk-sg"}])
    server = conn.compute.wait_for_server(server, wait=120)
    assert server.status == "ACTIVE"
    port = next(conn.network.ports(device_id=server.id))
    fip = conn.network.create_ip(floating_network_id=ext.id, port_id=port.id)
    server = conn.compute.get_server(server.id)
    kinds = {a["OS-EXT-IPS:type"]: a["addr"] for a in server.addresses["sdk-net"]}
    assert kinds == {"fixed": port.fixed_ips[0]["ip_address"],
                     "floating": fip.floating_ip_address}
    assert [g["name"] for g in server.security_groups] == ["sdk-sg"]
    conn.compute.add_security_group_to_server(server, conn.network.find_security_group("default"))
    assert {g["name"] for g in conn.compute.get_server(server.id).security_groups} == {
        "sdk-sg", "default"}
    conn.network.delete_ip(fip)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120)
    conn.network.remove_interface_from_router(router, subnet_id=subnet.id)
    conn.network.delete_router(router)
    conn.network.delete_network(net)
    conn.network.delete_network(ext)


def test_object_store(conn):
    conn.object_store.create_container(name="sdk-c")
    conn.object_store.upload_object(container="sdk-c", name="a/b.txt", data=b"hello sdk")
    assert conn.object_store.download_object("a/b.txt",
                                             container="sdk-c") == b"hello sdk"
    assert [o.name for o in conn.object_store.objects("sdk-c")] == ["a/b.txt"]
    conn.object_store.delete_object("a/b.txt", container="sdk-c")
    conn.object_store.delete_container("sdk-c")
