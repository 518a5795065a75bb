"""CallSession: whole calls through a session, with the caller, gateways, billing and events around it.

Every test runs on the MockClock and asserts the exact virtual times of what the session did.
The bench (`_call_harness`) plays the caller's connection and the gateway links; the Router and
the calls supervisor are the real ones.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from switchd import otp
from switchd.billing import CdrAnswer, CdrOpen, CdrProgress, Disposition, HangupParty
from switchd.sip import Dialog, Method, make_response
from switchd.switch import (
    CallAnswered,
    CallEnded,
    CallFailover,
    CallProgress,
    CallSetup,
    Candidate,
    CostFn,
    PriorityWeight,
    a_leg_name,
    router_child_spec,
    swap_policy,
)

from ._call_harness import (
    ANSWER_SDP,
    SDP,
    SETTINGS,
    TABLE,
    answer,
    answer_on,
    bench,
    caller_hangs_up,
    ring_on,
)


async def test_an_answered_call_is_bridged_and_the_caller_hangs_up(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        assert invite.call_id != phone.call_id and invite.body == SDP
        assert invite.uri.user == "4420" and invite.from_.tag != phone.invite.from_.tag

        await trio.sleep(1.0)
        gw1.respond(invite, 180)
        ringing = await phone.expect(180)
        await trio.sleep(2.0)
        gw1.respond(invite, 200, body=ANSWER_SDP)
        ok = await phone.expect(200)
        assert ok.to.tag == ringing.to.tag and ok.body == ANSWER_SDP
        assert trio.current_time() == 3.0

        phone.ack(ok)
        ack = await gw1.expect_request(Method.ACK)
        assert ack.call_id == invite.call_id and ack.to.tag == "gwtag" and ack.cseq.seq == invite.cseq.seq

        await trio.sleep(30.0)
        await caller_hangs_up(gw1, phone)
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 33.0

        [opened] = b.steps(phone.call_id, CdrOpen)
        assert opened.callee == "4420" and opened.caller == "alice" and opened.a_to_tag == ok.to.tag
        [answered] = b.steps(phone.call_id, CdrAnswer)
        closed = b.close(phone.call_id)
        assert closed.disposition is Disposition.ANSWERED and closed.hangup_by is HangupParty.CALLER
        assert closed.end_at - answered.at == timedelta(seconds=30.0)
        assert answered.at - opened.setup_at == timedelta(seconds=3.0)
        assert (closed.gateway, closed.b_call_id, closed.b_attempts) == ("gw1", invite.call_id, 1)
        assert closed.sip_code == 200
        assert len(b.steps(phone.call_id, CdrProgress)) == 1

        events = await b.flush_events()
        assert [type(e) for e in events] == [CallSetup, CallProgress, CallAnswered, CallEnded]
        assert all(e.call_id == phone.call_id for e in events)
        assert events[2].setup_time == 3.0 and events[3].duration == 30.0


async def test_a_call_that_goes_well_logs_nothing_at_info(autojump_clock: MockClock,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="switchd")  # an operator's level: node events, not each call
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        await answer_on(b, phone, "gw1")
        await caller_hangs_up(b.link("gw1"), phone)
        assert await b.exited(pid) == "normal"
        assert b.close(phone.call_id).disposition is Disposition.ANSWERED
    assert [r.getMessage() for r in caplog.records if getattr(r, "call_id", None) == phone.call_id] == []


async def test_the_callee_hanging_up_sends_a_bye_to_the_caller(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await answer_on(b, phone, "gw1")

        await trio.sleep(45.0)
        bye = gw1.bye(invite)
        await gw1.expect_response(200)
        caller_bye = await phone.expect_request(Method.BYE)
        assert phone.dialog is not None
        assert caller_bye.call_id == phone.call_id and caller_bye.from_.tag == phone.dialog.remote_tag
        phone.answer(caller_bye)
        assert await b.exited(pid) == "normal"

        closed = b.close(phone.call_id)
        [answered] = b.steps(phone.call_id, CdrAnswer)
        assert closed.disposition is Disposition.ANSWERED and closed.hangup_by is HangupParty.CALLEE
        assert closed.end_at - answered.at == timedelta(seconds=45.0)
        assert bye.call_id == invite.call_id
        assert otp.whereis(a_leg_name(phone.call_id)) is None


async def test_a_busy_callee_is_relayed_to_the_caller_and_billed_busy(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        await trio.sleep(0.5)
        gw1.respond(invite, 486)
        ack = await gw1.expect_request(Method.ACK)  # the client transaction ACKs the non-2xx
        assert ack.branch == invite.branch
        await phone.expect(100)
        busy = await phone.expect(486)
        assert busy.to.tag is not None
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.sip_code) == (Disposition.BUSY, 486)
        assert closed.hangup_by is HangupParty.CALLEE
        assert closed.end_at - b.steps(phone.call_id, CdrOpen)[0].setup_at == timedelta(seconds=0.5)
        assert b.link("gw2").out.empty()


async def test_a_503_from_the_first_gateway_fails_over_to_the_second(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        first = await gw1.expect_request(Method.INVITE)
        await trio.sleep(0.2)
        gw1.respond(first, 503, headers=[("Retry-After", "30")])  # shorter than the 60 s the call may wait
        await gw1.expect_request(Method.ACK)
        second = await answer_on(b, phone, "gw2")
        assert second.call_id != first.call_id and second.body == SDP
        assert trio.current_time() == 0.2
        await caller_hangs_up(b.link("gw2"), phone)
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.gateway, closed.b_attempts) == (Disposition.ANSWERED, "gw2", 2)
        assert closed.b_call_id == second.call_id
        failover = [e for e in await b.flush_events() if isinstance(e, CallFailover)]
        assert [(f.gateway, f.next_gateway, f.attempt) for f in failover] == [("gw1", "gw2", 2)]
        assert failover[0].reason.startswith("503")


async def test_an_unreachable_gateway_fails_over_whether_its_link_is_missing_or_reports_failure(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        # "down" has no link process at all: the session fails over at once
        phone, _ = await b.call("9123")
        await phone.expect(100)
        await answer_on(b, phone, "gw2")
        # gw1's link reports the connection refused
        other, _ = await b.call("4420")
        await other.expect(100)
        invite = await b.link("gw1").expect_request(Method.INVITE)
        b.link("gw1").fail(invite)
        await answer_on(b, other, "gw2")
        assert trio.current_time() == 0.0
        events = await b.flush_events()
        reasons = [e.reason for e in events if isinstance(e, CallFailover)]
        assert reasons == ["gateway down: no connection process", "gateway gw1: connection refused"]


async def test_a_gateway_that_never_answers_is_failed_over_at_timer_b(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, _ = await b.call("4420")
        await phone.expect(100)
        await b.link("gw1").expect_request(Method.INVITE)
        await answer_on(b, phone, "gw2")
        assert trio.current_time() == 32.0  # 64*T1
        events = await b.flush_events()
        assert [e.reason for e in events if isinstance(e, CallFailover)] == ["no response (Timer B)"]


async def test_a_503_asking_for_longer_than_the_call_can_wait_is_relayed_not_failed_over(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 503, headers=[("Retry-After", "120")])
        await phone.expect(100)
        relayed = await phone.expect(503)
        assert relayed.headers.get("Retry-After") == "120"
        assert await b.exited(pid) == "normal"
        assert b.link("gw2").out.empty()
        assert b.close(phone.call_id).disposition is Disposition.CONGESTION


async def test_a_number_without_a_route_gets_404(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("5550100")
        await phone.expect(100)
        await phone.expect(404)
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.sip_code, closed.gateway) == (Disposition.NO_ROUTE, 404, None)


async def test_when_every_gateway_fails_the_caller_gets_503(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        for name in ("gw1", "gw2"):
            link = b.link(name)
            invite = await link.expect_request(Method.INVITE)
            await trio.sleep(1.0)
            link.respond(invite, 500)
        await phone.expect(100)
        await phone.expect(503)
        assert trio.current_time() == 2.0
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.sip_code, closed.b_attempts) == (Disposition.CONGESTION, 503, 2)
        assert closed.hangup_cause == "all_gateways_failed"


async def test_a_caller_cancel_gets_200_and_487_and_the_b_leg_is_cancelled(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await ring_on(b, phone, "gw1")
        await trio.sleep(4.0)
        phone.cancel()
        await phone.expect(200)  # to the CANCEL
        await phone.expect(487)  # to the INVITE
        cancel = await gw1.expect_request(Method.CANCEL)
        assert cancel.call_id == invite.call_id and cancel.branch == invite.branch
        gw1.respond(cancel, 200)
        gw1.respond(invite, 487)
        await gw1.expect_request(Method.ACK)  # the 487 is absorbed: the transaction ACKs it
        assert await b.exited(pid) == "normal"
        assert phone.wire.empty()
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.sip_code) == (Disposition.CANCELLED, 487)
        assert closed.hangup_by is HangupParty.CALLER
        assert closed.end_at - b.steps(phone.call_id, CdrOpen)[0].setup_at == timedelta(seconds=4.0)


async def test_a_cancel_before_the_gateway_sent_any_1xx_waits_for_its_1xx(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        phone.cancel()
        await phone.expect(100)
        await phone.expect(200)
        await phone.expect(487)
        await trio.sleep(1.0)
        assert gw1.out.empty()  # RFC 3261 §9.1: no CANCEL before a provisional response
        gw1.respond(invite, 100)
        cancel = await gw1.expect_request(Method.CANCEL)
        gw1.respond(cancel, 200)
        gw1.respond(invite, 487)
        await gw1.expect_request(Method.ACK)
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 1.0


async def test_no_answer_in_time_cancels_the_b_leg_and_gives_the_caller_480(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await ring_on(b, phone, "gw1")
        await phone.expect(480)
        assert trio.current_time() == 60.0
        cancel = await gw1.expect_request(Method.CANCEL)
        gw1.respond(cancel, 200)
        gw1.respond(invite, 487)
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.sip_code) == (Disposition.NO_ANSWER, 480)
        assert closed.hangup_by is HangupParty.SWITCH


async def test_a_b_leg_that_ignores_our_cancel_is_given_up_after_64_t1(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 180)
        await trio.sleep(1.0)
        phone.cancel()
        await gw1.expect_request(Method.CANCEL)
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 1.0 + 32.0


async def test_the_maximum_call_duration_hangs_up_both_legs(autojump_clock: MockClock) -> None:
    settings = replace(SETTINGS, max_call_duration=600.0)
    async with bench(settings=settings) as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        await trio.sleep(2.0)
        await answer_on(b, phone, "gw1")
        gw1 = b.link("gw1")
        caller_bye = await phone.expect_request(Method.BYE)
        callee_bye = await gw1.expect_request(Method.BYE)
        assert trio.current_time() == 602.0
        phone.answer(caller_bye)
        gw1.respond(callee_bye, 200)
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.SWITCH, "max_duration")
        [answered] = b.steps(phone.call_id, CdrAnswer)
        assert closed.end_at - answered.at == timedelta(seconds=600.0)


async def test_the_200_is_retransmitted_until_the_ack_and_then_no_more(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, _ = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 200)
        times = []
        for _ in range(3):
            ok = await phone.expect(200)
            times.append(trio.current_time())
        assert times == [0.0, 0.5, 1.5]  # T1, then 2*T1 apart (RFC 3261 §13.3.1.4)
        phone.ack(ok)
        await gw1.expect_request(Method.ACK)
        await trio.sleep(100.0)
        assert phone.wire.empty()


async def test_a_200_the_caller_never_acks_ends_with_bye_on_both_legs(autojump_clock: MockClock) -> None:
    settings = replace(SETTINGS, retransmit_2xx=False)
    async with bench(settings=settings) as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 200)
        ok = await phone.expect(200)
        caller_bye = await phone.expect_request(Method.BYE)  # retransmit_2xx=False: the 200 went out once
        assert trio.current_time() == 32.0 and caller_bye.to.tag == ok.from_.tag
        ack = await gw1.expect_request(Method.ACK)  # the callee's 2xx is ACKed before its BYE
        bye = await gw1.expect_request(Method.BYE)
        assert ack.cseq.seq == invite.cseq.seq and bye.cseq.seq == invite.cseq.seq + 1
        gw1.respond(bye, 200)
        phone.answer(caller_bye)
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_cause) == (Disposition.FAILED, "ack_timeout")


async def test_a_caller_bye_whose_ack_was_lost_confirms_the_answer_and_is_billed(autojump_clock: MockClock) -> None:
    """Over UDP the caller's ACK can be lost; its BYE in the dialog shows it had our 200 (§13.2.2.4)."""
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 200)
        ok = await phone.expect(200)
        phone.dialog = Dialog.from_uac(phone.invite, ok)  # the caller ACKed, but the ACK never arrived
        await trio.sleep(0.25)
        bye = phone.bye()
        ack = await gw1.expect_request(Method.ACK)  # the callee's 2xx is ACKed before its BYE
        gw1_bye = await gw1.expect_request(Method.BYE)
        assert ack.cseq.seq == invite.cseq.seq
        gw1.respond(gw1_bye, 200)
        assert (await phone.expect(200)).cseq == bye.cseq
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.CALLER, "bye")
        [answered] = b.steps(phone.call_id, CdrAnswer)
        assert closed.end_at - answered.at == timedelta(seconds=0.25)


