"""Snapshots of the cloud screens with real data from every component (see cloud_seed for what
the cloud holds): instances in several states, an instance's detail, images, volumes, each
networks tab with the DHCP leases, the object browser inside a pseudo-folder and a metadata
view — at 80×24 and 160×48, ids hidden, clock frozen."""
from __future__ import annotations

import pytest

from tests.tui.cloud_seed import network_possible, start_cloud, stop_cloud
from tests.tui.harness import ThreadDaemon, log_in, settle, wait_for_table

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]
needs_network = pytest.mark.skipif(not network_possible(),
                                   reason="the network component needs root, ip and nft")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    daemon = start_cloud(tmp_path_factory.mktemp("cloud"))
    try:
        yield daemon
    finally:
        stop_cloud(daemon)


def _app(daemon: ThreadDaemon, tmp_path):
    return daemon.make_app(tmp_path, live=False, refresh_seconds=3600)


def _goto(*keys: str, table: str | None = None):
    async def run_before(pilot) -> None:
        await log_in(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        if table:
            await wait_for_table(pilot, table)
    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_overview_with_a_cloud(snap_compare, cloud, tmp_path, size):
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size, run_before=_goto())


@pytest.mark.parametrize("size", SIZES)
def test_instances_in_several_states(snap_compare, cloud, tmp_path, size):
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("2", table="#servers"))


@pytest.mark.parametrize("size", SIZES)
def test_instances_filtered(snap_compare, cloud, tmp_path, size):
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("2", "slash", "w", "e", "b", table="#servers"))


@pytest.mark.parametrize("size", SIZES)
def test_instance_detail(snap_compare, cloud, tmp_path, size):
    # sorted by name: big-1, db-1, web-1, web-2 → web-1 is the third row
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("2", "down", "down", "enter"))


@pytest.mark.parametrize("size", SIZES)
def test_instance_detail_of_a_failed_build(snap_compare, cloud, tmp_path, size):
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("2", "enter"))


@pytest.mark.parametrize("size", SIZES)
def test_images(snap_compare, cloud, tmp_path, size):
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("3", table="#images"))


@pytest.mark.parametrize("size", SIZES)
def test_volumes(snap_compare, cloud, tmp_path, size):
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("4", table="#volumes"))


@pytest.mark.parametrize("size", SIZES)
def test_volume_snapshots(snap_compare, cloud, tmp_path, size):
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("4", "right_square_bracket", table="#snapshots"))


NETWORK_TABS = ["networks", "subnets", "ports", "security-groups", "security-group-rules",
                "routers", "floatingips", "leases"]


@needs_network
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("tab", ["networks", "subnets", "ports", "security-groups", "leases"])
def test_networks_tab(snap_compare, cloud, tmp_path, size, tab):
    presses = ["right_square_bracket"] * NETWORK_TABS.index(tab)
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("5", *presses, table=f"#t-{tab}"))


@pytest.mark.parametrize("size", SIZES)
def test_objects_containers(snap_compare, cloud, tmp_path, size):
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("6", table="#objects"))


@pytest.mark.parametrize("size", SIZES)
def test_objects_inside_a_pseudo_folder(snap_compare, cloud, tmp_path, size):
    # containers: backups, photos → photos; its listing: 2025/, readme.txt → into 2025/
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("6", "down", "enter", "enter", table="#objects"))


@pytest.mark.parametrize("size", SIZES)
def test_object_metadata(snap_compare, cloud, tmp_path, size):
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size,
                        run_before=_goto("6", "down", "enter", "down", "i"))


@pytest.mark.parametrize("size", SIZES)
def test_instances_long_actions_show_step_and_elapsed_time(snap_compare, cloud, tmp_path, size):
    """Two servers caught mid-action (fed to the screen like the daemon's answer would be):
    the Task column says which step of how many, the daemon's progress, and for how long
    (frozen clock)."""
    from dataclasses import replace

    async def run_before(pilot) -> None:
        await _goto("2", table="#servers")(pilot)
        screen = pilot.app.screen
        base = screen.servers[0]
        busy = [replace(base, id="b1", name="build-1", status="BUILD", task_state="spawning",
                        created="2026-01-01T11:58:55Z", addresses=[], progress=70),
                replace(base, id="b2", name="grow-1", status="RESIZE",
                        task_state="resize_migrating", progress=34)]
        screen.show(screen.servers + busy)
        await settle(pilot)
    assert snap_compare(_app(cloud, tmp_path), terminal_size=size, run_before=run_before)
