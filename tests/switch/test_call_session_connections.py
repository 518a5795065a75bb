"""CallSession when a connection under the call goes away: the caller's, or a gateway's.

A transaction on a lost connection ends at once (RFC 3261 §17.1.4, §8.1.3.1), so the session exits
at the moment of the loss, not at Timer F (64*T1 = 32 s) later. Every test runs on the MockClock
with exact virtual times.
"""

from __future__ import annotations

from dataclasses import replace

import trio
from trio.testing import MockClock

from switchd.billing import Disposition, HangupParty
from switchd.sip import Method, Request

from ._call_harness import SETTINGS, Bench, Phone, bench


async def answer_on(b: Bench, phone: Phone, gateway: str) -> Request:
    """The call reaches `gateway`, which answers; the caller ACKs. Returns the B-leg INVITE."""
    link = b.link(gateway)
    invite = await link.expect_request(Method.INVITE)
    link.respond(invite, 200)
    phone.ack(await phone.expect(200))
    await link.expect_request(Method.ACK)
    return invite


# --- the caller's connection closed by the caller ---------------------------------------------------


async def test_when_the_callers_connection_dies_the_b_leg_is_hung_up(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        await answer_on(b, phone, "gw1")
        await trio.sleep(5.0)
        b.kill_connection(phone)
        bye = await b.link("gw1").expect_request(Method.BYE)
        b.link("gw1").respond(bye, 200)
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 5.0
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.CALLER, "connection_lost")


async def test_a_caller_that_vanishes_instead_of_answering_our_bye_ends_the_session_at_that_moment(
        autojump_clock: MockClock) -> None:
    async with bench(settings=replace(SETTINGS, max_call_duration=10.0)) as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        await answer_on(b, phone, "gw1")
        await phone.expect_request(Method.BYE)  # the maximum call duration: BYE on both legs
        gw1 = b.link("gw1")
        gw1.respond(await gw1.expect_request(Method.BYE), 200)
        assert trio.current_time() == 10.0
        await trio.sleep(3.0)
        b.kill_connection(phone)  # instead of the 200 to our BYE
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 13.0  # not 10 + 32 (Timer F of our BYE)
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.SWITCH, "max_duration")


# --- a gateway's connection lost under our BYE or CANCEL ---------------------------------------------


async def test_a_gateway_connection_lost_under_our_bye_ends_the_session_at_that_moment(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        await answer_on(b, phone, "gw1")
        phone.bye()
        await phone.expect(200)
        gw1 = b.link("gw1")
        bye = await gw1.expect_request(Method.BYE)
        await trio.sleep(2.0)
        gw1.fail(bye, "connection lost: closed by the peer")  # instead of the 200 to our BYE
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 2.0  # not 32 (Timer F of our BYE)
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.CALLER, "bye")


async def test_a_gateway_connection_lost_under_our_cancel_ends_the_session_at_that_moment(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 180)
        phone.cancel()
        await gw1.expect_request(Method.CANCEL)
        await trio.sleep(1.5)
        gw1.fail(invite, "connection lost: connection reset")  # neither the 200 to the CANCEL nor the 487
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 1.5  # not 32 (Timer F of the CANCEL, Timer B of the INVITE)
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.CANCELLED, HangupParty.CALLER, "cancel")