async def test_a_crashed_session_hangs_up_both_legs_and_closes_its_cdr_while_another_call_goes_on(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        doomed, doomed_pid = await b.call("4420")
        await doomed.expect(100)
        doomed_invite = await answer_on(b, doomed, "gw1")
        other, other_pid = await b.call("4421")
        await other.expect(100)
        other_invite = await answer_on(b, other, "gw1")

        await trio.sleep(10.0)
        await otp.stop(doomed_pid, RuntimeError("a bug in the session"))
        caller_bye = await doomed.expect_request(Method.BYE)
        callee_bye = await b.link("gw1").expect_request(Method.BYE)
        assert caller_bye.call_id == doomed.call_id and callee_bye.call_id == doomed_invite.call_id
        assert isinstance(await b.exited(doomed_pid), RuntimeError)
        closed = b.close(doomed.call_id)
        # The caller had confirmed the answer: the call was a call (billed to the crash), ended by the switch.
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.SWITCH, "crash")

        await trio.sleep(5.0)
        bye = await caller_hangs_up(b.link("gw1"), other)
        assert bye.call_id == other_invite.call_id
        assert await b.exited(other_pid) == "normal"
        closed = b.close(other.call_id)
        [answered] = b.steps(other.call_id, CdrAnswer)
        assert closed.disposition is Disposition.ANSWERED
        assert closed.end_at - answered.at == timedelta(seconds=15.0)


