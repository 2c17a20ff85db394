"""The shared quota ledger: reservations hold under concurrency and end on every path."""
from __future__ import annotations

import asyncio

import pytest

from appliance.errors import Forbidden, QuotaExceeded
from appliance.quota import Quotas, QuotaSource


class Records:
    """A service's stored records, written after an await (as a real store commit is)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stored: list[int] = []

    def limits(self, project_id: str) -> dict[str, int]:
        return {"things": self.limit, "size": 100}

    def usage(self, project_id: str) -> dict[str, int]:
        return {"things": len(self.stored), "size": sum(self.stored)}


def ledger(limit: int = 10) -> tuple[Quotas, Records]:
    quotas, records = Quotas(), Records(limit)
    quotas.register(QuotaSource(("things", "size"), records.limits, records.usage))
    return quotas, records


async def test_parallel_creates_never_pass_the_limit() -> None:
    quotas, records = ledger(limit=10)

    async def create(size: int) -> None:
        async with quotas.reserve("p", {"things": 1, "size": size}):
            await asyncio.sleep(0.01)  # the store commit
            records.stored.append(size)

    results = await asyncio.gather(*(create(1) for _ in range(25)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(records.stored) == 10 and len(refused) == 15
    assert quotas.reserved("p", "things") == 0


async def test_a_failed_or_cancelled_work_gives_its_reservation_back() -> None:
    quotas, records = ledger(limit=2)
    with pytest.raises(RuntimeError):
        async with quotas.reserve("p", {"things": 2}):
            raise RuntimeError("disk full")
    assert quotas.reserved("p", "things") == 0

    started = asyncio.Event()

    async def slow() -> None:
        async with quotas.reserve("p", {"things": 2}):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(slow())
    await started.wait()
    with pytest.raises(QuotaExceeded):
        await quotas.reserve("p", {"things": 1})
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    held = await quotas.reserve("p", {"things": 2})
    assert quotas.reserved("p", "things") == 2
    held.release()
    held.release()  # idempotent
    assert quotas.reserved("p", "things") == 0


async def test_growth_is_checked_and_keeps_what_was_held() -> None:
    quotas, records = ledger()
    held = await quotas.reserve("p", {"size": 60})
    other = await quotas.reserve("p", {"size": 30})
    with pytest.raises(QuotaExceeded):
        await held.grow({"size": 11})
    assert quotas.reserved("p", "size") == 90
    await held.grow({"size": 10})
    assert await quotas.headroom("p", "size") == 0
    held.commit()
    other.commit()
    assert await quotas.headroom("p", "size") == 100


async def test_projects_are_counted_apart_and_unlimited_is_unlimited() -> None:
    quotas, records = ledger(limit=1)
    a = await quotas.reserve("a", {"things": 1})
    b = await quotas.reserve("b", {"things": 1})
    records.limit = -1
    more = [await quotas.reserve("a", {"things": 1000}) for _ in range(3)]
    for r in (a, b, *more):
        r.commit()
    # resources of no project (the service's own) are never limited
    records.limit = 0
    async with quotas.reserve(None, {"things": 5}):
        pass


async def test_the_owning_service_says_how_an_overrun_reads() -> None:
    quotas = Quotas()
    quotas.register(QuotaSource(("instances",), lambda p: {"instances": 0},
                                lambda p: {"instances": 0},
                                lambda name, asked, used, limit: Forbidden(
                                    f"Quota exceeded for {name}")))
    with pytest.raises(Forbidden, match="instances"):
        await quotas.reserve("p", {"instances": 1})
    with pytest.raises(ValueError):
        quotas.register(QuotaSource(("instances",), dict, dict))


async def test_a_store_write_and_its_commit_are_one_step_for_other_reservations() -> None:
    """While the record becomes visible, no reservation sees it and the held amount both
    (a create that fits would be refused) or neither (one that does not would pass)."""
    quotas, records = ledger(limit=2)
    first = await quotas.reserve("p", {"things": 1})
    visible = asyncio.Event()

    async def save() -> None:
        records.stored.append(1)  # the store applies the record ...
        visible.set()
        await asyncio.sleep(0.01)  # ... and its caller resumes later

    storing = asyncio.create_task(first.store(save()))
    await visible.wait()
    second = await quotas.reserve("p", {"things": 1})  # fits: 1 stored + this one
    await storing
    assert quotas.reserved("p", "things") == 1 and len(records.stored) == 1
    with pytest.raises(QuotaExceeded):
        await quotas.reserve("p", {"things": 1})
    second.release()

    async def fails() -> None:
        raise OSError("disk full")
    third = await quotas.reserve("p", {"things": 1})
    with pytest.raises(OSError):
        await third.store(fails())
    assert quotas.reserved("p", "things") == 0


async def test_store_writes_run_side_by_side_and_a_waiting_decision_goes_next() -> None:
    """Writes of one project overlap (their commits share an fsync); a decision waits for the
    writes in flight, and a write that comes while it waits goes after it."""
    quotas, records = ledger(limit=10)
    held = [await quotas.reserve("p", {"things": 1}) for _ in range(3)]
    in_flight, most, release = [0], [0], asyncio.Event()

    async def save() -> None:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        await release.wait()
        records.stored.append(1)
        in_flight[0] -= 1

    writes = [asyncio.create_task(h.store(save())) for h in held[:2]]
    for _ in range(5):
        await asyncio.sleep(0)
    assert most[0] == 2  # side by side, not one after another
    seen: list[int] = []

    async def decide():
        reservation = await quotas.reserve("p", {"things": 1})
        seen.append(len(records.stored))  # what was stored when it was decided
        return reservation

    deciding = asyncio.create_task(decide())
    await asyncio.sleep(0)
    late = asyncio.create_task(held[2].store(save()))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not deciding.done() and in_flight[0] == 2  # the decision waits; the late write too
    release.set()
    decided = await deciding
    assert seen == [2]  # decided after both writes, before the late one
    await late
    await asyncio.gather(*writes)
    assert len(records.stored) == 3 and quotas.reserved("p", "things") == 1
    decided.release()
