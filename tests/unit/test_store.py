import json
import os
from dataclasses import dataclass, field
from enum import StrEnum

import pytest

from appliance.errors import NotFound
from appliance.state import Put, Query, Repository, Store
from appliance.state import store as store_mod


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Widget:
    id: str
    name: str
    colour: Colour = Colour.RED
    tags: list[str] = field(default_factory=list)


async def open_store(path, **kw) -> Store:
    s = Store(path, **kw)
    await s.open()
    return s


async def test_records_round_trip_typed_and_survive_reopen(tmp_path):
    s = await open_store(tmp_path)
    repo = Repository(s, "widgets", Widget)
    await repo.save(Widget("a", "first", Colour.BLUE, ["x"]))
    await repo.save(Widget("b", "second"))
    await repo.delete("b")
    await s.close()

    s2 = await open_store(tmp_path)
    repo2 = Repository(s2, "widgets", Widget)
    got = repo2.require("a")
    assert got == Widget("a", "first", Colour.BLUE, ["x"])
    assert isinstance(got.colour, Colour)
    assert repo2.get("b") is None
    with pytest.raises(NotFound):
        repo2.require("b")
    assert [d["name"] for d in s2.search("widgets", Query().colour == "blue")] == ["first"]
    await s2.close()


async def test_torn_journal_tail_is_cut_and_earlier_writes_kept(tmp_path):
    s = await open_store(tmp_path)
    for i in range(5):
        await s.put("t", str(i), {"n": i})
    journal = s._journal_path
    await s.close()
    with open(journal, "ab") as f:  # a crash mid-append: half a line, no newline
        f.write(b"deadbeef {\"seq\": 99, \"ops\": [[\"put\", \"t\", \"x\"")
    s2 = await open_store(tmp_path)
    assert sorted(s2.ids("t")) == ["0", "1", "2", "3", "4"]
    assert s2.get("t", "x") is None
    await s2.put("t", "5", {"n": 5})
    await s2.close()
    s3 = await open_store(tmp_path)
    assert s3.count("t") == 6
    await s3.close()


async def test_corrupt_line_with_bad_crc_is_not_replayed(tmp_path):
    s = await open_store(tmp_path)
    await s.put("t", "a", {"v": 1})
    journal = s._journal_path
    await s.close()
    body = json.dumps({"seq": 1000, "ops": [["put", "t", "evil", {"v": 2}]]}).encode()
    with open(journal, "ab") as f:
        f.write(b"00000000 " + body + b"\n")
    s2 = await open_store(tmp_path)
    assert s2.get("t", "evil") is None and s2.get("t", "a") == {"v": 1}
    await s2.close()


async def test_compaction_folds_journal_and_keeps_everything(tmp_path):
    s = await open_store(tmp_path, compact_min_bytes=2048)
    for i in range(300):
        await s.put("t", f"k{i}", {"i": i, "pad": "x" * 20})
    for i in range(0, 300, 3):
        await s.delete("t", f"k{i}")
    if s._compactor:
        await s._compactor
    segments = list(tmp_path.glob("journal.*"))
    assert len(segments) == 1, "old journal segments are removed after a snapshot"
    snapshot = os.path.getsize(tmp_path / "snapshot.json")
    assert os.path.getsize(segments[0]) < max(2048, 2 * snapshot) + 200
    await s.close()
    s2 = await open_store(tmp_path)
    assert s2.count("t") == 200
    assert s2.get("t", "k299") == {"i": 299, "pad": "x" * 20}
    await s2.close()


