"""SIPp over UDP through switchd (`python -m switchd run`), on either leg or both, and with loss.

    sipp (caller, -t u1) --UDP--> switchd 127.0.0.1:<udp port> --UDP--> sipp (callee, -t u1)

The gateways name their transport (``transport = "udp"``); the node listens on UDP with
``[sip] listen_udp``. SIPp's verdict is read from its statistics file; the CDRs from switchd's
SQLite file after it stopped (SIGTERM, drained), so every record it will ever write is there.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from switchd.billing import Cdr, CdrStatus, Disposition
from tests.conftest import require_binary
from tests.integration._daemon import GatewaySpec, RouteSpec, Switchd
from tests.integration._sipp import CallerRun, SippCallee, free_udp_port, run_caller
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

DIALLED = "15551234567"


def _udp_switchd(start_switchd: StartSwitchd, gateways: list[GatewaySpec], *,
                 routes: list[RouteSpec] | None = None) -> tuple[Switchd, str]:
    udp_port = free_udp_port()
    switchd = start_switchd(gateways, routes=routes, sip={"listen_udp": f"127.0.0.1:{udp_port}"})
    return switchd, f"127.0.0.1:{udp_port}"


def _one_closed_cdr_per_call(cdrs: list[Cdr], calls: int) -> None:
    assert len(cdrs) == calls, Counter(c.call_id for c in cdrs).most_common(3)
    assert len({c.call_id for c in cdrs}) == calls  # never a second CDR for a retransmitted INVITE
    assert {c.status for c in cdrs} == {CdrStatus.CLOSED}


def _report(run: CallerRun, switchd: Switchd) -> str:
    return f"SIPp caller: {run.stats}, exit {run.returncode}\n{run.errors[-3000:]}\n--- switchd ---\n{switchd.log()}"


def test_sipp_calls_over_udp_on_both_legs_are_answered_and_billed(start_switchd: StartSwitchd, tmp_path: Path) -> None:
    sipp = require_binary("sipp")
    callee = SippCallee(sipp, tmp_path, port=free_udp_port(), transport="u1")
    try:
        switchd, target = _udp_switchd(start_switchd, [GatewaySpec("gw1", callee.port, "udp")])
        run = run_caller(sipp, tmp_path, target, calls=50, rate=25, service=DIALLED, transport="u1", timeout_s=60)
    finally:
        callee_stats = callee.stop()
    assert (run.stats.successful, run.stats.failed, run.returncode) == (50, 0, 0), _report(run, switchd)
    assert callee_stats.incoming == 50
    assert switchd.stop() == 0, switchd.log()
    cdrs = switchd.cdrs()
    _one_closed_cdr_per_call(cdrs, 50)
    assert {(c.disposition, c.sip_code, c.gateway) for c in cdrs} == {(Disposition.ANSWERED, 200, "gw1")}


def test_the_two_legs_of_a_call_may_differ_tcp_to_udp_and_udp_to_tcp(start_switchd: StartSwitchd,
                                                                        tmp_path: Path) -> None:
    sipp = require_binary("sipp")
    on_udp = SippCallee(sipp, tmp_path, port=free_udp_port(), transport="u1", name="gw_udp")
    on_tcp = SippCallee(sipp, tmp_path, port=free_udp_port(), name="gw_tcp")
    routes = [RouteSpec("1555", ("gw-udp",)), RouteSpec("1666", ("gw-tcp",))]
    try:
        switchd, udp_target = _udp_switchd(start_switchd, [GatewaySpec("gw-udp", on_udp.port, "udp"),
                                                           GatewaySpec("gw-tcp", on_tcp.port)], routes=routes)
        tcp_to_udp = run_caller(sipp, tmp_path, switchd.target, calls=10, rate=20, service="15551234567",
                                name="tcp_caller", timeout_s=30)
        udp_to_tcp = run_caller(sipp, tmp_path, udp_target, calls=10, rate=20, service="16661234567",
                                transport="u1", name="udp_caller", timeout_s=30)
    finally:
        udp_stats, tcp_stats = on_udp.stop(), on_tcp.stop()
    for run in (tcp_to_udp, udp_to_tcp):
        assert (run.stats.successful, run.stats.failed) == (10, 0), _report(run, switchd)
    assert (udp_stats.incoming, tcp_stats.incoming) == (10, 10)
    assert switchd.stop() == 0, switchd.log()
    cdrs = switchd.cdrs()
    _one_closed_cdr_per_call(cdrs, 20)
    assert Counter((c.gateway, c.disposition) for c in cdrs) == {
        ("gw-udp", Disposition.ANSWERED): 10, ("gw-tcp", Disposition.ANSWERED): 10}


def test_with_a_tenth_of_the_callers_messages_lost_every_call_ends_cleanly_with_one_cdr(
        start_switchd: StartSwitchd, tmp_path: Path) -> None:
    sipp = require_binary("sipp")
    callee = SippCallee(sipp, tmp_path, port=free_udp_port(), transport="u1")
    calls = 100
    try:
        switchd, target = _udp_switchd(start_switchd, [GatewaySpec("gw1", callee.port, "udp")])
        run = run_caller(sipp, tmp_path, target, calls=calls, rate=20, service=DIALLED, transport="u1",
                         extra=["-lost", "10", "-recv_timeout", "40000"], timeout_s=120)
    finally:
        callee.stop()
    assert run.stats.successful + run.stats.failed == calls, _report(run, switchd)
    assert retransmissions(tmp_path / "uac_stat.csv") > 0  # the loss happened, and was recovered from
    assert run.stats.successful >= calls * 9 // 10, _report(run, switchd)  # loss costs a retransmission, not a call
    assert switchd.stop() == 0, switchd.log()
    cdrs = switchd.cdrs()
    _one_closed_cdr_per_call(cdrs, calls)  # every call reached the node, once, and ended there
    assert {c.disposition for c in cdrs} <= {Disposition.ANSWERED, Disposition.FAILED, Disposition.CANCELLED}
    log = switchd.stderr_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and "crashed" not in log, log[-5000:]


def retransmissions(stats: Path) -> int:
    """The cumulative Retransmissions counter of a SIPp statistics file."""
    with stats.open(newline="", encoding="latin-1") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    return int(dict(zip(rows[0], rows[-1], strict=False))["Retransmissions(C)"])
