"""`monostack tui` without a terminal and `operator add --group`: what the SSH ForceCommand
relies on (tests/integration/test_ssh_operator.py drives the whole path through sshd)."""
from __future__ import annotations

import subprocess
import sys

from appliance.cli import build_parser
from appliance.operators import OPERATORS_GROUP
from tests.daemon import ROOT


def test_tui_without_a_terminal_exits_at_once_and_says_why():
    # `ssh operator@host some-command` runs the ForceCommand with pipes, not a tty
    r = subprocess.run([sys.executable, "-m", "appliance", "tui", "--socket", "/nonexistent"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert r.returncode == 2
    assert "needs an interactive terminal" in r.stderr
    assert r.stdout == ""


def test_operator_add_group_defaults_to_the_shipped_snippets_group():
    parser = build_parser()
    args = parser.parse_args(["operator", "add", "alice", "--key", "k"])
    assert args.group == OPERATORS_GROUP == "monostack-operators"
    args = parser.parse_args(["operator", "add", "alice", "--key", "k", "--group", "ops2"])
    assert args.group == "ops2"
