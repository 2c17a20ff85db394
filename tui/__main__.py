"""`python -m tui --socket PATH`: one operator console session for `monostack web`.

Each browser tab gets its own process running this (textual-serve drives it through the web
driver, over pipes); it talks to the local daemon and remembers nothing between sessions.
"""
from __future__ import annotations

import argparse

from tui.app import run_tui


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tui")
    parser.add_argument("--socket", help="the daemon's unix socket")
    parser.add_argument("--url", help="the daemon's URL instead")
    args = parser.parse_args()
    return run_tui(url=args.url, socket_path=args.socket, remember=False)


if __name__ == "__main__":
    raise SystemExit(main())
