"""CallSession: whole calls through a session, with the caller, gateways, billing and events around it.

Every test runs on the MockClock and asserts the exact virtual times of what the session did.
The bench (`_call_harness`) plays the caller's connection and the gateway links; the Router and
the calls supervisor are the real ones.
"""

from __future__ import annotations

from datetime import timedelta

import trio
from trio.testing import MockClock

from switchd import otp
from switchd.billing import CdrAnswer, CdrOpen, CdrProgress, Disposition, HangupParty
from switchd.sip import Method
from switchd.switch import (
    CallAnswered,
    CallEnded,
    CallProgress,
    CallSetup,
    a_leg_name,
)

from ._call_harness import ANSWER_SDP, SDP, bench


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
        phone.bye()
        await phone.expect(200)
        bye = await gw1.expect_request(Method.BYE)
        gw1.respond(bye, 200)
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 33.0

        [opened] = b.steps(phone.call_id, CdrOpen)
        assert opened.callee == "4420" and opened.caller == "alice" and opened.a_to_tag == ok.to.tag
        [answered] = b.steps(phone.call_id, CdrAnswer)
        closed = b.close(phone.call_id)
        assert closed.disposition is Disposition.ANSWERED and closed.hangup_by is HangupParty.CALLER
        assert closed.end_at - answered.at == timedelta(seconds=30.0)
        assert answered.at - opened.setup_at == timedelta(seconds=3.0)
        assert (closed.gateway, closed.b_call_id, closed.b_attempts, closed.sip_code) == ("gw1", invite.call_id, 1, 200)
        assert len(b.steps(phone.call_id, CdrProgress)) == 1

        events = await b.flush_events()
        assert [type(e) for e in events] == [CallSetup, CallProgress, CallAnswered, CallEnded]
        assert all(e.call_id == phone.call_id for e in events)
        assert events[2].setup_time == 3.0 and events[3].duration == 30.0


async def test_the_callee_hanging_up_sends_a_bye_to_the_caller(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 200)
        await phone.expect(100)
        phone.ack(await phone.expect(200))
        await gw1.expect_request(Method.ACK)

        await trio.sleep(45.0)
        bye = gw1.bye(invite)
        await gw1.expect_response(200)
        caller_bye = await phone.expect_request(Method.BYE)
        assert caller_bye.call_id == phone.call_id and caller_bye.from_.tag == phone.dialog.remote_tag  # type: ignore[union-attr]
        phone.answer(caller_bye)
        assert await b.exited(pid) == "normal"

        closed = b.close(phone.call_id)
        [answered] = b.steps(phone.call_id, CdrAnswer)
        assert closed.disposition is Disposition.ANSWERED and closed.hangup_by is HangupParty.CALLEE
        assert closed.end_at - answered.at == timedelta(seconds=45.0)
        assert bye.call_id == invite.call_id
        assert otp.whereis(a_leg_name(phone.call_id)) is None
