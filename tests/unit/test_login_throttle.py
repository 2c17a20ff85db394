"""Login throttling per (user, source) and the per-key login locks."""
import asyncio

from appliance.identity.throttle import KeyedLocks, LoginThrottle


def test_failures_lock_only_the_failing_source_until_the_lock_expires():
    t = LoginThrottle(3, 60)
    for _ in range(3):
        assert not t.locked("u", "10.0.0.1", 100)
        t.failed("u", "10.0.0.1", 100)
    assert t.locked("u", "10.0.0.1", 100)
    assert not t.locked("u", "10.0.0.2", 100) and not t.locked("u", "local", 100)
    assert not t.locked("u", "10.0.0.1", 161)


def test_old_failures_stop_counting_and_success_or_new_password_clears():
    t = LoginThrottle(3, 60)
    t.failed("u", "s", 0)
    t.failed("u", "s", 1)
    t.failed("u", "s", 100)  # the first two are older than the window
    assert not t.locked("u", "s", 100)
    t.failed("u", "s", 101)
    t.succeeded("u", "s")
    t.failed("u", "s", 102)
    assert not t.locked("u", "s", 102)
    for _ in range(3):
        t.failed("u", "a", 200)
        t.failed("u", "b", 200)
    t.forget_user("u")
    assert not t.locked("u", "a", 200) and not t.locked("u", "b", 200)


def test_the_table_is_bounded_dropping_the_longest_idle():
    t = LoginThrottle(1, 60, max_entries=100)
    t.failed("admin", "10.0.0.1", 0)
    for i in range(1000):
        t.failed(f"user{i}", "10.9.9.9", 1)
    assert len(t._table) == 100 and not t.locked("admin", "10.0.0.1", 2)


def test_zero_failures_disables_the_throttle():
    t = LoginThrottle(0, 60)
    for _ in range(10):
        t.failed("u", "s", 0)
    assert not t.locked("u", "s", 0)


async def test_keyed_locks_serialise_one_key_and_forget_released_keys():
    locks = KeyedLocks()
    order = []

    async def worker(key, n):
        async with locks.hold(key):
            order.append((key, n, "in"))
            await asyncio.sleep(0.01)
            order.append((key, n, "out"))

    await asyncio.gather(*(worker("a", n) for n in range(3)), worker("b", 0))
    a_events = [e for e in order if e[0] == "a"]
    assert all(a_events[i][2] == "in" and a_events[i + 1][2] == "out"
               and a_events[i][1] == a_events[i + 1][1] for i in range(0, 6, 2))
    assert len(locks) == 0
