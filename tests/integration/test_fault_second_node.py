"""A second `switchd run` on the configuration of a node with calls in flight: refused, harmless.

Exact billing (the lead's definition, checked per Call-ID of the caller's SIPp trace against the
CDRs by `_exact.check_exact`):

a. every call whose caller received any response other than 100 Trying has exactly one CDR; no
   Call-ID has two; no CDR is left `open` once the node has been stopped cleanly;
b. every call the caller saw end (a final non-2xx, its BYE answered, or our BYE it answered) has a
   `closed` (not `recovered`) CDR with the right disposition; answered ones billed their talk time
   (billable_ms within 150 ms of the hold the caller saw).

Here: SIPp `uac` at 30 cps with a 3 s hold through a switchd (SQLite) to a SIPp `uas`. 4 s in, with
some 90 calls up, a second `python -m switchd run` is started on the same configuration file. It
must exit 2 within a few seconds, its stderr one line that names who holds the node (the first
node's PID), and touch nothing: none of the first node's open CDRs becomes `recovered`, and the
first node's later closes all land — every CDR exact by a and b.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from switchd.billing import CdrStatus
from tests.integration._exact import check_exact
from tests.integration._fault_load import RATE, Callers, callee_for, gateway
from tests.integration._traces import read_trace
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

FEW_SECONDS = 6.0


def test_a_second_switchd_run_on_the_same_config_exits_2_naming_the_holder_and_leaves_the_live_nodes_cdrs_alone(
    start_switchd: StartSwitchd, tmp_path: Path,
) -> None:
    with callee_for(tmp_path) as callee, Callers(tmp_path) as callers:
        first = start_switchd(gateway(callee))
        caller = callers.start(first.target, calls=RATE * 10, hold_ms=3000)
        time.sleep(4.0)
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "switchd", "run", "--config", str(first.cfg.path)],
            cwd=first.cfg.path.parent, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
        took = time.monotonic() - started
        open_meanwhile = sum(c.status is CdrStatus.OPEN for c in first.cdrs())
        caller_code = caller.wait()
        callee.stop()
        first_alive = first.alive()
        stopped = first.stop(timeout=45.0)

    views = read_trace([caller.trace_path])
    cdrs = first.cdrs()
    verdict = check_exact(views, cdrs, setup=False)
    recovered = [c.call_id for c in cdrs if c.status is CdrStatus.RECOVERED]
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    account = (f"second node: exit {second.returncode} after {took:.1f} s, {len(lines)} stderr lines:\n"
               + "\n".join(lines[:12]) + f"\nfirst node: pid {first.pid}, alive {first_alive}, exit {stopped}; "
               f"{open_meanwhile} CDRs open when the second stopped; caller {caller.stats()} exit {caller_code}; "
               f"{len(recovered)} recovered CDRs\n{verdict.report()}")
    assert second.returncode == 2 and took < FEW_SECONDS, account
    assert len(lines) == 1 and str(first.pid) in lines[0], account
    assert open_meanwhile > 0 and recovered == [], account  # the live node's open calls were left alone
    assert verdict.violations == {}, account
    assert first_alive and stopped == 0 and caller_code == 0, account
