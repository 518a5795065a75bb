"""The seeded mutation fuzzer (bench/fuzz.py --udp) against a live `python -m switchd run`, over UDP.

The same 2,000 messages as the TCP run (seed 13), each one datagram to the node's UDP address
from one of four sockets. The node must stay up: after every 200 messages and at the end a clean
OPTIONS over UDP is answered 200 within 1 s (sent again after 0.5 s, as a UDP client does), the
daemon keeps its PID, and its log shows no crash of any process that is not a call session, no
supervisor that gave up and no traceback outside the call at fault; after SIGTERM it exits 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_fuzz_live import CI_SEED, MESSAGES, run_fuzz

pytestmark = pytest.mark.integration


def test_2000_fuzzed_datagrams_leave_the_node_up_answering_and_without_a_crash_outside_the_call_at_fault(
    tmp_path: Path,
) -> None:
    summary, run, report = run_fuzz(CI_SEED, tmp_path, "--udp")
    assert summary["faults"] == {}, report  # no crash, gave-up or traceback outside a call session
    assert summary["messages"] >= MESSAGES * 99 // 100, report  # all but those too large for one datagram
    assert summary["probes"] >= MESSAGES // 200 + 1, report  # every checkpoint's clean OPTIONS got its 200
    assert summary["probe_latency_max"] < 1.0, report
    assert summary["node_deaths"] == 0 and summary["exit_status"] == 0, report
    assert summary["failures"] == [] and run.returncode == 0, report
    assert summary["responses"].get("400", 0) > 0, report  # the edge answered over UDP too
