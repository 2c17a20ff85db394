"""Listings (prefix, delimiter, marker, end_marker, reverse, limit) against a brute-force
reference, on the real sqlite index, and pagination over 20,000 names."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.objects import ObjectEngine, Subdir, aiter_bytes
from storage.objects.index import ObjectIndex, ObjectRow, list_range, prefix_successor


def reference(names, prefix="", delimiter="", marker="", end_marker="", limit=10_000, reverse=False):
    """Swift's listing semantics, the slow obvious way."""
    ns = sorted(set(names), key=lambda s: s.encode(), reverse=reverse)
    ns = [n for n in ns if n.startswith(prefix)]
    if marker:
        ns = [n for n in ns if (n < marker if reverse else n > marker)]
    if end_marker:
        ns = [n for n in ns if (n > end_marker if reverse else n < end_marker)]
    out: list[str] = []
    for n in ns:
        if delimiter:
            i = n.find(delimiter, len(prefix))
            if i >= 0:
                sub = n[: i + len(delimiter)]
                if out and out[-1] == ("D", sub):
                    continue
                if sub != marker:
                    out.append(("D", sub))
                else:
                    out.append(("skip", sub))
                continue
        out.append(("N", n))
    return [x for x in out if x[0] != "skip"][:limit]


def shape(entries):
    return [("D", e.subdir) if isinstance(e, Subdir) else ("N", e.name) for e in entries]


ALPHA = st.sampled_from(["a", "b", "/", "-", "é", "\U0001f600"])
NAME = st.text(alphabet=ALPHA, min_size=1, max_size=5)
QUERY = st.fixed_dictionaries({
    "prefix": st.one_of(st.just(""), st.text(alphabet=ALPHA, max_size=2)),
    "delimiter": st.sampled_from(["", "/", "-", "a/", "é"]),
    "marker": st.one_of(st.just(""), st.text(alphabet=ALPHA, max_size=3)),
    "end_marker": st.one_of(st.just(""), st.text(alphabet=ALPHA, max_size=3)),
    "limit": st.integers(min_value=0, max_value=8),
    "reverse": st.booleans(),
})


def python_fetch(names):
    ordered = sorted(set(names))

    def fetch(lo, hi, reverse, n):
        rows = [x for x in ordered
                if (lo is None or (x >= lo[0] if lo[1] else x > lo[0]))
                and (hi is None or (x <= hi[0] if hi[1] else x < hi[0]))]
        if reverse:
            rows.reverse()
        return [(x,) for x in rows[:n]]

    return fetch


class Name:
    def __init__(self, name):
        self.name = name


@settings(max_examples=400, deadline=None)
@given(names=st.lists(NAME, max_size=25), q=QUERY)
def test_list_range_matches_reference(names, q):
    got = list_range(python_fetch(names), lambda r: Name(r[0]), **q)
    assert shape(got) == reference(names, **q)


@settings(max_examples=40, deadline=None)
@given(names=st.lists(NAME, max_size=25), queries=st.lists(QUERY, min_size=1, max_size=10))
def test_sqlite_listing_matches_reference(names, queries):
    async def run():
        with tempfile.TemporaryDirectory() as d:
            idx = await ObjectIndex.open(Path(d) / "i.sqlite")
            try:
                await idx.put_container("A", "c", {}, 1.0)
                for i, n in enumerate(set(names)):
                    await idx.commit_object(ObjectRow("A", "c", n, 1, "e", "t", f"{i + 1:016.5f}", 1.0))
                await idx.put_container("A", "other", {}, 1.0)  # rows of other containers stay out
                await idx.commit_object(ObjectRow("A", "other", "a", 1, "e", "t", "1", 1.0))
                for q in queries:
                    assert shape(await idx.list_objects("A", "c", **q)) == reference(names, **q), q
            finally:
                await idx.close()

    asyncio.run(run())


def test_prefix_successor():
    assert prefix_successor("ab") == "ac"
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("\U0010ffff") is None
    assert prefix_successor("\ud7ff") == "\ue000"


async def test_container_listing_with_delimiter(engine):
    for c in ["logs-2024", "logs-2025", "media", "backup"]:
        await engine.create_container("AUTH_p", c)
    got = await engine.list_containers("AUTH_p", delimiter="-")
    assert shape(got) == [("N", "backup"), ("N", "c"), ("D", "logs-"), ("N", "media")]
    got = await engine.list_containers("AUTH_p", prefix="logs-", marker="logs-2024")
    assert [e.name for e in got] == ["logs-2025"]


async def test_pagination_over_20000_names(engine):
    names = [f"dir{i % 7}/sub{i % 13}/obj{i:05d}" for i in range(20_000)] + [f"top{i}" for i in range(50)]
    # bulk load through the index (the engine path is exercised elsewhere; here: listing)
    rows = [ObjectRow("AUTH_p", "c", n, 3, "etag", "text/plain", f"{i + 1:016.5f}", 1.0)
            for i, n in enumerate(names)]
    await engine.index.replace_all(rows, 1.0)
    await engine.put_object("AUTH_p", "c", "dir0/real", aiter_bytes(b"abc"))
    names.append("dir0/real")
    ref = sorted(names)

    # plain pagination with marker, like `swift list`
    got, marker = [], ""
    while True:
        page = await engine.list_objects("AUTH_p", "c", marker=marker, limit=1000)
        if not page:
            break
        got += [e.name for e in page]
        marker = page[-1].name
    assert got == ref

    # prefix + delimiter pagination: subdirs and objects, marker = last name or subdir
    got, marker = [], ""
    while True:
        page = await engine.list_objects("AUTH_p", "c", prefix="dir3/", delimiter="/", marker=marker, limit=5)
        if not page:
            break
        got += shape(page)
        marker = page[-1].name
    assert got == reference(names, prefix="dir3/", delimiter="/")
    assert got == [("D", f"dir3/sub{j}/") for j in sorted(range(13), key=str)]

    top = await engine.list_objects("AUTH_p", "c", delimiter="/")
    assert shape(top) == reference(names, delimiter="/")
    rev = await engine.list_objects("AUTH_p", "c", prefix="dir5/sub2/", reverse=True, limit=100,
                                    end_marker="dir5/sub2/obj10000")
    assert len(rev) == 100
    assert [e.name for e in rev] == [n for _, n in reference(names, prefix="dir5/sub2/", reverse=True,
                                                              limit=100, end_marker="dir5/sub2/obj10000")]

    # a delimiter listing does not read the children of each subdir
    t0 = time.perf_counter()
    await engine.list_objects("AUTH_p", "c", delimiter="/")
    assert time.perf_counter() - t0 < 0.2
    c = await engine.get_container("AUTH_p", "c")
    assert c.object_count == len(names)
