"""SIPp through switchd: a real SIP tool on both sides, switchd (`python -m switchd run`) between.

    sipp (caller, -t t1) --TCP--> switchd 127.0.0.1:<port> --TCP--> sipp (callee, gateway 1 [, 2])

SIPp dials 15551234567 (+1 555 123 4567: the sample deck prices +1 at 0.01/min in 6 s steps),
routed by a catch-all route. SIPp's verdict (its statistics file) says what the caller and the
callee saw; the CDRs are read from switchd's SQLite file after it stopped (SIGTERM, drained), so
every record it will ever write is there.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from switchd.billing import Cdr, CdrStatus, Disposition, HangupParty
from tests.conftest import require_binary
from tests.integration._daemon import GatewaySpec, Switchd
from tests.integration._sipp import CallerRun, SippCallee, SippStats, free_tcp_port, run_caller
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

DIALLED = "15551234567"
E164 = "+15551234567"


def _caller_ok(run: CallerRun, calls: int, switchd: Switchd) -> None:
    assert (run.stats.successful, run.stats.failed) == (calls, 0), (
        f"SIPp caller: {run.stats}, exit {run.returncode}\n{run.errors[-3000:]}\n"
        f"--- switchd log ---\n{switchd.log()}")
    assert run.returncode == 0, run.errors[-3000:]


def _all_closed(cdrs: list[Cdr], calls: int) -> None:
    assert len(cdrs) == calls, [(c.call_id, c.disposition) for c in cdrs]
    assert {c.status for c in cdrs} == {CdrStatus.CLOSED}
    assert len({c.call_id for c in cdrs}) == calls  # one CDR per call, none twice


def _calls_through_switchd(start_switchd: StartSwitchd, tmp_path: Path, sipp: Path, callees: Sequence[SippCallee],
                           *, calls: int, rate: float, timeout_s: int, scenario: str = "uac",
                           hold_ms: int = 0) -> tuple[list[SippStats], list[Cdr]]:
    """SIPp's `calls` calls to DIALLED through a switchd whose gateways gw1, gw2... are `callees`, in order.

    The callees are stopped whatever happens. The caller must see every call succeed; then switchd
    is stopped (a clean drain: exit 0) and its CDRs must be all closed, one per call. Returns each
    callee's statistics, in order, and the CDRs.
    """
    try:
        switchd = start_switchd([GatewaySpec(f"gw{i}", callee.port) for i, callee in enumerate(callees, 1)])
        run = run_caller(sipp, tmp_path, switchd.target, scenario=scenario, calls=calls, rate=rate,
                         hold_ms=hold_ms, service=DIALLED, timeout_s=timeout_s)
    finally:
        callee_stats = [callee.stop() for callee in callees]
    _caller_ok(run, calls, switchd)
    assert switchd.stop() == 0, switchd.log()
    cdrs = switchd.cdrs()
    _all_closed(cdrs, calls)
    return callee_stats, cdrs


def test_500_sipp_calls_at_100_cps_are_all_answered_and_billed_for_their_hold(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    callee = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario="uas")
    [callee_stats], cdrs = _calls_through_switchd(start_switchd, tmp_path, sipp, [callee],
                                                  calls=500, rate=100, hold_ms=1000, timeout_s=60)
    assert callee_stats.incoming == 500
    assert {c.disposition for c in cdrs} == {Disposition.ANSWERED}
    assert {c.sip_code for c in cdrs} == {200}
    assert {c.callee for c in cdrs} == {E164}
    assert {c.gateway for c in cdrs} == {"gw1"}
    assert {c.hangup_by for c in cdrs} == {HangupParty.CALLER}
    # The caller hangs up 1 s after its ACK: talk time is the hold plus the ACK/BYE transit.
    billable = sorted(c.billable_ms or 0 for c in cdrs)
    assert 990 <= billable[0] and billable[-1] <= 1800, (billable[:3], billable[-3:])
    for cdr in cdrs:
        assert cdr.answer_at is not None and cdr.end_at is not None
        assert cdr.setup_at <= cdr.answer_at < cdr.end_at
    # +1 at 0.01 per minute, first and next increment 6 s: one second of talk bills 6 s, 0.001.
    assert {(c.rate_prefix, c.billed_seconds, c.cost, c.currency) for c in cdrs} == {
        ("1", 6, Decimal("0.001"), "USD")}


def test_a_sipp_caller_that_cancels_while_ringing_gets_487_and_a_cancelled_cdr(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    callee = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario="uas_ring.xml")
    [callee_stats], cdrs = _calls_through_switchd(start_switchd, tmp_path, sipp, [callee],
                                                  scenario="uac_cancel.xml", calls=5, rate=20, timeout_s=30)
    # the callee saw each INVITE, then the switch's CANCEL, and its 487 was ACKed
    assert (callee_stats.incoming, callee_stats.successful, callee_stats.failed) == (5, 5, 0)
    assert {(c.disposition, c.sip_code, c.hangup_by) for c in cdrs} == {
        (Disposition.CANCELLED, 487, HangupParty.CALLER)}
    for cdr in cdrs:
        assert cdr.progress_at is not None and cdr.answer_at is None
        assert (cdr.billed_seconds, cdr.cost) == (0, Decimal(0))


def test_a_busy_sipp_callee_is_relayed_486_and_the_cdr_says_busy(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    callee = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario="uas_busy.xml")
    [callee_stats], cdrs = _calls_through_switchd(start_switchd, tmp_path, sipp, [callee],
                                                  scenario="uac_busy.xml", calls=5, rate=20, timeout_s=30)
    assert (callee_stats.incoming, callee_stats.successful, callee_stats.failed) == (5, 5, 0)
    assert {(c.disposition, c.sip_code, c.b_attempts) for c in cdrs} == {(Disposition.BUSY, 486, 1)}
    assert {(c.billed_seconds, c.cost) for c in cdrs} == {(0, Decimal(0))}
    assert all(c.answer_at is None for c in cdrs)


def test_when_the_first_gateway_answers_503_every_call_fails_over_to_the_second(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    failing = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario="uas_unavailable.xml",
                         name="gw1")
    working = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario="uas", name="gw2")
    [failing_stats, working_stats], cdrs = _calls_through_switchd(
        start_switchd, tmp_path, sipp, [failing, working], calls=10, rate=20, hold_ms=200, timeout_s=30)
    # gateway 1 saw every INVITE and got the ACK for its 503; gateway 2 took every call
    assert (failing_stats.incoming, failing_stats.successful, failing_stats.failed) == (10, 10, 0)
    assert working_stats.incoming == 10
    assert {(c.disposition, c.sip_code, c.gateway, c.b_attempts) for c in cdrs} == {
        (Disposition.ANSWERED, 200, "gw2", 2)}


def test_a_sipp_callee_that_hangs_up_ends_the_call_and_the_cdr_says_the_callee_did(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    callee = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario="uas_hangup.xml", hold_ms=500)
    [callee_stats], cdrs = _calls_through_switchd(start_switchd, tmp_path, sipp, [callee],
                                                  scenario="uac_remote_hangup.xml", calls=5, rate=20, timeout_s=30)
    # the callee's BYE was answered 200 (by switchd, after the caller's 200 came back)
    assert (callee_stats.incoming, callee_stats.successful, callee_stats.failed) == (5, 5, 0)
    assert {(c.disposition, c.sip_code, c.hangup_by) for c in cdrs} == {
        (Disposition.ANSWERED, 200, HangupParty.CALLEE)}
    billable = sorted(c.billable_ms or 0 for c in cdrs)
    assert 490 <= billable[0] and billable[-1] <= 1200, billable
    assert {(c.billed_seconds, c.cost) for c in cdrs} == {(6, Decimal("0.001"))}
