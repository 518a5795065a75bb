"""SIPp through switchd as phones and carriers use it (issue 14, "Tests"): hold and resume with
re-INVITEs from either side, UPDATE, digest on INVITE (407) and REGISTER (401), a call to a
registered user, a UDP call with 10 % loss, and a REGISTER flood.

    sipp caller --TCP|UDP--> switchd 127.0.0.1:<port> --TCP|UDP--> sipp (a gateway, or a registered phone)

The scenarios are in `scenarios/` (each pair is checked SIPp to SIPp, without switchd, by
test_phones_scenarios.py); what they check of the SDP is in their headers. The gateway calls
dial 15551234567 (+1 555: 0.01/min in 6 s steps in the sample deck). CDRs are read after a
clean stop (SIGTERM, exit 0). What these tests assume of switchd's configuration, CLI and CDR
is in `_phones.py`.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from switchd.billing import Cdr, CdrStatus, Disposition, HangupParty
from tests.conftest import require_binary
from tests.integration._daemon import GatewaySpec, Switchd
from tests.integration._exact import check_exact
from tests.integration._phones import (
    FLOOD_BURST,
    FLOOD_CPS,
    FLOOD_LIMITS,
    REFUSED,
    SippRegistrant,
    UdpSippCallee,
    add_account,
    assert_no_secret,
    cdr_account,
    free_ports,
    options_status,
    phone_config,
    reinvites,
    start_phone_switchd,
)
from tests.integration._sipp import CallerRun, SippCallee, free_tcp_port, run_caller
from tests.integration._traces import read_trace
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

DIALLED = "15551234567"
CALLS = 3
HOLD_MS = 500
ALICE_PASSWORD = "alice-Secret-4411"
BOB_PASSWORD = "bob-Secret-9072"


def _caller_ok(run: CallerRun, calls: int, switchd: Switchd) -> None:
    assert (run.stats.successful, run.stats.failed, run.returncode) == (calls, 0, 0), (
        f"SIPp caller: {run.stats}, exit {run.returncode}\n{run.errors[-3000:]}\n"
        f"--- switchd log ---\n{switchd.log()}")


def _stopped_cdrs(switchd: Switchd, calls: int) -> list[Cdr]:
    """Stop switchd (a clean drain) and return its CDRs: closed, one per call."""
    assert switchd.stop() == 0, switchd.log()
    cdrs = switchd.cdrs()
    assert len(cdrs) == calls and len({c.call_id for c in cdrs}) == calls, [(c.call_id, c.disposition) for c in cdrs]
    assert {c.status for c in cdrs} == {CdrStatus.CLOSED}
    return cdrs


def _answered_and_billed(cdrs: list[Cdr], *, hangup_by: HangupParty = HangupParty.CALLER) -> None:
    """Each call answered, ended by `hangup_by`, billed for at least the caller's hold: one 6 s step."""
    assert {(c.disposition, c.sip_code, c.hangup_by) for c in cdrs} == {(Disposition.ANSWERED, 200, hangup_by)}
    billable = sorted(c.billable_ms or 0 for c in cdrs)
    assert HOLD_MS - 10 <= billable[0] and billable[-1] <= 5000, billable
    assert {(c.rate_prefix, c.billed_seconds, c.cost) for c in cdrs} == {("1", 6, Decimal("0.001"))}


def _gateway_calls(start_switchd: StartSwitchd, tmp_path: Path, *, caller: str, callee: str) -> list[Cdr]:
    """CALLS calls of the `caller` scenario through switchd to a SIPp gateway playing `callee`.

    Both sides must see every call succeed — each side's scenario checks the SDP the other
    sent it — and each call be answered and billed; returns the CDRs.
    """
    sipp = require_binary("sipp")
    gateway = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario=callee, name="gw1")
    try:
        switchd = start_switchd([GatewaySpec("gw1", gateway.port)])
        run = run_caller(sipp, tmp_path, switchd.target, scenario=caller, calls=CALLS, rate=10,
                         hold_ms=HOLD_MS, service=DIALLED, timeout_s=30)
    finally:
        stats = gateway.stop()
    _caller_ok(run, CALLS, switchd)
    assert (stats.incoming, stats.successful, stats.failed) == (CALLS, CALLS, 0), gateway.errors()[-3000:]
    cdrs = _stopped_cdrs(switchd, CALLS)
    _answered_and_billed(cdrs)
    return cdrs


