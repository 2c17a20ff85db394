"""Object engine benchmark (engine level; the Swift API bench comes later).

Run:  PYTHONPATH=. python tests/bench/bench_objects.py [--dir /var/tmp] [--size-mib 1024]

Everything runs on one filesystem, side by side:
- 1 GiB PUT (3 replicas, and 1 replica) vs raw sequential write + fsync of one file, and vs
  the bare work of a 3-replica PUT in plain threads (3 files written and fsynced, md5 beside);
  the 3-replica PUT, the raw write and the bare floor in interleaved rounds, the ratios
  each round's, their median the result (MiB/s: the best of each);
- 1 GiB GET vs raw sequential read (page cache dropped per file with posix_fadvise), beside
  md5 and crc32 over the same amount of memory (a GET verifies block crc32s; the PUT
  computes the md5, the ETag, on one core: its floor is min(1, 3 x md5 / raw write) per
  replica byte);
- 4 KiB PUT and GET ops/s at 1, 8 and 32 concurrent clients, beside the bare durable-create
  floor of the same disk;
- listing the first 10,000 names of a 100,000-object container vs a 10,000-object one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from storage.objects import ObjectEngine  # noqa: E402
from storage.objects.index import ObjectRow  # noqa: E402

CHUNK = 1 << 20


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def raw_write(path: Path, size: int) -> float:
    buf = os.urandom(CHUNK)
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(size // CHUNK):
            f.write(buf)
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t0


def md5_rate(size: int) -> float:
    """MiB/s of md5 over in-memory buffers: a PUT computes it (the ETag) and can go no faster,
    whatever the disk does (one md5 cannot be split across cores); nor could a GET that
    verified it (reads verify block crc32s instead, see crc32_rate)."""
    import hashlib
    buf, h = os.urandom(CHUNK * 4), hashlib.md5()
    n = max(1, min(size, 256 << 20) // len(buf))
    t0 = time.perf_counter()
    for _ in range(n):
        h.update(buf)
    return n * len(buf) / (1 << 20) / (time.perf_counter() - t0)


def crc32_rate(size: int) -> float:
    """MiB/s of zlib.crc32 over in-memory 1 MiB blocks: the checksum a GET verifies."""
    import zlib
    buf = memoryview(os.urandom(CHUNK * 4))
    n = max(1, min(size, 256 << 20) // len(buf))
    t0 = time.perf_counter()
    for _ in range(n):
        for k in range(0, len(buf), CHUNK):
            zlib.crc32(buf[k:k + CHUNK])
    return n * len(buf) / (1 << 20) / (time.perf_counter() - t0)


def raw_put_floor(root: Path, size: int, replicas: int = 3) -> float:
    """Seconds for the bare work of a replicated PUT, in plain threads: `replicas` files
    written in parallel, each from the same 1 MiB buffers and fsynced, while one more thread
    takes the md5 of every byte (the ETag). No event loop, no block sums, no rename: what
    this disk and these 2 cores allow a 3-replica PUT, md5 and copies into the page cache
    competing for the CPU as they do in ours."""
    import hashlib
    import threading

    buf = os.urandom(CHUNK)
    n = size // CHUNK

    def write(path: Path) -> None:
        with open(path, "wb") as f:
            for _ in range(n):
                f.write(buf)
            f.flush()
            os.fsync(f.fileno())

    def md5() -> None:
        h = hashlib.md5()
        for _ in range(n):
            h.update(buf)

    threads = [threading.Thread(target=write, args=(root / f"floor{i}.bin",)) for i in range(replicas)]
    threads.append(threading.Thread(target=md5))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    for i in range(replicas):
        (root / f"floor{i}.bin").unlink()
    return took


def raw_read(path: Path) -> float:
    drop_cache(path)
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(CHUNK):
            pass
    return time.perf_counter() - t0


async def chunks(size: int):
    buf = os.urandom(CHUNK)
    for _ in range(size // CHUNK):
        yield buf


def durable_create_floor(root: Path, clients: int, total: int, replicas: int = 3) -> float:
    """Objects/s of the bare durable create a PUT needs, in plain threads: per replica a temp
    file written and fsynced, a new directory made and its parent fsynced, the rename, the
    directory fsynced; the replicas of one object in parallel, `clients` objects at once.
    No index, no event loop: the disk's floor for what the engine does per small PUT."""
    from concurrent.futures import ThreadPoolExecutor

    data = os.urandom(4096)
    devs = [root / f"floor{i}" for i in range(replicas)]
    for d in devs:
        (d / "tmp").mkdir(parents=True)
        (d / "objects").mkdir()

    def fsync_dir(p: Path) -> None:
        fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def replica(dev: Path, i: int) -> None:
        tmp = dev / "tmp" / f"{i}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        hd = dev / "objects" / f"{i:08x}"
        hd.mkdir()
        fsync_dir(hd.parent)
        os.rename(tmp, hd / "1.data")
        fsync_dir(hd)

    with ThreadPoolExecutor(clients * replicas) as pool:
        t0 = time.perf_counter()
        for f in [pool.submit(replica, d, i) for i in range(total) for d in devs]:
            f.result()
        rate = total / (time.perf_counter() - t0)
    for d in devs:
        shutil.rmtree(d)
    return rate


