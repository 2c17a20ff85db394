"""State store: time of one record write with 10 / 1,000 / 10,000 / 100,000 records in its table.

Each size is measured in the same run on the same disk, as the median of many single writes
(each one fsynced, as the daemon acknowledges them), and printed as a ratio to the 10-record
case. The target is a ratio near 1: a write costs one journal append, not a rewrite.
"""
from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from appliance.state import Put, Store

SIZES = (10, 1_000, 10_000, 100_000)
SAMPLES = 200


async def _measure(size: int, base: Path) -> float:
    store = Store(base / f"s{size}")
    await store.open()
    doc = {"name": "x" * 40, "status": "ACTIVE", "n": 0}
    batch = [Put("records", f"id-{i}", {**doc, "n": i}) for i in range(size)]
    for i in range(0, size, 5000):
        await store.commit(batch[i:i + 5000])
    if store._compactor:
        await store._compactor
    times = []
    for i in range(SAMPLES):
        t0 = time.perf_counter()
        await store.put("records", f"id-{i % size}", {**doc, "n": -i})
        times.append(time.perf_counter() - t0)
    await store.close()
    return statistics.median(times)


def run() -> dict:
    results = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        for size in SIZES:
            results[size] = asyncio.run(_measure(size, Path(tmp)))
    base = results[10]
    print(f"   {'records':>10} {'write ms':>10} {'ratio vs 10':>12}")
    for size, t in results.items():
        print(f"   {size:>10} {t * 1000:>10.3f} {t / base:>12.2f}")
    return {"write_seconds": results, "ratio_10000_vs_10": results[10_000] / base,
            "ratio_100000_vs_10": results[100_000] / base}


if __name__ == "__main__":
    run()
