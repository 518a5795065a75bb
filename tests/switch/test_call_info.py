"""Calls from outside their sessions: listing them, reading one, and the operator's hang-up."""

from __future__ import annotations

from datetime import timedelta

import trio
from trio.testing import MockClock

from switchd.billing import CdrOpen, Disposition, HangupParty
from switchd.sip import Method
from switchd.switch import CallState, a_leg_of, call_info, hangup_call, list_calls

from ._call_harness import answer_on, bench, ring_on


async def test_an_answered_call_hung_up_by_the_operator_gets_bye_on_both_legs_and_its_cdr_says_so(
    autojump_clock: MockClock,
) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await answer_on(b, phone, "gw1")
        await trio.sleep(20.0)

        assert hangup_call(phone.call_id)
        bye = await gw1.expect_request(Method.BYE)
        assert bye.call_id == invite.call_id
        gw1.respond(bye, 200)
        caller_bye = await phone.expect_request(Method.BYE)
        phone.answer(caller_bye)
        assert await b.exited(pid) == "normal"

        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.OPERATOR, "operator")
        assert closed.end_at - b.steps(phone.call_id, CdrOpen)[0].setup_at == timedelta(seconds=20.0)


async def test_a_ringing_call_hung_up_by_the_operator_is_cancelled_and_the_caller_gets_487(
    autojump_clock: MockClock,
) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await ring_on(b, phone, "gw1")

        assert hangup_call(phone.call_id)
        await phone.expect(487)
        cancel = await gw1.expect_request(Method.CANCEL)
        assert cancel.branch == invite.branch
        gw1.respond(cancel, 200)
        gw1.respond(invite, 487)
        await gw1.expect_request(Method.ACK)
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.sip_code, closed.hangup_by) == (
            Disposition.CANCELLED, 487, HangupParty.OPERATOR)


async def test_hanging_up_a_call_that_is_not_in_flight_says_so(autojump_clock: MockClock) -> None:
    async with bench():
        assert not hangup_call("no-such-call@example")
        assert await call_info("no-such-call@example") is None


async def test_calls_in_flight_are_listed_with_their_state_parties_and_legs(autojump_clock: MockClock) -> None:
    async with bench() as b:
        ringing, _ = await b.call("4420")
        await ringing.expect(100)
        await ring_on(b, ringing, "gw1")
        await trio.sleep(3.0)
        answered, _ = await b.call("7001")
        await answered.expect(100)
        await answer_on(b, answered, "gw1")
        await trio.sleep(2.0)

        count, calls = await list_calls()
        assert count == 2
        first, second = calls
        assert (first.call_id, first.state, first.callee, first.gateway) == (
            ringing.call_id, CallState.RINGING, "4420", "gw1")
        assert (first.duration, first.billable, first.answered_at) == (5.0, 0.0, None)
        assert [(leg.gateway, leg.attempt, leg.state) for leg in first.legs] == [("gw1", 1, "ringing")]
        assert (second.state, second.caller, second.duration, second.billable) == (
            CallState.ANSWERED, "alice", 2.0, 2.0)
        assert second.answered_at is not None and second.answered_at == second.started_at
        assert [leg.state for leg in second.legs] == ["answered"]

        assert (await list_calls(limit=1))[0] == 2 and len((await list_calls(limit=1))[1]) == 1
        one = await call_info(answered.call_id)
        assert one is not None and one.pid == second.pid and one.state is CallState.ANSWERED
        assert a_leg_of(second.legs[0].call_id) == answered.call_id
        assert a_leg_of(answered.call_id) is None  # an A-leg is no B-leg
