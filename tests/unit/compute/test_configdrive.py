"""The config drive is a config-2 ISO cloud-init can read, with Nova's layout."""
import io
import json
import os

import pycdlib

from appliance.compute.configdrive import (
    VERSIONS, ConfigDriveContent, build_config_drive, write_config_drive,
)

CONTENT = ConfigDriveContent(
    uuid="0b5b6f2e-8f7a-4c1e-9a53-0d1f2a3b4c5d", name="web <1> & \"db\"", hostname="web-1",
    project_id="p1", availability_zone="nova", launch_index=0,
    public_keys={"mykey": "ssh-ed25519 AAAAC3Nza me@host"}, meta={"role": "web"},
    user_data=b"#cloud-config\nhostname: web-1\n\x00binary\xff",
    network_data={"links": [{"id": "tap1", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"}],
                  "networks": [], "services": []})


def read_back(data: bytes, path: str, facade: str = "rr") -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        out = io.BytesIO()
        kw = {"rr_path": path} if facade == "rr" else {"joliet_path": path}
        iso.get_file_from_iso_fp(out, **kw)
        return out.getvalue()
    finally:
        iso.close()


def test_volume_label_is_config_2():
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(build_config_drive(CONTENT)))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "config-2"
        assert iso.has_rock_ridge() and iso.has_joliet()
    finally:
        iso.close()


def test_meta_data_user_data_and_network_data_read_back_under_long_names():
    data = build_config_drive(CONTENT)
    md = json.loads(read_back(data, "/openstack/latest/meta_data.json"))
    assert md["uuid"] == CONTENT.uuid
    assert md["name"] == CONTENT.name
    assert md["hostname"] == "web-1"
    assert md["public_keys"] == {"mykey": "ssh-ed25519 AAAAC3Nza me@host"}
    assert md["keys"] == [{"name": "mykey", "type": "ssh", "data": "ssh-ed25519 AAAAC3Nza me@host"}]
    assert md["launch_index"] == 0 and md["availability_zone"] == "nova"
    assert md["project_id"] == "p1" and md["meta"] == {"role": "web"}
    assert read_back(data, "/openstack/latest/user_data") == CONTENT.user_data
    assert json.loads(read_back(data, "/openstack/latest/network_data.json")) == CONTENT.network_data
    assert read_back(data, "/openstack/latest/meta_data.json", "joliet") == \
        read_back(data, "/openstack/latest/meta_data.json")


def test_dated_versions_like_nova():
    data = build_config_drive(CONTENT)
    for v in VERSIONS:
        assert json.loads(read_back(data, f"/openstack/{v}/meta_data.json"))["uuid"] == CONTENT.uuid
    assert json.loads(read_back(data, "/openstack/2015-10-15/network_data.json")) == CONTENT.network_data


def test_no_user_data_file_without_user_data():
    content = ConfigDriveContent(uuid="u", name="n", hostname="n", project_id="p")
    data = build_config_drive(content)
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        names = [c.rock_ridge.name().decode() for c in iso.list_children(rr_path="/openstack/latest")
                 if c.rock_ridge is not None]
    finally:
        iso.close()
    assert "user_data" not in names and "meta_data.json" in names


async def test_write_is_atomic_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "disk.config"
    target.write_bytes(b"old")
    size = await write_config_drive(CONTENT, str(target))
    assert size == target.stat().st_size
    assert os.listdir(tmp_path) == ["disk.config"]
    assert json.loads(read_back(target.read_bytes(), "/openstack/latest/meta_data.json"))["name"] == CONTENT.name
    assert oct(target.stat().st_mode & 0o777) == "0o644"
