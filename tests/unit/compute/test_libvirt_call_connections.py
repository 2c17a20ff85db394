"""CallConnections over real libvirt connections (test:///default): a burst of calls spreads
over as many connections as libvirtd's per-connection limit needs, and dead or dropped
connections are never lent again."""
import threading

import libvirt
import pytest

from appliance.compute.libvirt.connections import CallConnections

URI = "test:///default"


class Opener:
    """libvirt.open, counting what it opened."""

    def __init__(self) -> None:
        self.opened: list[libvirt.virConnect] = []

    def __call__(self) -> libvirt.virConnect:
        conn = libvirt.open(URI)
        self.opened.append(conn)
        return conn


def hold(pool: CallConnections, n: int):
    """n calls in flight at once, each on its borrowed connection until released."""
    release, held = threading.Event(), []
    ready = threading.Barrier(n + 1)
    lock = threading.Lock()

    def call() -> None:
        with pool.borrow() as conn:
            conn.getType()  # a real call on it
            with lock:
                held.append(conn)
            ready.wait()
            release.wait()

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    ready.wait()

    def done() -> None:
        release.set()
        for t in threads:
            t.join()

    return held, done


def test_each_call_of_a_burst_has_a_connection_of_its_own():
    opener = Opener()
    pool = CallConnections(opener)
    held, done = hold(pool, 9)
    try:
        assert len(set(map(id, held))) == 9 == len(opener.opened) == len(pool)
    finally:
        done()
    held, done = hold(pool, 5)  # the next burst reuses them
    done()
    assert len(opener.opened) == 9
    for c in pool.drop_all():
        c.close()


def test_at_the_cap_calls_share_the_least_busy_connection():
    opener = Opener()
    pool = CallConnections(opener, per_connection=1, max_connections=2)
    first, done_first = hold(pool, 2)  # both connections there may be are open and busy
    more, done_more = hold(pool, 5)
    try:
        assert len(opener.opened) == 2
        assert sorted((first + more).count(c) for c in opener.opened) == [3, 4]
    finally:
        done_first()
        done_more()
    for c in pool.drop_all():
        c.close()


def test_a_discarded_connection_is_not_lent_again_and_closes_after_its_call():
    opener = Opener()
    pool = CallConnections(opener)
    with pool.borrow() as dead:
        pool.discard(dead)
        assert len(pool) == 0
        dead.getType()  # still usable by the call that holds it
    with pytest.raises(libvirt.libvirtError):
        dead.getType()  # closed once that call was over
    with pool.borrow() as conn:
        assert conn is not dead
    for c in pool.drop_all():
        c.close()


def test_drop_all_hands_back_the_idle_and_closes_the_busy_when_done():
    opener = Opener()
    pool = CallConnections(opener, per_connection=1)
    held, done = hold(pool, 2)
    with pool.borrow() as third:
        pass  # a third connection, idle again
    idle = pool.drop_all()
    assert idle == [third] and len(pool) == 0
    idle[0].close()
    done()
    for conn in held:
        with pytest.raises(libvirt.libvirtError):
            conn.getType()


def test_an_unreachable_libvirtd_fails_the_call_when_nothing_is_open():
    def refuse() -> libvirt.virConnect:
        return libvirt.open("qemu+unix:///system?socket=/nonexistent/libvirt-sock")

    pool = CallConnections(refuse)
    with pytest.raises(libvirt.libvirtError):
        with pool.borrow():
            pass
