"""Swift API benchmark: through HTTP on loopback against a real `monostack serve` process.

Run:  PYTHONPATH=. python tests/bench/bench_swift.py [--dir /var/tmp] [--size-mib 1024]
      (or `python -m tests.bench swift`)

Side by side on one filesystem:
- 1 GiB PUT (3 replicas, fsync each) vs raw sequential write + fsync of one file;
- 1 GiB GET (block crc32s verified by the server; page cache of the replicas dropped first)
  vs raw sequential read of a file with its cache dropped; the client checks a crc32 of what
  it sent, not an md5 (that would cap the measure at one core's md5);
- md5 in memory: the PUT computes it (the ETag), so it bounds the PUT;
- 4 KiB PUT and GET ops/s at 1, 8 and 32 concurrent HTTP clients;
- listing 10,000 names (JSON) from a container of 100,000 vs one of 10,000 (names loaded
  through the engine's index before the daemon starts).

The daemon is a separate process so client and server do not share one core's event loop.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from storage.objects import ObjectEngine  # noqa: E402
from storage.objects.index import ObjectRow  # noqa: E402
from tests.daemon import ADMIN_PASSWORD, DaemonProcess, run_init, write_config  # noqa: E402

# The raw-disk baselines are the object-engine bench's, so both compare against one yardstick.
from tests.bench.bench_objects import CHUNK, drop_cache, md5_rate, raw_read, raw_write  # noqa: E402


async def _token(http: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": ADMIN_PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
    async with http.post(url + "/identity/v3/auth/tokens", json=body) as r:
        r.raise_for_status()
        return r.headers["X-Subject-Token"], (await r.json())["token"]["project"]["id"]


async def bench(root: Path, size: int, small_ops: int) -> dict:
    results: dict = {}
    mib = size / CHUNK
    raw = root / "raw.bin"
    w = raw_write(raw, size)
    r = raw_read(raw)
    raw.unlink()

    path, config = write_config(root / "daemon", components=["objects"],
                                extra={"storage": {"object_auditor_interval": 1e9}})
    run_init(path)
    # listings: rows loaded through the engine's index while the daemon is down
    daemon = DaemonProcess(path, config)
    daemon.start()
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        token, pid = await _token(http, daemon.url)
    daemon.stop()
    account = f"AUTH_{pid}"
    engine = ObjectEngine(list(config.storage.object_devices), config.storage.object_replicas,
                          config.state_dir / "objects.sqlite")
    await engine.start()
    rows = []
    for n in (10_000, 100_000):
        await engine.create_container(account, f"list{n}")
        rows += [ObjectRow(account, f"list{n}", f"dir{i % 100:02d}/obj{i:07d}", 4096, "e" * 32,
                           "application/octet-stream", f"{i + 1:016.5f}", 1.0) for i in range(n)]
    await engine.index.replace_all(rows, 1.0)
    await engine.close()
    del rows

    daemon.start()
    try:
        async with aiohttp.ClientSession(auto_decompress=False,
                                         connector=aiohttp.TCPConnector(limit=64)) as http:
            token, _ = await _token(http, daemon.url)
            base = f"{daemon.url}/swift/v1/{account}"
            hdr = {"X-Auth-Token": token}
            for c in ("big", "small"):
                async with http.put(f"{base}/{c}", headers=hdr) as resp:
                    assert resp.status in (201, 202)

            buf = os.urandom(CHUNK)
            # the bytes sent, checked on the way back by crc32: an md5 in this client would
            # cap the measured GET at one core's md5 rate (the server verifies its own sums)
            sent_crc = 0
            for _ in range(size // CHUNK):
                sent_crc = zlib.crc32(buf, sent_crc)

            async def body():
                for _ in range(size // CHUNK):
                    yield buf

            t0 = time.perf_counter()
            async with http.put(f"{base}/big/obj", data=body(), headers=hdr) as resp:
                assert resp.status == 201, await resp.text()
            put_s = time.perf_counter() - t0
            for dev in config.storage.object_devices:
                for f in Path(dev).rglob("*.data"):
                    drop_cache(f)
            t0 = time.perf_counter()
            n = got_crc = 0
            async with http.get(f"{base}/big/obj", headers=hdr) as resp:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    n += len(chunk)
                    got_crc = zlib.crc32(chunk, got_crc)
            get_s = time.perf_counter() - t0
            assert n == size and got_crc == sent_crc
            async with http.delete(f"{base}/big/obj", headers=hdr) as resp:
                assert resp.status == 204

            print(f"\n# {mib:.0f} MiB streams through the Swift API on {root} (same filesystem)")
            print(f"{'operation':48} {'MiB/s':>9} {'vs raw':>8}")
            print(f"{'raw sequential write + fsync':48} {mib / w:9.1f} {1.0:8.2f}")
            print(f"{'Swift PUT over HTTP, 3 replicas':48} {mib / put_s:9.1f} {w / put_s:8.2f}")
            print(f"{'raw sequential read (cache dropped)':48} {mib / r:9.1f} {1.0:8.2f}")
            print(f"{'Swift GET over HTTP (server crc32 verified)':48} {mib / get_s:9.1f} {r / get_s:8.2f}")
            md5 = md5_rate(size)
            print(f"{'md5 in memory (one core; the PUT computes it)':48} {md5:9.1f} {md5 * w / mib:8.2f}")
            print(f"{'  PUT per replica byte / raw write':48} {'':9} {3 * w / put_s:8.2f}"
                  f"   floor min(1, 3 x md5 / raw write) = {min(1.0, 3 * md5 * w / mib):.2f}")
            results["stream"] = {"mib": mib, "raw_write_mibs": mib / w, "put_mibs": mib / put_s,
                                 "raw_read_mibs": mib / r, "get_mibs": mib / get_s,
                                 "md5_mibs": md5}

            data = os.urandom(4096)

            async def run(conc: int, total: int, fn) -> float:
                q = iter(range(total))

                async def worker():
                    for i in q:
                        await fn(i)

                t0 = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(conc)))
                return total / (time.perf_counter() - t0)

            print("\n# 4 KiB objects over HTTP, 3 replicas (fsync per replica + index group commit)")
            print(f"{'clients':>8} {'PUT ops/s':>10} {'GET ops/s':>10} {'PUT vs 1':>9} {'GET vs 1':>9}")
            first = None
            results["small"] = {}
            for conc in (1, 8, 32):
                total = small_ops if conc > 1 else small_ops // 2

                async def one_put(i, conc=conc):
                    async with http.put(f"{base}/small/c{conc}-{i}", data=data, headers=hdr) as resp:
                        assert resp.status == 201

                async def one_get(i, conc=conc):
                    async with http.get(f"{base}/small/c{conc}-{i}", headers=hdr) as resp:
                        assert resp.status == 200 and len(await resp.read()) == 4096

                p = await run(conc, total, one_put)
                g = await run(conc, total, one_get)
                first = first or (p, g)
                print(f"{conc:8d} {p:10.0f} {g:10.0f} {p / first[0]:9.2f} {g / first[1]:9.2f}")
                results["small"][conc] = {"put_ops": p, "get_ops": g}

            print("\n# listing 10,000 names as JSON over HTTP")
            print(f"{'listing':52} {'ms':>8} {'vs 10k':>8}")
            timings = {}
            for n in (10_000, 100_000):
                cases = [("first 10,000", ""), ("delimiter '/' (100 subdirs)", "&delimiter=/")]
                if n > 10_000:  # a page from the middle (compared with the first page of 10k)
                    cases.append(("10,000 after a marker in the middle", f"&marker=dir50/obj{n // 2:07d}"))
                for label, q in cases:
                    best = float("inf")
                    for _ in range(5):
                        t0 = time.perf_counter()
                        async with http.get(f"{base}/list{n}?format=json&limit=10000{q}", headers=hdr) as resp:
                            assert resp.status == 200
                            await resp.read()
                        best = min(best, time.perf_counter() - t0)
                    timings[(n, label)] = best * 1000
            for (n, label), ms in timings.items():
                base_ms = timings.get((10_000, label), timings[(10_000, "first 10,000")])
                print(f"{f'{label} of {n:,}':52} {ms:8.1f} {ms / base_ms:8.2f}")
            results["listing_ms"] = {f"{label} of {n}": ms for (n, label), ms in timings.items()}
    finally:
        daemon.stop()
    return results


def run(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--small-ops", type=int, default=1000)
    args = ap.parse_args(argv or [])
    root = Path(tempfile.mkdtemp(prefix="bench-swift-", dir=args.dir))
    try:
        return asyncio.run(bench(root, args.size_mib << 20, args.small_ops))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run(sys.argv[1:])
