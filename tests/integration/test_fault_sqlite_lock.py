"""A SQLite database locked for 30 s under SIPp load: calls go on, billing stays exact.

Exact billing (the lead's definition, checked per Call-ID of the caller's SIPp trace against the
CDRs by `_exact.check_exact`):

a. every call whose caller received any response other than 100 Trying has exactly one CDR; no
   Call-ID has two; no CDR is left `open` once the node has been stopped/restarted cleanly;
b. every call the caller saw end (a final non-2xx, its BYE answered, or our BYE it answered) has a
   `closed` (not `recovered`) CDR with the right disposition; answered ones billed their talk time
   (billable_ms within 150 ms of the hold the caller saw);
d. call setup latency (the caller's INVITE → 180/200) p99 during the outage < 50 ms, or within 1.5x the same run's p99 outside it (`_exact`, d).

Here: SIPp `uac` at 30 cps with a 1 s hold → switchd (SQLite) → SIPp `uas`, 40 s of calls; 5 s in,
another process holds BEGIN EXCLUSIVE on the database file for 30 s. SIPp must see 0 failed calls,
a, b and d must hold, and the node's log must have no per-step "not recorded" error (the store
spools what it cannot commit; nothing is refused or dropped).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._fault_load import SqliteLock, callee_for, gateway, run_through_outage
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration


def test_a_sqlite_file_locked_30s_under_30cps_fails_no_call_and_every_cdr_is_exact(
    start_switchd: StartSwitchd, tmp_path: Path,
) -> None:
    with callee_for(tmp_path) as callee:
        switchd = start_switchd(gateway(callee))
        database = Path(switchd.cfg.database_url.removeprefix("sqlite:///"))
        run = run_through_outage(start_switchd, tmp_path, switchd, callee, SqliteLock(database))

    not_recorded = [line for line in run.log.splitlines() if "not recorded" in line]
    account = f"{run.account()}\n{len(not_recorded)} 'not recorded' errors in the log, e.g. {not_recorded[:2]}"
    assert run.caller.failed == 0 and run.caller_code == 0, account
    assert run.verdict.violations == {}, account
    assert not not_recorded, account
    assert run.stop_codes == (0, 0), account
