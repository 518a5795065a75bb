"""The pidfile: `switchd run` writes its process id there and removes it when it exits.

`switchd status` and the other commands read it to tell a daemon that is not running (no
pidfile, or one naming a process that has exited) from one that runs but whose API does not
answer. The rules:

* it holds the process id and a newline, written to a temporary file and renamed into place, so
  a reader never sees half a number;
* a pidfile naming a live switchd process refuses the start (two daemons sharing one pidfile
  would remove each other's); one naming a process that has exited, or one that is not switchd
  (its id was reused), is stale and replaced;
* at exit it is removed only if it still names this process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

from ._common import EXIT_USAGE, CliError

log = logging.getLogger(__name__)


def read_pid(path: Path) -> int | None:
    """The process id in the pidfile `path`; None if there is none or it holds no number."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_running_switchd(pid: int) -> bool:
    """Whether process `pid` exists and, where /proc tells, runs switchd."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        pass
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc (not Linux), or it just exited: trust kill(0)
        return True
    return _names_switchd(command_line.split(b"\0"))


def _names_switchd(argv: list[bytes]) -> bool:
    """Whether a command line runs switchd: the console script, or `python -m switchd`.

    A word of the command line, not a substring: a path that merely contains "switchd" (a venv
    called switchd-…, a config directory) does not make a process one.
    """
    if any(word.rsplit(b"/", 1)[-1] == b"switchd" for word in argv[:2]):
        return True
    return any(a == b"-m" and b == b"switchd" for a, b in pairwise(argv))


def check_pidfile(path: Path) -> int | None:
    """Raise CliError (exit 2) naming the holder when a live switchd holds `path`; creates nothing.

    Returns the pid of a stale pidfile (its process has exited), None when there is none to replace.
    """
    other = read_pid(path)
    if other is None or other == os.getpid():
        return None
    if is_running_switchd(other):
        raise CliError(f"pidfile {path} names pid {other}, a switchd that is running: stop it first, or "
                       "give this one its own pidfile (--pidfile or [api] pidfile)", EXIT_USAGE)
    return other


@contextmanager
def pidfile(path: Path) -> Iterator[None]:
    """Hold the pidfile `path` for this process for the duration of the block (see the module doc).

    Raises CliError (exit 2) when a live switchd holds it, or when it cannot be written.
    """
    other = check_pidfile(path)
    if other is not None:
        log.warning("replacing the stale pidfile %s (pid %d has exited)", path, other,
                    extra={"pidfile": str(path), "pid": other})
    mine = os.getpid()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{mine}")
        partial.write_text(f"{mine}\n", encoding="ascii")
        os.replace(partial, path)
    except OSError as exc:
        raise CliError(f"cannot write the pidfile {path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    try:
        yield
    finally:
        if read_pid(path) == mine:
            path.unlink(missing_ok=True)