def test_a_caller_holds_and_resumes_with_re_invites_the_callee_answers_each_and_the_cdr_counts_them(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    cdrs = _gateway_calls(start_switchd, tmp_path, caller="uac_hold.xml", callee="uas_held.xml")
    assert [reinvites(c) for c in cdrs] == [2] * CALLS


def test_a_callee_holds_and_resumes_the_caller_with_re_invites_relayed_back_across_the_b2bua(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    cdrs = _gateway_calls(start_switchd, tmp_path, caller="uac_held.xml", callee="uas_hold.xml")
    assert [reinvites(c) for c in cdrs] == [2] * CALLS


def test_update_changes_the_session_from_either_side_of_an_answered_call(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    _gateway_calls(start_switchd, tmp_path, caller="uac_update.xml", callee="uas_update.xml")


def test_an_invite_from_an_account_is_challenged_407_and_only_the_authenticated_one_reaches_the_gateway(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    gateway = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario="uas", name="gw1")
    try:
        cfg = phone_config(tmp_path / "switchd", [GatewaySpec("gw1", gateway.port)], domain=True)
        add_account(cfg, "alice", ALICE_PASSWORD)
        switchd = start_phone_switchd(start_switchd, cfg)
        alice = ["-key", "user", "alice", "-au", "alice"]
        run = run_caller(sipp, tmp_path, switchd.target, scenario="uac_auth.xml", calls=CALLS, rate=10,
                         hold_ms=HOLD_MS, service=DIALLED, timeout_s=30, extra=[*alice, "-ap", ALICE_PASSWORD])
        wrong = run_caller(sipp, tmp_path, switchd.target, scenario="uac_auth.xml", calls=1, rate=10,
                           service=DIALLED, timeout_s=30, extra=[*alice, "-ap", "not-the-password"],
                           name="wrong_password")
    finally:
        gateway_stats = gateway.stop()
    _caller_ok(run, CALLS, switchd)
    assert (wrong.stats.successful, wrong.stats.failed) == (0, 1), wrong.errors[-2000:]
    # the 407-challenged INVITEs and the one with a wrong password never reached the gateway
    assert gateway_stats.incoming == CALLS
    assert switchd.stop() == 0, switchd.log()
    cdrs = switchd.cdrs()
    billed = [c for c in cdrs if c.account == cdr_account("alice")]
    assert len(billed) == CALLS == len({c.call_id for c in billed}), [(c.call_id, c.account) for c in cdrs]
    assert {c.status for c in cdrs} == {CdrStatus.CLOSED}
    _answered_and_billed(billed)
    assert all(c.disposition is not Disposition.ANSWERED for c in cdrs if c not in billed)
    assert_no_secret(switchd, ALICE_PASSWORD)


def test_a_phone_registers_with_digest_and_a_call_to_its_user_reaches_its_contact(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    cfg = phone_config(tmp_path / "switchd", domain=True)  # no gateways: only users can be called
    add_account(cfg, "alice", ALICE_PASSWORD)
    add_account(cfg, "bob", BOB_PASSWORD)
    switchd = start_phone_switchd(start_switchd, cfg)
    alice = SippRegistrant(sipp, tmp_path, switchd.target, user="alice", password=ALICE_PASSWORD,
                           port=free_tcp_port())
    try:
        alice.wait_registered()
        # bob, authenticated, dials alice: sip:alice@127.0.0.1:<port>
        run = run_caller(sipp, tmp_path, switchd.target, scenario="uac_auth.xml", calls=2, rate=5,
                         hold_ms=HOLD_MS, service="alice", timeout_s=30, name="bob",
                         extra=["-key", "user", "bob", "-au", "bob", "-ap", BOB_PASSWORD])
        answered = alice.answered()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- switchd log ---\n{switchd.log()}") from None
    finally:
        alice.stop()
    _caller_ok(run, 2, switchd)
    assert len(answered) == 2, answered  # both calls were answered at alice's registered Contact
    cdrs = _stopped_cdrs(switchd, 2)
    assert {(c.account, c.callee_raw, c.disposition) for c in cdrs} == {
        (cdr_account("bob"), "alice", Disposition.ANSWERED)}
    assert all((c.billable_ms or 0) >= HOLD_MS - 10 for c in cdrs), [c.billable_ms for c in cdrs]
    assert_no_secret(switchd, ALICE_PASSWORD, BOB_PASSWORD)


def test_calls_over_udp_with_a_tenth_of_the_callers_messages_lost_end_cleanly_with_one_cdr_each(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    calls = 20
    gateway = UdpSippCallee(sipp, tmp_path, port=free_ports(), name="gw1")
    trace = tmp_path / "lossy_messages.log"
    try:
        cfg = phone_config(tmp_path / "switchd", [GatewaySpec("gw1", gateway.port)], udp=True,
                           udp_gateways=["gw1"])
        switchd = start_phone_switchd(start_switchd, cfg)
        # -lost 10: SIPp drops 10 % of what it sends and receives at random; it retransmits
        # (T1 500 ms) and so must switchd, on both of its transactions.
        run = run_caller(sipp, tmp_path, switchd.target, calls=calls, rate=10, hold_ms=200, service=DIALLED,
                         timeout_s=90, name="lossy",
                         extra=["-t", "u1", "-lost", "10", "-trace_msg", "-message_file", str(trace)])
    finally:
        gateway.stop()
    assert run.stats.successful + run.stats.failed == calls, run.stats
    # a UDP stack that recovers from loss loses a call only when one message is lost 6 times over
    assert run.stats.successful >= calls - 2, f"{run.stats}\n{run.errors[-3000:]}\n{switchd.log()}"
    assert switchd.alive(), switchd.log()
    assert switchd.stop() == 0, switchd.log()
    seen = read_trace([trace])
    cdrs = switchd.cdrs()
    assert {c.call_id for c in cdrs} <= set(seen), "a CDR for a call the caller never placed"
    # exact billing (_exact.py) but for the talk time: a lost 200 or BYE moves the caller's view
    # of it by a retransmission interval
    verdict = check_exact(seen, cdrs, setup=False)
    assert not {kind for kind in verdict.violations if kind != "misbilled"}, verdict.report()
    assert {c.status for c in cdrs} == {CdrStatus.CLOSED}
    assert {c.gateway for c in cdrs if c.disposition is Disposition.ANSWERED} == {"gw1"}


def test_a_register_flood_from_one_address_is_refused_by_the_limits_and_the_node_stays_up(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    sipp = require_binary("sipp")
    flood = 300
    cfg = phone_config(tmp_path / "switchd", domain=True, limits=FLOOD_LIMITS)
    add_account(cfg, "alice", ALICE_PASSWORD)
    switchd = start_phone_switchd(start_switchd, cfg)
    trace = tmp_path / "flood_messages.log"
    run = run_caller(sipp, tmp_path, switchd.target, scenario="uac_register_flood.xml", calls=flood, rate=300,
                     service="alice", timeout_s=60, name="flood",
                     extra=["-trace_msg", "-message_file", str(trace)])
    seen = read_trace([trace])
    answers = {call_id: [status for _, status, method in view.responses if method == "REGISTER" and status >= 200]
               for call_id, view in seen.items()}
    finals = Counter(statuses[0] for statuses in answers.values() if statuses)
    # each REGISTER was challenged (taken on) or refused by the limits, nothing else
    assert set(finals) <= {401} | REFUSED, f"{finals}\n{switchd.log()}"
    assert (len(answers), finals.total(), run.stats.successful) == (flood, flood, flood), (finals, run.stats)
    times = [at for view in seen.values() for at, _, _ in view.responses]
    span = max(times) - min(times)
    allowed = FLOOD_BURST + FLOOD_CPS * (span + 1.0)  # the bucket, refilled while the flood lasted
    assert finals[401] <= allowed, f"{finals} in {span:.2f}s: more than {allowed:g} taken on"
    assert sum(finals[s] for s in REFUSED) >= flood - allowed
    # the node is up: it answers, and stops cleanly
    assert switchd.alive(), switchd.log()
    assert options_status(switchd.sip_port) in {200, *REFUSED}
    assert switchd.stop() == 0, switchd.log()
