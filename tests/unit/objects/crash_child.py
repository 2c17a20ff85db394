"""Child process for the kill -9 test: puts objects forever, printing each acknowledged one.

usage: python -m tests.unit.objects.crash_child ROOT SEED
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
from pathlib import Path

from storage.objects import ObjectEngine, aiter_bytes


async def main(root: Path, seed: int) -> None:
    rnd = random.Random(seed)
    eng = ObjectEngine([root / f"dev{i}" for i in range(3)], None, root / "index.sqlite")
    await eng.start()
    await eng.create_container("AUTH_p", "c")
    print("READY", flush=True)
    i = 0

    async def one(k: int) -> None:
        name = f"s{seed}/obj{k}"
        data = rnd.randbytes(rnd.choice([0, 100, 4096, 70_000, 1_500_000]))
        if rnd.random() < 0.1 and k > 0:  # overwrite or delete an earlier one sometimes
            name = f"s{seed}/obj{rnd.randrange(k)}"
        info = await eng.put_object("AUTH_p", "c", name, aiter_bytes(data, 65536))
        print(f"ACK {name} {info.etag} {hashlib.md5(data).hexdigest()} {info.timestamp}", flush=True)

    while True:
        await asyncio.gather(*(one(i + j) for j in range(4)))  # some concurrency
        i += 4


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