async def test_a_router_crash_during_a_call_ends_no_call_and_the_next_call_finds_the_new_router(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await ring_on(b, phone, "gw1")
        await otp.stop("router", RuntimeError("router bug"))  # its supervisor restarts it
        await answer(gw1, phone, invite)
        await caller_hangs_up(gw1, phone)
        assert await b.exited(pid) == "normal"
        assert b.close(phone.call_id).disposition is Disposition.ANSWERED

        following, _ = await b.call("4420")
        await following.expect(100)
        await gw1.expect_request(Method.INVITE)


async def test_a_call_that_finds_the_router_restarting_retries_once_and_is_routed(
        autojump_clock: MockClock) -> None:
    async with bench(router=False) as b:
        phone, _ = await b.call("4420")
        await phone.expect(100)
        await trio.sleep(0.1)
        await b.nursery.start(router_child_spec(TABLE).start)
        await b.link("gw1").expect_request(Method.INVITE)
        assert trio.current_time() == SETTINGS.retry_delay


async def test_a_billing_crash_during_a_call_loses_no_cdr_step(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        await answer_on(b, phone, "gw1")
        await otp.stop("billing", RuntimeError("store bug"))  # restarted by its supervisor
        await caller_hangs_up(b.link("gw1"), phone)
        assert await b.exited(pid) == "normal"
        assert [type(s).__name__ for s in b.steps(phone.call_id)] == ["CdrOpen", "CdrAnswer", "CdrClose"]


async def test_a_shutdown_answers_a_waiting_caller_503_and_cancels_the_b_leg(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await ring_on(b, phone, "gw1", 183)
        await otp.terminate_child("calls", pid)
        await phone.expect(503)
        cancel = await gw1.expect_request(Method.CANCEL)
        assert cancel.branch == invite.branch
        assert await b.exited(pid) == "shutdown"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.sip_code) == (Disposition.FAILED, 503)
        assert closed.hangup_cause == "shutdown"


async def test_a_shutdown_hangs_up_an_answered_call_which_stays_billable(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        await answer_on(b, phone, "gw1")
        await trio.sleep(20.0)
        await otp.terminate_child("calls", pid)
        await phone.expect_request(Method.BYE)
        await b.link("gw1").expect_request(Method.BYE)
        closed = b.close(phone.call_id)
        [answered] = b.steps(phone.call_id, CdrAnswer)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.SWITCH, "shutdown")
        assert closed.end_at - answered.at == timedelta(seconds=20.0)


async def test_calls_ended_by_a_planned_shutdown_log_at_info_and_a_crash_still_logs_an_error(
        autojump_clock: MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="switchd.switch._call_session")
    async with bench() as b:
        for _ in range(3):
            phone, pid = await b.call("4420")
            await phone.expect(100)
            await answer_on(b, phone, "gw1")
            await otp.terminate_child("calls", pid)  # what the drain does to the calls still up
            await phone.expect_request(Method.BYE)
            await b.link("gw1").expect_request(Method.BYE)
            assert await b.exited(pid) == "shutdown"
        phone, pid = await b.call("4420")
        await phone.expect(100)
        await otp.stop(pid, RuntimeError("session bug"))
        await b.exited(pid)
    exits = [(r.levelname, r.getMessage()) for r in caplog.records if "call session exits" in r.getMessage()]
    assert exits == [("INFO", "call session exits ('shutdown') with the call up")] * 3 + [
        ("ERROR", "call session exits (RuntimeError('session bug')) with the call up")]


class FussyPolicy(PriorityWeight):
    """A routing policy with a bug: it raises for one number."""

    name = "fussy"

    def order(self, candidates: Sequence[Candidate], number: str, *, rng: random.Random,
              cost_of: CostFn | None) -> list[Candidate]:
        if number == "4413":
            raise ValueError("no idea what to do with 4413")
        return super().order(candidates, number, rng=rng, cost_of=cost_of)


async def test_a_policy_that_raises_for_the_number_gets_the_caller_a_503_and_the_next_call_is_routed(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        await swap_policy(FussyPolicy)
        phone, pid = await b.call("4413")
        await phone.expect(100)
        await phone.expect(503)
        assert await b.exited(pid) == "normal"
        assert b.close(phone.call_id).hangup_cause == "router_unavailable"
        phone, _ = await b.call("4420")
        await phone.expect(100)
        await b.link("gw1").expect_request(Method.INVITE)


async def test_a_billing_store_that_stays_away_ends_no_call_and_gets_the_whole_cdr_when_back(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        await otp.terminate_child("top", "billing")
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        assert trio.current_time() == 0.0  # the call path never waits on billing
        gw1.respond(invite, 180)
        await phone.expect(180)  # held for the open, then sent anyway: the store is not there
        assert trio.current_time() == b.settings.open_wait
        await otp.restart_child("top", "billing")
        await answer(gw1, phone, invite)
        await caller_hangs_up(gw1, phone)
        assert await b.exited(pid) == "normal"
        assert [type(s).__name__ for s in b.steps(phone.call_id)] == ["CdrOpen", "CdrProgress", "CdrAnswer",
                                                                      "CdrClose"]


async def test_the_caller_hears_progress_once_its_cdr_is_open(autojump_clock: MockClock) -> None:
    async with bench() as b:
        b.pause_billing()
        phone, _ = await b.call("4420")
        await phone.expect(100)  # hop by hop: never held
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)  # towards the callee: never held
        gw1.respond(invite, 180)
        await trio.sleep(0.01)
        assert phone.wire.empty()  # the 180 waits for the open
        b.resume_billing()
        await phone.expect(180)
        assert trio.current_time() == 0.01


async def test_progress_waits_for_the_open_no_longer_than_open_wait(autojump_clock: MockClock) -> None:
    async with bench() as b:
        b.pause_billing()  # a database outage: the open is not durable for a long time
        phone, _ = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        gw1.respond(await gw1.expect_request(Method.INVITE), 180)
        await phone.expect(180)
        assert trio.current_time() == b.settings.open_wait  # setup is never hostage to the database


async def test_the_callers_200_waits_until_the_answer_is_durable_and_the_bill_starts_at_the_answer(
        autojump_clock: MockClock) -> None:
    """Write-ahead for the answer too: a node killed after the caller heard the 200 must not leave a
    CDR that recovery closes unanswered (unbilled)."""
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await ring_on(b, phone, "gw1")  # the 180 was heard: the open is durable
        b.pause_billing()
        answered_at = trio.current_time()
        gw1.respond(invite, 200)
        await trio.sleep(0.005)
        assert phone.wire.empty()  # the answer step is not durable yet
        b.resume_billing()
        phone.ack(await phone.expect(200))
        assert trio.current_time() == answered_at + 0.005
        await gw1.expect_request(Method.ACK)
        await trio.sleep(10.0)
        await caller_hangs_up(gw1, phone)
        assert await b.exited(pid) == "normal"
        [answered] = b.steps(phone.call_id, CdrAnswer)
        closed = b.close(phone.call_id)
        assert closed.end_at - answered.at == timedelta(seconds=10.005)  # from the callee's answer


async def test_the_maximum_call_duration_counts_from_the_answer_billing_starts_at_also_when_the_200_is_held(
        autojump_clock: MockClock) -> None:
    async with bench(settings=replace(SETTINGS, max_call_duration=600.0)) as b:
        b.pause_billing()
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 200)  # the answer (and the max-duration timer) from here; the 200 is held
        await trio.sleep(0.01)
        b.resume_billing()
        phone.ack(await phone.expect(200))
        await gw1.expect_request(Method.ACK)
        caller_bye = await phone.expect_request(Method.BYE)
        assert trio.current_time() == 600.0
        phone.answer(caller_bye)
        gw1.respond(await gw1.expect_request(Method.BYE), 200)
        assert await b.exited(pid) == "normal"
        [answered] = b.steps(phone.call_id, CdrAnswer)
        closed = b.close(phone.call_id)
        assert (closed.hangup_cause, closed.end_at - answered.at) == ("max_duration", timedelta(seconds=600.0))


async def test_the_200_to_the_callers_bye_waits_until_the_close_is_durable(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        await answer(gw1, phone, await ring_on(b, phone, "gw1"))
        await trio.sleep(10.0)
        b.pause_billing()
        phone.bye()
        bye = await gw1.expect_request(Method.BYE)  # the callee is hung up at once
        gw1.respond(bye, 200)
        await trio.sleep(0.2)
        assert phone.wire.empty()  # not before the close is durable
        assert [type(s).__name__ for s in b.steps(phone.call_id)][-1] == "CdrClose"
        b.resume_billing()
        await phone.expect(200)
        assert trio.current_time() == 10.2
        assert await b.exited(pid) == "normal"
        assert b.close(phone.call_id).disposition is Disposition.ANSWERED


async def test_a_final_error_to_the_caller_waits_until_the_close_is_durable(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, _ = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        b.pause_billing()
        gw1.respond(invite, 486)
        await trio.sleep(0.1)
        assert phone.wire.empty()
        b.resume_billing()
        await phone.expect(486)
        assert b.close(phone.call_id).disposition is Disposition.BUSY


async def test_a_close_that_never_becomes_durable_holds_the_callers_answer_only_for_cdr_timeout(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        await answer(gw1, phone, await ring_on(b, phone, "gw1"))
        b.pause_billing()
        start = trio.current_time()
        phone.bye()
        gw1.respond(await gw1.expect_request(Method.BYE), 200)
        await phone.expect(200)
        assert trio.current_time() == start + b.settings.cdr_timeout
        assert await b.exited(pid) == "normal"
        assert not b.queue.is_durable(b.queue.statistics().submitted)  # still queued, not dropped


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"contact": False}, 400),  # it could not make a dialog
    ({"max_forwards": 0}, 483),
    ({"uri": "http://10.0.0.9/4420"}, 416),
    ({"uri": "sip:10.0.0.9"}, 484),  # no number to dial
])
async def test_an_invite_the_dispatcher_refuses_gets_its_answer_alone_no_100_no_session_no_cdr(
        autojump_clock: MockClock, kwargs: dict[str, Any], status: int) -> None:
    async with bench() as b:
        phone = await b.dial("4420", **kwargs)
        await phone.expect(status)
        await trio.testing.wait_all_tasks_blocked()
        assert phone.wire.empty()  # no 100 Trying before it, nothing after it
        assert otp.whereis(a_leg_name(phone.call_id)) is None
        assert b.steps(phone.call_id) == [] and b.link("gw1").out.empty()


async def test_the_b_leg_counts_hops_down(autojump_clock: MockClock) -> None:
    async with bench() as b:
        await b.call("4420", max_forwards=5)
        assert (await b.link("gw1").expect_request(Method.INVITE)).max_forwards == 4


async def test_a_200_racing_our_cancel_is_acked_and_hung_up(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 180)
        phone.cancel()
        cancel = await gw1.expect_request(Method.CANCEL)
        gw1.respond(cancel, 200)
        gw1.respond(invite, 200)  # the callee answered before it saw the CANCEL
        await gw1.expect_request(Method.ACK)
        bye = await gw1.expect_request(Method.BYE)
        gw1.respond(bye, 200)
        assert await b.exited(pid) == "normal"
        for status in (100, 180, 200, 487):  # the caller saw its CANCEL answered and its INVITE terminated
            await phone.expect(status)
        assert b.close(phone.call_id).disposition is Disposition.CANCELLED


@pytest.mark.parametrize(("uri", "callee", "b_user"), [
    ("tel:+44-20-7946-0000", "+442079460000", "442079460000"),  # route "uk" is written in digits
    ("sip:+44.20.7946.0000@10.0.0.9;user=phone", "+442079460000", "442079460000"),
    ("tel:4420#1;phone-context=+44", "4420#1", "4420%231"),  # a dialled '#' is escaped on the B-leg
])
async def test_a_tel_uri_is_routed_on_its_number(autojump_clock: MockClock, uri: str, callee: str,
                                                 b_user: str) -> None:
    async with bench() as b:
        phone, pid = await b.call(callee, uri=uri)
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        assert str(invite.uri) == f"sip:{b_user}@127.0.0.1:5071;transport=tcp"
        assert invite.to.uri.user == b_user
        [opened] = b.steps(phone.call_id, CdrOpen)
        assert opened.callee == callee
        await answer(gw1, phone, invite)
        await caller_hangs_up(gw1, phone)
        assert await b.exited(pid) == "normal"


async def test_a_gateway_answer_with_a_contact_we_cannot_use_fails_over_instead_of_crashing_the_call(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        bad = make_response(invite, 200, to_tag="gwtag", headers=[("Contact", "<sip:@@bad>")])
        gw1.deliver(bad)
        await answer_on(b, phone, "gw2")  # failed over, as after a 502
        await caller_hangs_up(b.link("gw2"), phone)
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.gateway, closed.b_attempts) == (Disposition.ANSWERED, "gw2", 2)
