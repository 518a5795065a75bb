"""CallSession when a connection under the call goes away: the caller's, or a gateway's.

A transaction on a lost connection ends at once (RFC 3261 §17.1.4, §8.1.3.1), so the session exits
at the moment of the loss, not at Timer F (64*T1 = 32 s) later. Who ended the call is read from
the caller's connection's exit reason: "normal" is the caller gone, "shutdown" is its supervisor
stopping it (the node's shutdown). Every test runs on the MockClock with exact virtual times.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial

import trio
from trio.testing import MockClock

from switchd import otp
from switchd.billing import CdrAnswer, Disposition, HangupParty
from switchd.otp import Pid
from switchd.sip import Method
from switchd.switch import CarriesCall, Outbound

from ._call_harness import SETTINGS, Bench, Phone, Wire, answer_on, bench, caller_invite, ring_on, wire


async def _connection(out: Wire) -> None:
    """A caller's connection process that only its supervisor ends (its exit is then "shutdown")."""
    while True:
        msg = await otp.receive()
        if isinstance(msg, Outbound):
            out.put(wire(msg.message))


async def call_on_a_supervised_connection(b: Bench, number: str) -> tuple[Phone, Pid]:
    """As `Bench.call`, but the caller's connection is a TEMPORARY child of "connections", as in the node."""
    if otp.whereis("connections") is None:
        await b.nursery.start(partial(otp.DynamicSupervisor.start_link, name="connections"))
    caller_wire = Wire()
    conn = await otp.start_child("connections", otp.ChildSpec(
        id="conn", start=partial(otp.Process.start_link, _connection, caller_wire), restart=otp.Restart.TEMPORARY))
    invite = caller_invite(number)
    return Phone(invite, conn, caller_wire), await b.start_session(invite, conn)


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


async def test_a_caller_whose_connection_dies_before_its_ack_is_failed_as_an_unacked_200_is(
        autojump_clock: MockClock) -> None:
    """One rule (docs/billing.md): an answer the caller never confirmed with its ACK is not billable,
    whether the 200 went unanswered for 64*T1 or the caller's connection went first."""
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 200)
        await phone.expect(200)
        b.kill_connection(phone)  # before any ACK
        await gw1.expect_request(Method.ACK)
        gw1.respond(await gw1.expect_request(Method.BYE), 200)
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause, closed.sip_code) == (
            Disposition.FAILED, HangupParty.CALLER, "connection_lost", 200)


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


# --- the caller's connection stopped by its supervisor: the node's shutdown ---------------------------


async def test_a_callers_connection_shut_down_by_its_supervisor_ends_an_answered_call_as_the_switch(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await call_on_a_supervised_connection(b, "4420")
        await phone.expect(100)
        await answer_on(b, phone, "gw1")
        await trio.sleep(20.0)
        await otp.terminate_child("connections", phone.conn)
        gw1 = b.link("gw1")
        gw1.respond(await gw1.expect_request(Method.BYE), 200)
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 20.0
        assert phone.wire.empty()  # no BYE to a connection that is gone
        closed = b.close(phone.call_id)
        [answered] = b.steps(phone.call_id, CdrAnswer)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.SWITCH, "shutdown")
        assert closed.end_at - answered.at == timedelta(seconds=20.0)


async def test_a_callers_connection_shut_down_before_the_answer_cancels_the_b_leg_as_the_switch(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await call_on_a_supervised_connection(b, "4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await ring_on(b, phone, "gw1")
        await trio.sleep(4.0)
        await otp.terminate_child("connections", phone.conn)
        cancel = await gw1.expect_request(Method.CANCEL)
        assert cancel.branch == invite.branch
        gw1.respond(cancel, 200)
        gw1.respond(invite, 487)
        await gw1.expect_request(Method.ACK)
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == 4.0
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.sip_code, closed.hangup_by, closed.hangup_cause) == (
            Disposition.FAILED, 503, HangupParty.SWITCH, "shutdown")


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


# --- the session attaches itself to its caller's connection ---------------------------------------


async def test_a_session_attaches_itself_to_its_callers_connection_once_when_it_starts(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        caller_wire, attached = Wire(), Wire()

        async def connection() -> None:
            while True:
                msg = await otp.receive()
                if isinstance(msg, CarriesCall):
                    attached.put(msg.session)
                elif isinstance(msg, Outbound):
                    caller_wire.put(wire(msg.message))

        conn = await b.nursery.start(otp.Process.start_link, connection)
        invite = caller_invite("4420")
        pid = await b.start_session(invite, conn)
        phone = Phone(invite, conn, caller_wire)
        await phone.expect(100)
        assert await attached.next() == pid
        await answer_on(b, phone, "gw1")
        assert attached.empty()  # one message per call, not per SIP message