async def engine_big(root: Path, replicas: int, size: int) -> tuple[float, float]:
    devs = [root / f"r{replicas}dev{i}" for i in range(3)]
    async with ObjectEngine(devs, replicas, root / f"r{replicas}.sqlite") as e:
        await e.create_container("AUTH_b", "c")
        t0 = time.perf_counter()
        await e.put_object("AUTH_b", "c", "big", chunks(size))
        put_s = time.perf_counter() - t0
        for d in devs:
            for f in d.rglob("*.data"):
                drop_cache(f)
        t0 = time.perf_counter()
        _, body = await e.get_object("AUTH_b", "c", "big")
        n = 0
        async for b in body:
            n += len(b)
        get_s = time.perf_counter() - t0
        assert n == size
    for d in devs:
        shutil.rmtree(d)
    return put_s, get_s


async def small_ops(root: Path, conc: int, total: int) -> tuple[float, float]:
    devs = [root / f"s{conc}dev{i}" for i in range(3)]
    data = os.urandom(4096)
    async with ObjectEngine(devs, None, root / f"s{conc}.sqlite") as e:
        await e.create_container("AUTH_b", "c")

        async def one_put(i):
            async def body():
                yield data
            await e.put_object("AUTH_b", "c", f"o{i}", body())

        async def one_get(i):
            _, b = await e.get_object("AUTH_b", "c", f"o{i}")
            await b.read()

        async def run(fn):
            q = iter(range(total))

            async def worker():
                for i in q:
                    await fn(i)

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            return total / (time.perf_counter() - t0)

        puts = await run(one_put)
        gets = await run(one_get)
    for d in devs:
        shutil.rmtree(d)
    return puts, gets


