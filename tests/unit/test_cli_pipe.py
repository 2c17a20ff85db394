"""The CLI's output piped into a reader that leaves early (`monostack ... | head -2`)."""
from __future__ import annotations

import subprocess
import sys


def test_a_reader_leaving_early_gets_no_traceback():
    """`monostack --help | head -1` with more output than the pipe holds: the CLI used to die
    with a BrokenPipeError traceback on stderr (seen as `monostack status | head -2`)."""
    code = ("import sys, appliance.cli as c\n"
            "def chatty(args):\n"
            "    for i in range(200000):\n"
            "        print('line %d' % i)\n"
            "    return 0\n"
            "c.cmd_doctor = chatty\n"
            "sys.exit(c.main(['doctor']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()  # the reader leaves
    err = proc.stderr.read().decode()
    assert proc.wait(30) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err
