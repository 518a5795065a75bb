"""kill -9 of a loaded switchd, a restart on the same configuration: no call is lost or billed wrong.

Exact billing (the lead's definition, checked per Call-ID of the callers' SIPp traces against the
CDRs by `_exact.check_exact`):

a. every call whose caller received any response other than 100 Trying has exactly one CDR; no
   Call-ID has two; no CDR is left `open` once the node has been restarted and stopped cleanly;
b. every call the caller saw end (a final non-2xx, its BYE answered, or our BYE it answered) has a
   `closed` (not `recovered`) CDR with the right disposition; answered ones billed their talk time
   (billable_ms within 150 ms of the hold the caller saw) — so a BYE is answered only once its
   close is durable;
c. calls up at the kill -9 have `recovered` CDRs: ANSWERED with sip_code 200 if they were answered,
   ending no earlier than (kill time − billing.heartbeat_interval − 1 s), the interval read from
   the daemon's configuration (2 s by default), and not after the kill.

Here: two SIPp callers into one switchd (SQLite) whose gateway is a SIPp `uas` — 30 cps with a 1 s
hold, and 2 cps with an 8 s hold (calls up for seconds before the kill show whether recovery
bills them to the heartbeat or only to their answer). 6 s in, the node is killed with SIGKILL;
the callers lose their connection and stop (their traces say what each call saw). The node is
started again on the same configuration, 30 more calls go through it, and it is stopped cleanly.
In the second run another process holds BEGIN EXCLUSIVE on the database for the 3 s before the
kill: the calls that end then must not be answered before their close is durable (spooled).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.integration._exact import check_exact
from tests.integration._fault_load import RATE, Callers, SqliteLock, callee_again, callee_for, gateway
from tests.integration._traces import read_trace
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

LONG_HOLD_MS = 8000


@pytest.mark.parametrize("database", ["idle", "locked before the kill"])
def test_kill_9_under_load_then_a_restart_leaves_one_exact_cdr_per_call_and_bills_recovered_calls_to_the_heartbeat(
    database: str, start_switchd: StartSwitchd, tmp_path: Path,
) -> None:
    with callee_for(tmp_path) as callee, Callers(tmp_path) as callers:
        switchd = start_switchd(gateway(callee))
        heartbeat = float(getattr(switchd.cfg.config.billing, "heartbeat_interval", 2.0))
        lock = SqliteLock(Path(switchd.cfg.database_url.removeprefix("sqlite:///")))
        long = callers.start(switchd.target, calls=20, rate=2, hold_ms=LONG_HOLD_MS, name="long")
        short = callers.start(switchd.target, calls=RATE * 20, name="short")
        try:
            if database == "idle":
                time.sleep(6.0)
            else:
                time.sleep(3.0)
                lock.begin()
                time.sleep(3.0)
            kill_at = time.time()
            switchd.signal(signal.SIGKILL)
            killed = switchd.wait(10.0)
        finally:
            lock.end()
        # their connection gone, SIPp's callers abort (exit 255) or are stopped; their traces hold what they saw
        codes = (long.stop(), short.stop())
        # SIPp's uas may exit when its one connection is reset by the kill: the restarted node gets a new one
        callee.stop()
        with callee_again(callee, tmp_path):
            restarted = start_switchd.again(switchd)
            after = callers.start(restarted.target, calls=RATE, name="after")
            after_code = after.wait(60)
        stopped = restarted.stop(timeout=45.0)

    views = read_trace([long.trace_path, short.trace_path, after.trace_path])
    cdrs = restarted.cdrs()
    verdict = check_exact(views, cdrs, kill_at=kill_at, heartbeat=heartbeat, setup=False)
    up_at_kill = [v for v in views.values() if v.answered_at is not None and v.ended_at is None]
    account = (f"killed: exit {killed}; callers' exits {codes}, after the restart {after_code} "
               f"({after.stats()}); restarted node's exit {stopped}; {len(up_at_kill)} calls up at the kill\n"
               f"{verdict.report()}\n--- switchd log ---\n{restarted.log(tail=10)}")
    assert killed == -signal.SIGKILL, account
    assert verdict.violations == {}, account
    assert len(up_at_kill) >= 10, account  # the kill did catch calls in flight, long ones among them
    assert after_code == 0 and stopped == 0, account