async def test_failed_append_changes_nothing(tmp_path, monkeypatch):
    s = await open_store(tmp_path)
    await s.put("t", "a", {"v": 1})

    def boom(data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(s, "_append_sync", boom)
    from appliance.errors import InsufficientStorage
    with pytest.raises(InsufficientStorage):
        await s.put("t", "b", {"v": 2})
    assert s.get("t", "b") is None
    monkeypatch.undo()
    await s.put("t", "c", {"v": 3})
    await s.close()
    s2 = await open_store(tmp_path)
    assert sorted(s2.ids("t")) == ["a", "c"]
    await s2.close()


async def test_disk_full_mid_line_leaves_no_trace_for_the_next_commit(tmp_path, monkeypatch):
    """The real append path, with the disk filling half-way through a line: the refused write
    must not reappear on reopen, and the next (acknowledged) write must."""
    s = await open_store(tmp_path)
    await s.put("t", "a", {"v": 1})
    real_write = os.write
    calls = {"n": 0}

    def half_then_full(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod.os, "write", half_then_full)
    from appliance.errors import InsufficientStorage
    with pytest.raises(InsufficientStorage):
        await s.put("t", "refused", {"v": 2})
    monkeypatch.undo()
    await s.put("t", "after", {"v": 3})
    await s.close()
    s2 = await open_store(tmp_path)
    assert sorted(s2.ids("t")) == ["a", "after"]
    await s2.close()


async def test_multi_op_commit_is_one_transaction(tmp_path):
    s = await open_store(tmp_path)
    await s.commit([Put("a", "1", {"x": 1}), Put("b", "1", {"y": 1})])
    journal = s._journal_path
    await s.close()
    lines = journal.read_bytes().splitlines()
    assert len(lines) == 0 or all(b'"a"' in l and b'"b"' in l for l in lines)
    s2 = await open_store(tmp_path)
    assert s2.get("a", "1") and s2.get("b", "1")
    await s2.close()


async def test_schema_migration_hook_runs_once(tmp_path, monkeypatch):
    s = await open_store(tmp_path)
    await s.put("t", "a", {"old": 1})
    await s.close()
    calls = []

    def migrate(tables):
        calls.append(1)
        for doc in tables.get("t", {}).values():
            doc["new"] = doc.pop("old")

    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(store_mod.MIGRATIONS, 1, migrate)
    s2 = await open_store(tmp_path)
    assert s2.get("t", "a") == {"new": 1} and s2.schema_version == 2
    await s2.close()
    s3 = await open_store(tmp_path)
    assert calls == [1] and s3.get("t", "a") == {"new": 1}
    await s3.close()


async def test_concurrent_commits_share_fsyncs_and_all_land(tmp_path):
    import asyncio
    s = await open_store(tmp_path)
    await asyncio.gather(*(s.put("t", str(i), {"i": i}) for i in range(200)))
    assert s.count("t") == 200
    await s.close()
    s2 = await open_store(tmp_path)
    assert s2.count("t") == 200
    await s2.close()


async def test_watchers_see_every_applied_change_with_old_and_new_documents(tmp_path):
    from appliance.state import Delete, Put, Store
    store = Store(tmp_path)
    await store.open()
    seen = []
    store.watch("t", lambda id, old, new: seen.append((id, old, new)))
    await store.commit([Put("t", "a", {"v": 1}), Put("other", "x", {"v": 0})])
    await store.commit([Put("t", "a", {"v": 2})])
    await store.commit([Delete("t", "a"), Delete("t", "never")])
    assert seen == [("a", None, {"v": 1}), ("a", {"v": 1}, {"v": 2}), ("a", {"v": 2}, None),
                    ("never", None, None)]
    await store.close()


async def test_replayed_journal_is_folded_after_open_and_a_crash_meanwhile_loses_nothing(
        tmp_path, monkeypatch):
    """open() answers before the replayed journal is folded into a new snapshot (the daemon's
    start waits for no multi-MB snapshot write); until the fold is durable the old snapshot and
    segments stay, so a crash in between replays them again."""
    s = await open_store(tmp_path)
    for i in range(20):
        await s.put("t", str(i), {"n": i})
    await s.close()
    before = sorted(p.name for p in tmp_path.glob("journal.*"))

    real_write = Store._write_snapshot_sync

    def crash(self, tables, seq):  # the process dies while folding
        raise OSError("killed mid-fold")

    monkeypatch.setattr(Store, "_write_snapshot_sync", crash)
    s2 = await open_store(tmp_path)
    assert s2.count("t") == 20  # readable at once
    await s2.put("t", "new", {"n": 99})  # and writable: appended to a fresh segment
    await s2.close()
    after = sorted(p.name for p in tmp_path.glob("journal.*"))
    assert set(before) < set(after)  # nothing dropped without a snapshot holding it

    monkeypatch.setattr(Store, "_write_snapshot_sync", real_write)
    s3 = await open_store(tmp_path)
    assert s3.count("t") == 21 and s3.get("t", "new") == {"n": 99}
    await s3.close()  # close waits for the fold
    assert len(list(tmp_path.glob("journal.*"))) == 1
    snapshot = json.loads((tmp_path / "snapshot.json").read_bytes())
    assert len(snapshot["tables"]["t"]) == 21


async def test_reopen_with_nothing_to_replay_keeps_the_snapshot(tmp_path):
    s = await open_store(tmp_path)
    await s.put("t", "a", {"n": 1})
    await s.close()
    s = await open_store(tmp_path)  # folds the one record
    await s.close()
    stat = (tmp_path / "snapshot.json").stat()
    s = await open_store(tmp_path)  # nothing new: no multi-MB rewrite on every start
    assert s.get("t", "a") == {"n": 1}
    await s.close()
    assert (tmp_path / "snapshot.json").stat().st_ino == stat.st_ino
    assert len(list(tmp_path.glob("journal.*"))) == 1


async def test_a_commit_stores_the_document_as_it_was_when_committed(tmp_path):
    """Ops are encoded once at commit: what a caller does to its dict afterwards (while the
    group waits for its fsync) changes neither the journal nor the visible copy, readers get
    a copy of their own, and key order and odd values come back the same after replay."""
    import asyncio

    s = await open_store(tmp_path)
    doc = {"z": 1, "a": {"ü": "ünïcode", "list": [1, 2.5, None, True]}, "m": "line\nbreak"}
    expected = json.loads(json.dumps(doc))
    first = asyncio.ensure_future(s.put("t", "x", doc))
    await asyncio.sleep(0)  # commit() has run: the op is queued for the flush
    doc["z"] = 2
    doc["a"]["list"].append("late")
    await first
    await s.put("t", "gone", {"n": 1})
    await s.delete("t", "gone")
    got = s.get("t", "x")
    assert got == expected and list(got) == ["z", "a", "m"]
    with pytest.raises(TypeError):
        await s.put("t", "bad", {"x": object()})
    assert s.get("t", "bad") is None
    await s.close()

    s2 = await open_store(tmp_path)
    again = s2.get("t", "x")
    assert again == expected and list(again) == ["z", "a", "m"]
    assert s2.get("t", "gone") is None
    await s2.close()
