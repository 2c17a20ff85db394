from pathlib import Path

import pytest

from storage.objects.names import object_hash
from storage.objects.ring import Device, Ring, default_replicas, quorum_size


def devs(n: int) -> list[Device]:
    return [Device(id=f"d{i}", path=Path(f"/srv/d{i}")) for i in range(n)]


def test_default_replicas_and_quorum():
    assert [default_replicas(n) for n in (1, 2, 3, 5)] == [1, 2, 3, 3]
    assert [quorum_size(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert Ring(devs(2)).replicas == 2
    with pytest.raises(ValueError):
        Ring(devs(2), 3)


def test_replicas_land_on_distinct_devices_and_are_stable():
    ring = Ring(devs(5), 3)
    again = Ring(list(reversed(devs(5))), 3)  # order of configuration does not matter
    for i in range(500):
        h = object_hash("AUTH_a", "c", f"obj{i}")
        prim = ring.primaries(h)
        assert len({d.id for d in prim}) == 3
        assert [d.id for d in again.primaries(h)] == [d.id for d in prim]


def test_placement_is_spread_over_devices():
    ring = Ring(devs(4), 3)
    counts = {d.id: 0 for d in ring.devices}
    for i in range(4000):
        for d in ring.primaries(object_hash("a", "c", str(i))):
            counts[d.id] += 1
    assert all(2700 < c < 3300 for c in counts.values()), counts  # 3000 expected each


def test_adding_a_device_moves_objects_only_onto_it():
    old, new = Ring(devs(4), 3), Ring(devs(5), 3)
    moved = 0
    for i in range(2000):
        h = object_hash("a", "c", str(i))
        a, b = {d.id for d in old.primaries(h)}, {d.id for d in new.primaries(h)}
        if a != b:
            moved += 1
            assert b - a == {"d4"} and len(a - b) == 1
    assert 0.5 < moved / 2000 < 0.7  # ≈ 3/5 of objects get one replica on the new device