async def listing(root: Path) -> list[tuple[str, float]]:
    out = []
    for n in (10_000, 100_000):
        devs = [root / f"l{n}dev{i}" for i in range(3)]
        async with ObjectEngine(devs, None, root / f"l{n}.sqlite") as e:
            await e.create_container("AUTH_b", "c")
            rows = [ObjectRow("AUTH_b", "c", f"dir{i % 100:02d}/obj{i:07d}", 4096, "e" * 32,
                              "application/octet-stream", f"{i + 1:016.5f}", 1.0) for i in range(n)]
            await e.index.replace_all(rows, 1.0)
            await e.list_objects("AUTH_b", "c", limit=10_000)  # warm
            for label, kw in (("first 10,000", {}), ("10,000 after marker in middle", {"marker": rows[n // 2].name}),
                              ("delimiter '/' (100 subdirs)", {"delimiter": "/"})):
                best = float("inf")
                for _ in range(5):
                    t0 = time.perf_counter()
                    res = await e.list_objects("AUTH_b", "c", limit=10_000, **kw)
                    best = min(best, time.perf_counter() - t0)
                out.append((f"list {label} of {n:,}", best * 1000))
                assert res
    return out


async def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--small-ops", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the 3-replica PUT and its floors")
    args = ap.parse_args(argv)
    out: dict = {}
    root = Path(tempfile.mkdtemp(prefix="bench-objects-", dir=args.dir))
    size = args.size_mib << 20
    try:
        raw = root / "raw.bin"
        w = raw_write(raw, size)
        r = raw_read(raw)
        raw.unlink()
        mib = size / (1 << 20)
        out["md5_mib_s"] = md5 = md5_rate(size)
        out["crc32_mib_s"] = crc = crc32_rate(size)
        # The 3-replica PUT beside its floors, in interleaved rounds; the ratios are each
        # round's side by side, their median the result: on a shared 2-core host a burst of
        # other work lands on one sample (one run saw the bare floor at 484 MiB/s, then the
        # engine at 176 under a load of 26) and must not decide the ratio. MiB/s: best of each.
        ws, bares, puts, gets = [w], [], [], []
        for i in range(max(1, args.rounds)):
            if i:
                ws.append(raw_write(raw, size))
                raw.unlink()
            bares.append(raw_put_floor(root, size))
            p, g = await engine_big(root, 3, size)
            puts.append(p)
            gets.append(g)
        w, bare = min(ws), min(bares)
        out["raw_write_mib_s"], out["raw_read_mib_s"] = mib / w, mib / r
        out["rounds_3_replicas"] = [{"raw_write_mib_s": mib / a, "bare_put_mib_s": mib / b,
                                     "engine_put_mib_s": mib / c, "put_vs_bare": b / c,
                                     "put_per_replica_byte_vs_raw": 3 * a / c}
                                    for a, b, c in zip(ws, bares, puts)]
        out["put_vs_bare_3_median"] = statistics.median(b / c for b, c in zip(bares, puts))
        out["put_per_replica_byte_vs_raw_3_median"] = statistics.median(
            3 * a / c for a, c in zip(ws, puts))
        print(f"\n# {mib:.0f} MiB streams on {root} (same filesystem; the 3-replica PUT and its "
              f"floors in {len(puts)} interleaved rounds: MiB/s the best, ratios the median)")
        print(f"{'operation':44} {'MiB/s':>9} {'vs raw':>8}")
        print(f"{'raw sequential write + fsync':44} {mib / w:9.1f} {1.0:8.2f}")
        # what a 3-replica PUT could reach, per replica byte: the disk takes 3 bytes per
        # object byte, and one md5 (the ETag) sees every object byte on one core
        put_floor = min(1.0, 3 * md5 / (mib / w))
        out["put_floor_per_replica_byte_3"] = put_floor
        print(f"{'md5 in memory (a PUT computes it: the ETag)':44} {md5:9.1f} {md5 * w / mib:8.2f}")
        print(f"{'  PUT floor per replica byte, 3 replicas':44} {'':9} {put_floor:8.2f}"
              "   (3 × md5 / raw write, at most 1)")
        out["bare_put_mib_s_3"] = mib / bare
        print(f"{'bare 3-replica write+fsync with md5, threads':44} {mib / bare:9.1f} {w / bare:8.2f}"
              f"   per replica byte {3 * w / bare:.2f}")
        for reps in (3, 1):
            p, g = (min(puts), min(gets)) if reps == 3 else await engine_big(root, reps, size)
            print(f"{f'engine PUT, {reps} replica(s)':44} {mib / p:9.1f} {w / p:8.2f}"
                  f"   per replica byte {reps * w / p:.2f}")
            print(f"{f'engine GET, {reps} replica(s) (crc32 verified)':44} {mib / g:9.1f} {r / g:8.2f}")
            out[f"engine_put_mib_s_{reps}"], out[f"engine_get_mib_s_{reps}"] = mib / p, mib / g
            if reps == 3:
                print(f"{'  PUT per replica byte / its md5 floor':44} {'':9} {3 * w / p / put_floor:8.2f}")
                print(f"{'  PUT / bare 3-replica write+fsync with md5':44} {'':9} "
                      f"{out['put_vs_bare_3_median']:8.2f}   median of rounds: "
                      f"{', '.join(f'{b / c:.2f}' for b, c in zip(bares, puts))}")
                print(f"{'  PUT per replica byte / raw write+fsync':44} {'':9} "
                      f"{out['put_per_replica_byte_vs_raw_3_median']:8.2f}   median of rounds: "
                      f"{', '.join(f'{3 * a / c:.2f}' for a, c in zip(ws, puts))}")
        print(f"{'raw sequential read (cache dropped)':44} {mib / r:9.1f} {1.0:8.2f}")
        print(f"{'md5 in memory (a GET verifying it: at most)':44} {md5:9.1f} {md5 * r / mib:8.2f}")
        print(f"{'crc32 in memory (what a GET verifies)':44} {crc:9.1f} {crc * r / mib:8.2f}")

        print("\n# 4 KiB objects, 3 replicas (fsync per replica + index group commit)")
        print(f"{'clients':>8} {'PUT ops/s':>10} {'GET ops/s':>10} {'PUT vs 1':>9} {'GET vs 1':>9}")
        base = None
        for conc in (1, 8, 32):
            p, g = await small_ops(root, conc, args.small_ops if conc > 1 else args.small_ops // 2)
            base = base or (p, g)
            print(f"{conc:8d} {p:10.0f} {g:10.0f} {p / base[0]:9.2f} {g / base[1]:9.2f}")
            out[f"small_ops_{conc}_clients"] = {"put_ops_s": p, "get_ops_s": g}
        floor = durable_create_floor(root, 32, args.small_ops)
        out["small_put_floor_32_clients"] = floor
        print(f"{'floor':>8} {floor:10.0f} {'':>10} {'':>9}   bare durable creates, 3 replicas, "
              f"32 at once (PUT at 32 / floor: {out['small_ops_32_clients']['put_ops_s'] / floor:.2f})")

        print("\n# listings (sqlite index range scans)")
        res = await listing(root)
        print(f"{'listing':52} {'ms':>8} {'vs 10k':>8}")
        half = len(res) // 2
        for (label, ms), (_, base_ms) in zip(res, res[:half] * 2):
            print(f"{label:52} {ms:8.1f} {ms / base_ms:8.2f}")
        out["listings_ms"] = dict(res)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def run() -> dict:
    """`python -m tests.bench`: the defaults (1 GiB streams under /var/tmp)."""
    return asyncio.run(main([]))


if __name__ == "__main__":
    import sys

    asyncio.run(main(sys.argv[1:]))
