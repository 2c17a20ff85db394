"""`python -m tests.bench`: every bench_*.py module here, results printed and saved."""
from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    results: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                                  "machine": f"{platform.node()} {platform.machine()} "
                                             f"{platform.processor() or ''}".strip()}
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem
        if wanted and name not in wanted and name.removeprefix("bench_") not in wanted:
            continue
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"\n== {name}")
        try:
            results[name] = module.run()
        except Exception as exc:  # one broken bench must not hide the others
            print(f"   failed: {exc!r}")
            results[name] = {"error": repr(exc)}
    out = HERE / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
