"""Token validation: the per-request check with 10 vs 10,000 users, assignments and tokens.

Roles are read from the current assignments at every validation (a removed role must stop
working on the next request), through an in-memory index the store keeps current on every
change; the target is a ratio near 1 between the two sizes, also for the first validation
after an assignment change (the index follows each change, it is not rebuilt).
"""
from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from appliance.config import IdentityConfig
from appliance.identity import IdentityService
from appliance.identity.records import Assignment, Token, User
from appliance.state import Store

SIZES = (10, 10_000)
SAMPLES = 2000


async def _measure(size: int, base: Path) -> tuple[float, float]:
    store = Store(base / f"s{size}")
    await store.open()
    ident = IdentityService(store, IdentityConfig())
    await ident.bootstrap("admin", "bench-admin-pw")
    project = ident.project_by_name("admin")
    member = ident.role_by_name("member")
    users = [User(id=f"u{i:06d}", name=f"user{i}") for i in range(size)]
    await ident.users.save_all(users)
    await ident.assignments.save_all(
        Assignment(id=Assignment.make_id(u.id, project.id, member.id), user_id=u.id,
                   project_id=project.id, role_id=member.id) for u in users)
    await ident.tokens.save_all(
        Token(id=f"{i:064x}", user_id=u.id, project_id=project.id, expires_at=time.time() + 3600)
        for i, u in enumerate(users))
    secret, _ = await ident._mint(users[-1].id, project.id, ["member"], time.time() + 3600, 0.0)
    ident.validate(secret)  # the index is built
    times = []
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        ident.validate(secret)
        times.append(time.perf_counter() - t0)
    await ident.assign(users[0].id, project.id, ident.role_by_name("reader").id)
    t0 = time.perf_counter()
    ident.validate(secret)
    after_change = time.perf_counter() - t0
    await store.close()
    return statistics.median(times), after_change


def run() -> dict:
    results = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        for size in SIZES:
            results[size] = asyncio.run(_measure(size, Path(tmp)))
    base = results[SIZES[0]][0]
    print(f"   {'records':>10} {'validate us':>12} {'ratio vs 10':>12} {'after a change us':>18}")
    for size, (t, after_change) in results.items():
        print(f"   {size:>10} {t * 1e6:>12.1f} {t / base:>12.2f} {after_change * 1e6:>18.0f}")
    return {"validate_seconds": {k: v[0] for k, v in results.items()},
            "first_after_change_seconds": {k: v[1] for k, v in results.items()},
            "ratio_10000_vs_10": results[10_000][0] / base}


if __name__ == "__main__":
    run()
