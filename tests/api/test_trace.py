"""TraceBuffer: messages filed under their call, bounded in calls, messages and text; followers."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pytest
import trio

from switchd import otp
from switchd.api import MAX_TEXT, TraceBuffer
from switchd.sip import Method, Request, Response, make_request, make_response, serialize
from switchd.switch import SipTraced, b_leg_key

AT = datetime(2026, 12, 2, 6, 35, 46, 798_000, tzinfo=UTC)


def invite(call_id: str, *, body: bytes = b"") -> Request:
    return make_request(Method.INVITE, "sip:100@127.0.0.1:5060", from_="<sip:alice@127.0.0.1>;tag=a1",
                        to="<sip:100@127.0.0.1>", sent_by="127.0.0.1:5061", call_id=call_id, body=body,
                        contact="<sip:alice@127.0.0.1:5061;transport=tcp>")


def traced(message: Request | Response, direction: str = "in") -> SipTraced:
    return SipTraced(AT, direction, "127.0.0.1:5061", "tcp", message, serialize(message))  # type: ignore[arg-type]


async def test_a_call_starts_at_the_callers_invite_and_its_answers_are_filed_under_it() -> None:
    buffer = TraceBuffer(calls=10, messages=10)
    call = invite("c1@host")
    buffer.record(traced(call))
    buffer.record(traced(make_response(call, 180, to_tag="t1"), "out"))
    ladder = buffer.ladder("c1@host")
    assert ladder is not None
    assert [(m.direction, m.leg, m.summary) for m in ladder] == [
        ("in", "a", "INVITE sip:100@127.0.0.1:5060"), ("out", "a", "180 Ringing")]
    assert ladder[0].text.startswith("INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\n")


async def test_messages_that_belong_to_no_call_are_not_kept() -> None:
    buffer = TraceBuffer(calls=10, messages=10)
    options = make_request(Method.OPTIONS, "sip:127.0.0.1", from_="<sip:p@h>;tag=x", to="<sip:127.0.0.1>",
                           sent_by="127.0.0.1:5061", call_id="ping-1")
    assert buffer.record(traced(options)) is None
    assert buffer.record(traced(invite("c1@host"), "out")) is None  # we never send a caller an INVITE
    assert buffer.ladder("ping-1") is None


async def test_a_b_leg_is_filed_under_the_call_whose_session_placed_it_even_after_the_session_ended() -> None:
    buffer = TraceBuffer(calls=10, messages=10)
    buffer.record(traced(invite("a-leg@host")))

    async def session(task_status: trio.TaskStatus[otp.Pid] = trio.TASK_STATUS_IGNORED) -> None:
        otp.register("call:a:a-leg@host", otp.self_pid())
        otp.join(b_leg_key("b-leg@switch"))
        task_status.started(otp.self_pid())
        await otp.receive()

    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(otp.Process.start_link, session))
        b_invite = invite("b-leg@switch")
        buffer.record(traced(b_invite, "out"))
        otp.send(pid, "exit")
    buffer.record(traced(make_response(b_invite, 200, to_tag="gw"), "in"))  # the session is gone now
    ladder = buffer.ladder("a-leg@host")
    assert ladder is not None and [(m.leg, m.summary[:6]) for m in ladder] == [
        ("a", "INVITE"), ("b", "INVITE"), ("b", "200 OK")]


async def test_the_oldest_call_and_the_oldest_messages_make_room_and_text_is_cut() -> None:
    buffer = TraceBuffer(calls=2, messages=3)
    for n in range(3):
        buffer.record(traced(invite(f"c{n}")))
    assert buffer.ladder("c0") is None and buffer.ladder("c2") is not None
    call = invite("c2")
    for status in (100, 180, 183, 200):
        buffer.record(traced(make_response(call, status, to_tag="t"), "out"))
    assert [m.summary[:3] for m in buffer.ladder("c2") or []] == ["180", "183", "200"]
    buffer.record(traced(invite("big", body=b"x" * (MAX_TEXT * 2))))
    [big] = buffer.ladder("big") or []
    assert len(big.text.encode()) < MAX_TEXT + 100 and big.text.endswith("more bytes not kept]")


async def test_a_follower_gets_new_messages_and_is_dropped_when_it_falls_behind() -> None:
    buffer = TraceBuffer(calls=10, messages=10, follow_queue=2)
    everything = buffer.follow(None)
    one = buffer.follow("c1")
    buffer.record(traced(invite("c1")))
    buffer.record(traced(invite("c2")))
    assert one.messages.receive_nowait().call_id == "c1"
    assert [everything.messages.receive_nowait().call_id for _ in range(2)] == ["c1", "c2"]
    for n in range(3):  # nobody reads `everything` now: the third does not fit
        buffer.record(traced(invite(f"d{n}")))
    assert everything.lagged and buffer.followers == 1
    with pytest.raises(trio.EndOfChannel):
        for _ in range(3):
            everything.messages.receive_nowait()
    one.finish()
    assert buffer.followers == 0
