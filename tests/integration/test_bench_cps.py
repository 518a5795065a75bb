"""The issue-16 harness end to end, as small as it goes: bench/cps.py --only switchd, two steps of a few calls.

It starts its own switchd (on free ports, so it does not need the bench kit's 5060/5070), climbs two
low rungs with SIPp, and must print them clean with one closed CDR per call, the highest clean
rate, and — when tcpdump is installed (CI installs it) — the latency inside the node from the capture.
What is measured is not judged here (speed is for the benches); that the harness works is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration._sipp import free_tcp_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^switchd\s+(?P<rate>\d+)\s+(?P<calls>\d+)\s+(?P<ok>\d+)\s+(?P<failed>\d+)\s.*"
                 r"\s(?P<new>\d+)/(?P<open>\d+)\s+(?P<verdict>.+)$", re.MULTILINE)


def _run_cps(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(REPO / "bench" / "cps.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240, check=False)


def test_cps_quick_climbs_two_clean_steps_with_every_cdr_closed() -> None:
    require_binary("sipp")
    ports = f"{free_tcp_port()},{free_tcp_port()}"
    done = _run_cps("--quick", "--only", "switchd", "--steps", "5,10", "--seconds", "2", "--ports", ports)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.split("== summary")[1]
    rows = [m.groupdict() for m in ROW.finditer(summary)]
    assert [(r["rate"], r["calls"], r["ok"], r["failed"]) for r in rows] == [("5", "10", "10", "0"),
                                                                          ("10", "20", "20", "0")], summary
    assert [(r["new"], r["open"], r["verdict"]) for r in rows] == [("10", "0", "clean"), ("20", "0", "clean")]
    assert "switchd: highest clean rate 10 cps; CPU per call" in summary
    if shutil.which("tcpdump") is not None:
        paired = re.search(r"switchd\s+at 10 cps: INVITE in->out p50 \d+ .*\((\d+) calls paired\), 0 failed", summary)
        assert paired is not None and int(paired.group(1)) > 0, summary


def test_cps_refuses_other_ports_for_kamailio_and_a_daemon_that_refuses_workers() -> None:
    require_binary("sipp")
    refused = _run_cps("--ports", "15060,15070")
    assert refused.returncode == 2 and "need --only switchd" in refused.stderr
    ports = f"{free_tcp_port()},{free_tcp_port()}"
    workers = _run_cps("--quick", "--only", "switchd", "--steps", "5,10", "--seconds", "2", "--ports", ports,
                       "--workers", "2", "--no-wire")
    if workers.returncode == 2 and "refused `run --workers 2`" in workers.stderr:
        return  # this build's `switchd run` has no --workers: the harness says so clearly
    # exit 1 is a step that was not clean (p95 on a loaded box): judged by the benches, not here
    assert workers.returncode in (0, 1), workers.stdout + workers.stderr
    rows = [m.groupdict() for m in ROW.finditer(workers.stdout.split("== summary")[1])]
    assert rows, workers.stdout
    for row in rows:  # every call answered, one closed CDR each, counted over both workers' nodes
        assert (row["ok"], row["failed"], row["new"], row["open"]) == (row["calls"], "0", row["calls"], "0"), row
