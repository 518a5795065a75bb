"""SIPp load through a real switchd while a fault happens: the fault tests' common run.

    SIPp uac (30 cps, 1 s hold, -trace_msg) --TCP--> switchd --TCP--> SIPp uas (gateway gw1)

`run_through_outage` places calls for `before + during + after` seconds and, `before` seconds in,
holds an `Outage` (a locked SQLite file, a stopped or frozen PostgreSQL) for `during` seconds.
Then the callee is stopped and the node stopped cleanly, started again on the same configuration
(so whatever it spooled is replayed and nothing it left is unaccounted for) and stopped again;
the CDRs are read and compared with what the caller saw (`_exact.check_exact`).
Every process is the test's own child, stopped by PID, and every wait is bounded.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

from switchd.billing import Cdr
from tests.conftest import require_binary

from ._daemon import GatewaySpec, Switchd
from ._exact import Exactness, check_exact
from ._sipp import SippCallee, SippCaller, SippStats, free_tcp_port
from ._traces import CallerView, read_trace
from .conftest import StartSwitchd

RATE = 30  # calls per second
HOLD_MS = 1000


class Outage(Protocol):
    """A database fault the test switches on and off."""

    def begin(self) -> None: ...

    def end(self) -> None: ...


class SqliteLock:
    """A child process holding BEGIN EXCLUSIVE on the node's SQLite file from `begin` to `end`."""

    _HOLDER = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"  # until the test closes our stdin
        "db.execute('COMMIT')\n"
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen[str] | None = None

    def begin(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", self._HOLDER, str(self.path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the holder's own busy timeout is 10 s
        assert line.strip() == "locked", f"could not lock {self.path}: {line!r}"

    def end(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.communicate(input="", timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@dataclass(frozen=True, slots=True)
class LoadRun:
    """What one run gives the test: the caller's and callee's view, the exit statuses, the verdict."""

    caller: SippStats
    caller_code: int
    callee: SippStats
    stop_codes: tuple[int, ...]
    cdrs: list[Cdr]
    views: dict[str, CallerView]
    verdict: Exactness
    log: str  # the node's whole log

    def account(self) -> str:
        """The figures a failing assertion shows."""
        return (f"SIPp caller: {self.caller} exit {self.caller_code}; callee: {self.callee}; "
                f"node exits {self.stop_codes}\n{self.verdict.report()}")


class Callers:
    """The SIPp callers of one test, each stopped by its PID when the `with` block ends, however it ends."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[SippCaller] = []

    def start(self, target: str, *, calls: int, rate: float = RATE, hold_ms: int = HOLD_MS, name: str = "uac",
              timeout_s: int = 120) -> SippCaller:
        """A SIPp `uac` calling 15551234567 through `target` in the background, traced (see SippCaller)."""
        caller = SippCaller(require_binary("sipp"), self.tmp_path, target, calls=calls, rate=rate, hold_ms=hold_ms,
                            name=name, timeout_s=timeout_s)
        self.started.append(caller)
        return caller

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for caller in self.started:
            caller.stop()


@contextmanager
def callee_for(tmp_path: Path) -> Iterator[SippCallee]:
    """A SIPp `uas` on a free port (the node's gateway gw1), stopped by PID at the end."""
    callee = SippCallee(require_binary("sipp"), tmp_path, port=free_tcp_port(), timeout_s=300)
    try:
        yield callee
    finally:
        callee.stop()


@contextmanager
def callee_again(stopped: SippCallee, tmp_path: Path) -> Iterator[SippCallee]:
    """A new SIPp `uas` on the port of `stopped` (the same gateway), stopped by PID at the end."""
    callee = SippCallee(require_binary("sipp"), tmp_path, port=stopped.port, name=f"{stopped.name}-again",
                        timeout_s=300)
    try:
        yield callee
    finally:
        callee.stop()


def stop_restart_stop(start_switchd: StartSwitchd, switchd: Switchd) -> tuple[int, ...]:
    """Stop cleanly, start again on the same configuration (its spool is replayed), stop again; both exits."""
    first = switchd.stop(timeout=45.0)
    again = start_switchd.again(switchd)
    return first, again.stop(timeout=45.0)


def run_through_outage(start_switchd: StartSwitchd, tmp_path: Path, switchd: Switchd, callee: SippCallee,
                       outage: Outage, *, before: float = 5.0, during: float = 30.0, after: float = 5.0) -> LoadRun:
    """SIPp load for before + during + after seconds with `outage` held during `during`; see the module docstring."""
    with Callers(tmp_path) as callers:
        caller = callers.start(switchd.target, calls=int(RATE * (before + during + after)),
                               timeout_s=int(before + during + after) + 60)
        time.sleep(before)
        began = time.time()
        outage.begin()
        try:
            time.sleep(during)
        finally:
            outage.end()
        ended = time.time()
        caller_code = caller.wait()
    callee_stats = callee.stop()
    stop_codes = stop_restart_stop(start_switchd, switchd)
    views = read_trace([caller.trace_path])
    cdrs = switchd.cdrs()
    return LoadRun(caller.stats(), caller_code, callee_stats, stop_codes, cdrs, views, check_exact(views, cdrs, fault=(began, ended)),
                   switchd.stderr_path.read_text(encoding="utf-8", errors="replace"))


def gateway(callee: SippCallee) -> list[GatewaySpec]:
    return [GatewaySpec("gw1", callee.port)]
