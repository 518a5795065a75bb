"""PostgreSQL stopped for 30 s, and frozen for 30 s, under SIPp load: calls go on, billing stays exact.

Exact billing (the lead's definition, checked per Call-ID of the caller's SIPp trace against the
CDRs by `_exact.check_exact`):

a. every call whose caller received any response other than 100 Trying has exactly one CDR; no
   Call-ID has two; no CDR is left `open` once the node has been stopped/restarted cleanly;
b. every call the caller saw end (a final non-2xx, its BYE answered, or our BYE it answered) has a
   `closed` (not `recovered`) CDR with the right disposition; answered ones billed their talk time
   (billable_ms within 150 ms of the hold the caller saw);
d. call setup latency (the caller's INVITE → 180/200) p99 < 50 ms, also during the outage.

Here: SIPp `uac` at 30 cps with a 1 s hold → switchd on a PostgreSQL database → SIPp `uas`, 40 s
of calls; 5 s in, the test's own PostgreSQL cluster is stopped (`pg_ctl stop -m fast`, started
again 30 s later) or frozen (SIGSTOP to each of its processes by PID, SIGCONT 30 s later).
0 lost, 0 duplicated, 0 left open, every ended call billed exactly, setup p99 < 50 ms, and SIPp
sees 0 failed calls: the call path never waits on the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration._fault_load import callee_for, gateway, run_through_outage
from tests.integration._postgres import PG_BIN, PgServer
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_server() -> Iterator[PgServer]:
    """This test's own PostgreSQL 15 cluster, running; destroyed at the end (by PID if need be)."""
    server = PgServer(require_binary("initdb", PG_BIN))
    try:
        server.start()
        yield server
    finally:
        server.destroy()


class _Stopped:
    def __init__(self, server: PgServer) -> None:
        self.server = server

    def begin(self) -> None:
        self.server.stop()

    def end(self) -> None:
        self.server.start()


class _Frozen:
    def __init__(self, server: PgServer) -> None:
        self.server = server

    def begin(self) -> None:
        self.server.freeze()
        assert len(self.server.frozen) > 1, "the postmaster and its children are stopped"

    def end(self) -> None:
        self.server.thaw()


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_postgresql_stopped_or_frozen_30s_under_30cps_loses_duplicates_and_leaves_open_no_cdr(
    fault: str, pg_server: PgServer, start_switchd: StartSwitchd, tmp_path: Path,
) -> None:
    outage = _Stopped(pg_server) if fault == "stopped" else _Frozen(pg_server)
    with callee_for(tmp_path) as callee:
        switchd = start_switchd(gateway(callee), database_url=pg_server.url)
        run = run_through_outage(start_switchd, tmp_path, switchd, callee, outage)

    account = run.account()
    assert run.verdict.violations == {}, account
    assert run.caller.failed == 0 and run.caller_code == 0, account
    assert run.stop_codes == (0, 0), account
