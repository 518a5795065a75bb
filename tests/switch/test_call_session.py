"""CallSession: whole calls through a session, with the caller, gateways, billing and events around it.

Every test runs on the MockClock and asserts the exact virtual times of what the session did.
The bench (`_call_harness`) plays the caller's connection and the gateway links; the Router and
the calls supervisor are the real ones.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

import trio
import trio.testing
from trio.testing import MockClock

from switchd import otp
from switchd.billing import CdrAnswer, CdrOpen, CdrProgress, Disposition, HangupParty
from switchd.sip import Method
from switchd.switch import (
    CallAnswered,
    CallEnded,
    CallFailover,
    CallProgress,
    CallSetup,
    a_leg_name,
    router_child_spec,
)

from ._call_harness import (
    ANSWER_SDP,
    SDP,
    SETTINGS,
    TABLE,
    BillingRecorder,
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


async def test_a_crashed_session_hangs_up_both_legs_and_fails_its_cdr_while_another_call_goes_on(
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
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.FAILED, HangupParty.SWITCH, "crash")

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


class CrashingOnce(BillingRecorder):
    """A billing stand-in whose first incarnation crashes on the first request it gets."""

    async def handle_call(self, request: Any, caller: otp.Caller, state: list[Any]) -> otp.Reply[list[Any]]:
        if not any(s == "crashed" for s in state):
            state.append("crashed")
            raise RuntimeError("billing bug")
        return await super().handle_call(request, caller, state)


async def test_a_billing_store_that_crashes_under_a_cdr_step_is_retried_once_after_its_restart(
        autojump_clock: MockClock) -> None:
    steps: list[Any] = []
    spec = otp.ChildSpec(id="billing", start=partial(CrashingOnce.start_link, steps, name="billing"))
    async with bench(billing=spec) as b:
        phone, _ = await b.call("4420")
        await phone.expect(100)
        await b.link("gw1").expect_request(Method.INVITE)
        assert trio.current_time() == SETTINGS.retry_delay
        assert [type(s) for s in steps] == [str, CdrOpen]


async def test_a_billing_store_that_stays_away_ends_no_call_and_gets_the_whole_cdr_when_back(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        await otp.terminate_child("top", "billing")
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        assert trio.current_time() == SETTINGS.retry_delay  # tried, retried once, and routed anyway
        await otp.restart_child("top", "billing")
        await answer(gw1, phone, invite)
        await caller_hangs_up(gw1, phone)
        assert await b.exited(pid) == "normal"
        assert [type(s).__name__ for s in b.steps(phone.call_id)] == ["CdrOpen", "CdrAnswer", "CdrClose"]


async def test_an_invite_that_cannot_make_a_dialog_is_refused_400_without_a_cdr(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, _ = await b.call("4420", contact=False)
        await phone.expect(100)
        await phone.expect(400)
        await trio.testing.wait_all_tasks_blocked()
        assert otp.whereis(a_leg_name(phone.call_id)) is None  # it stopped (possibly before a monitor)
        assert b.steps(phone.call_id) == [] and b.link("gw1").out.empty()


async def test_an_invite_out_of_hops_is_refused_483_and_the_b_leg_counts_hops_down(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, _ = await b.call("4420", max_forwards=0)
        await phone.expect(100)
        await phone.expect(483)
        await trio.testing.wait_all_tasks_blocked()
        assert b.steps(phone.call_id) == [] and b.link("gw1").out.empty()
        phone, _ = await b.call("4420", max_forwards=5)
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


async def test_a_request_in_the_dialog_other_than_bye_gets_501(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, _ = await b.call("4420")
        await phone.expect(100)
        await answer_on(b, phone, "gw1")
        assert phone.dialog is not None
        phone.send(phone.dialog.make_request(Method.INFO))
        await phone.expect(501)
        phone.bye()
        await phone.expect(200)
