"""Processes the pidfile tests point a pidfile at: a live one that looks like switchd, and a gone one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sleeping(*argv: str, argv0: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A process that sleeps with `argv` on its command line, once exec'd (its command line is its
    own, not pytest's); killed and reaped by PID at the end."""
    proc = subprocess.Popen([argv0 or sys.executable, "-c", "import time; print(flush=True); time.sleep(60)", *argv],
                            executable=sys.executable, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"\n"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def exited_pid() -> int:
    """The process id of a process that has exited (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)
