"""`python -m tests.bench [--shared | --quiet-host] [name ...]`: every bench_*.py module here
(or the named ones), results printed and saved with issue 16's goal table: a whole run in
results/latest.json (kept in git), a run of named benches in results/partial.json.

--shared says other work ran on the machine meanwhile (a 2-core host shared by several
engineers), --quiet-host that nothing else did; without either the record says "not stated".
The load average at start and end is recorded either way.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tests.bench.goals import goals, host, render, table

HERE = Path(__file__).parent


_CHILD = """
import json, os, sys
name = sys.argv[1]
sys.argv = [f"tests.bench.{name}"]  # a bench's own argparse must not read the runner's flags
from importlib import import_module
result = import_module(f"tests.bench.{name}").run()
with open(os.environ["MONOSTACK_BENCH_RESULT"], "w") as f:
    json.dump(result, f, default=str)
"""


def run_isolated(name: str) -> dict:
    """One bench in an interpreter of its own: run one after another in the runner's process,
    a later bench inherited the heap of every earlier one (the TUI's table refresh measured
    20.1 ms of CPU there against 14.1–14.5 ms alone, its garbage collections walking the
    earlier benches' objects), so what a bench measured depended on what ran before it."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".json") as out:
        env = {**os.environ, "MONOSTACK_BENCH_RESULT": out.name}
        done = subprocess.run([sys.executable, "-c", _CHILD, name], env=env,
                              cwd=HERE.parent.parent)
        if done.returncode != 0:
            raise RuntimeError(f"{name} exited with status {done.returncode}")
        return json.loads(Path(out.name).read_text())


def main(argv: list[str]) -> int:
    # argparse: an unknown flag (even --help once was) must not silently start every bench,
    # TCG guests included, on a machine others share.
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[0])
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--shared", dest="shared", action="store_const", const=True,
                      help="other work ran on the machine meanwhile")
    load.add_argument("--quiet-host", dest="shared", action="store_const", const=False,
                      help="nothing else ran on the machine meanwhile")
    parser.add_argument("names", nargs="*", metavar="name",
                        help=f"benches to run (default: all): {', '.join(names)}")
    args = parser.parse_args(argv)
    shared: bool | None = args.shared
    unknown = [n for n in args.names if n.removeprefix("bench_") not in names]
    if unknown:
        parser.error(f"no such bench: {', '.join(unknown)}")
    wanted = set(args.names)
    machine = host(shared)
    results: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                                  "machine": machine}
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem
        if wanted and name not in wanted and name.removeprefix("bench_") not in wanted:
            continue
        print(f"\n== {name}", flush=True)
        started = time.perf_counter()
        try:
            results[name] = run_isolated(name)
        except Exception as exc:  # one broken bench must not hide the others
            print(f"   failed: {exc!r}")
            results[name] = {"error": repr(exc)}
        # how long each bench took: someone planning a whole run on a shared host needs it
        machine.setdefault("bench_seconds", {})[name] = round(time.perf_counter() - started, 1)
    machine["loadavg_1_5_15_end"] = [round(x, 2) for x in os.getloadavg()]
    entries = goals(results)
    results["goals"] = table(entries)
    print(f"\n== goals (issue 16) on {machine['node']}, {machine['cpus']} CPUs, shared: "
          f"{'not stated' if shared is None else shared}, load {machine['loadavg_1_5_15']} → "
          f"{machine['loadavg_1_5_15_end']}")
    print(render(entries))
    # latest.json is the record of a whole run (committed: anyone sees which goals hold); a
    # run of some benches must not overwrite it with a partial table.
    out = HERE / "results" / ("latest.json" if not wanted else "partial.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
