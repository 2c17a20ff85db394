"""What recording costs the API: request latency with the metrics middleware and the audit
trail on, against the same daemon code with both switched off, side by side in one run.

Two in-process daemons; requests alternate between them (so machine noise hits both alike):
a mutating call (create + delete a key pair: audited, counted, timed) and a read. Goal (issue
18): ≤ 5 % on the median.
"""
from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from tests.daemon import InProcessDaemon, write_config

ROUNDS = 500
#: any valid key will do (a fixed one: the bench makes no key files)
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP3ez3qDSLGRsPBFaNEtcL5ELjPxxgNXkHaUM3HVO1yz bench"


class _Off:
    """Stands in for a metric: labels() and observe()/inc() do nothing."""

    def labels(self, *a, **k):
        return self

    def inc(self, *a, **k):
        pass

    def observe(self, *a, **k):
        pass


async def _time(client, i: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    await client.post("/compute/v2.1/os-keypairs", {"keypair": {
        "name": f"k{i}", "public_key": PUBLIC_KEY}})
    await client.delete(f"/compute/v2.1/os-keypairs/k{i}")
    t1 = time.perf_counter()
    await client.get("/compute/v2.1/flavors")
    return (t1 - t0) / 2, time.perf_counter() - t1


async def _main() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        daemons = []
        for name in ("on", "off"):
            _, config = write_config(Path(tmp) / name, components=["compute"])
            daemons.append(InProcessDaemon(config, components=["compute"]))
        on, off = daemons
        async with on, off:
            ctx = off.appliance.ctx
            await ctx.audit.stop()
            ctx.audit = None
            ctx.metrics.api_requests = ctx.metrics.api_latency = _Off()  # type: ignore[assignment]
            clients = [await d.admin_client() for d in daemons]
            try:
                samples: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
                for i in range(ROUNDS):
                    for name, client in (("on", clients[0]), ("off", clients[1])):
                        samples[name].append(await _time(client, i))
            finally:
                for c in clients:
                    await c.close()
    out = {}
    for name, rows in samples.items():
        out[f"write_p50_ms_{name}"] = round(statistics.median(r[0] for r in rows) * 1000, 3)
        out[f"read_p50_ms_{name}"] = round(statistics.median(r[1] for r in rows) * 1000, 3)
    out["write_ratio"] = round(out["write_p50_ms_on"] / out["write_p50_ms_off"], 3)
    out["read_ratio"] = round(out["read_p50_ms_on"] / out["read_p50_ms_off"], 3)
    return out


def run() -> dict:
    result = asyncio.run(_main())
    print(f"   write (audited) p50: {result['write_p50_ms_on']} ms recorded vs "
          f"{result['write_p50_ms_off']} ms not → {result['write_ratio']}")
    print(f"   read p50: {result['read_p50_ms_on']} ms vs {result['read_p50_ms_off']} ms → "
          f"{result['read_ratio']}  (goal ≤ 1.05)")
    return result


if __name__ == "__main__":
    run()
