"""The phone scenarios are valid SIP conversations: each pair completes SIPp to SIPp, with no
switch between, and the SIPp helpers of `_phones.py` read what they should. So when a test of
test_phones_sipp.py fails, switchd is the one to look at."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration._phones import SippRegistrant, UdpSippCallee, free_ports
from tests.integration._sipp import SippCallee, free_tcp_port, run_caller
from tests.integration._traces import read_trace

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("caller", "callee", "keys"),
    [
        ("uac_hold.xml", "uas_held.xml", ()),
        ("uac_held.xml", "uas_hold.xml", ()),
        ("uac_update.xml", "uas_update.xml", ()),
        ("uac_auth.xml", "uas_challenge.xml", ("-key", "user", "alice", "-au", "alice", "-ap", "secret")),
    ],
)
def test_phone_scenario_pair_completes_directly(caller: str, callee: str, keys: tuple[str, ...],
                                                tmp_path: Path) -> None:
    sipp = require_binary("sipp")
    uas = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario=callee, hold_ms=100)
    try:
        run = run_caller(sipp, tmp_path, f"127.0.0.1:{uas.port}", scenario=caller, calls=3, rate=20,
                         hold_ms=100, extra=keys, timeout_s=30)
    finally:
        callee_stats = uas.stop()
    assert (run.stats.successful, run.stats.failed, run.returncode) == (3, 0, 0), run.errors
    assert (callee_stats.incoming, callee_stats.successful, callee_stats.failed) == (3, 3, 0), uas.errors()


def test_a_sipp_phone_registers_with_digest_to_a_sipp_registrar_and_answers_calls_to_its_contact(
    tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    registrar = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario="uas_registrar.xml", name="registrar",
                           extra=("-key", "user", "alice", "-key", "password", "secret"))
    alice = SippRegistrant(sipp, tmp_path, f"127.0.0.1:{registrar.port}", user="alice", password="secret",
                           port=free_tcp_port())
    try:
        alice.wait_registered()
        run = run_caller(sipp, tmp_path, f"127.0.0.1:{alice.port}", calls=3, rate=20, hold_ms=100,
                         service="alice", timeout_s=30)
        answered = alice.answered()
    finally:
        alice.stop()
        registrar_stats = registrar.stop()
    assert (registrar_stats.successful, registrar_stats.failed) == (1, 0), registrar.errors()
    assert (run.stats.successful, run.stats.failed) == (3, 0), run.errors
    assert len(answered) == 3, answered


def test_a_lossy_udp_call_trace_is_read_with_every_call_and_its_answer(tmp_path: Path) -> None:
    """What test_phones_sipp's lossy test reads of a `-lost` trace: every call with the answers
    that reached SIPp (a dropped answer is still written; a dropped request is not)."""
    sipp = require_binary("sipp")
    uas = UdpSippCallee(sipp, tmp_path, port=free_ports())
    trace = tmp_path / "lossy_messages.log"
    try:
        run = run_caller(sipp, tmp_path, f"127.0.0.1:{uas.port}", calls=20, rate=20, hold_ms=100, timeout_s=60,
                         extra=("-t", "u1", "-lost", "10", "-trace_msg", "-message_file", str(trace)))
    finally:
        uas.stop()
    # SIPp's own UAS does not recover from every loss: a call may time out, rarely two
    assert run.stats.successful + run.stats.failed == 20 and run.stats.successful >= 18, run.errors
    seen = read_trace([trace])
    assert len(seen) == 20 and all(view.invite_at is not None and view.responses for view in seen.values()), seen
    assert sum(view.answered_at is not None for view in seen.values()) >= run.stats.successful, seen
