"""Random in-dialog traffic from both ends of an answered call never crashes its session.

Each seed plays a call through the real session: both ends send re-INVITEs, UPDATEs, INFO,
MESSAGE, OPTIONS, NOTIFY and REFER at random moments, cross each other, answer what they get
with random statuses (or not at all), ACK a 2xx or forget to, lose a dialog (481) and let time
pass, until the caller hangs up. Whatever happens, the session ends "normal" (never by an
exception: a LegStateError would be a transition missing from the table) with exactly one CDR
close, and every request it got from either end was answered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from switchd import otp
from switchd.billing import CdrClose
from switchd.sip import Dialog, Method, Request, Response
from switchd.switch import a_leg_name

from ._call_harness import Link, Phone, answer_on, bench

HOLD = b"v=0\r\no=x 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"
METHODS = [Method.INVITE, Method.INVITE, Method.UPDATE, Method.INFO, Method.MESSAGE, Method.OPTIONS,
           Method.NOTIFY, Method.REFER]
STATUSES = [200, 200, 200, 202, 415, 481, 486, 488, 491, 500]


@dataclass
class End:
    """One end of the call: how it sends, what it sent, what it still has to answer or ACK."""

    name: str
    dialog: Dialog
    sent: dict[tuple[int, str], Request] = field(default_factory=dict)  # by CSeq: what it is owed an answer to
    to_answer: list[Request] = field(default_factory=list)
    to_ack: list[Response] = field(default_factory=list)


def _send(end: End, phone: Phone, gw: Link, message: Request | Response) -> bool:
    """Send `message` from `end` to the session; False when the session is gone (nobody gets it)."""
    if otp.whereis(a_leg_name(phone.call_id)) is None:
        return False
    if end.name == "caller":
        phone.send(message)
    else:
        gw.deliver(message)
    return True


def _answer(end: End, phone: Phone, gw: Link, request: Request, status: int) -> None:
    body = HOLD if status < 300 and request.method in (Method.INVITE, Method.UPDATE) else b""
    if end.name == "caller":
        if otp.whereis(a_leg_name(phone.call_id)) is not None:
            phone.answer(request, status, body=body)
    else:
        gw.respond(request, status, body=body)


def _take(end: End, message: Request | Response) -> None:
    if isinstance(message, Request):
        if message.method != Method.ACK:
            end.to_answer.append(message)
        return
    sent = end.sent.get((message.cseq.seq, str(message.cseq.method)))
    if sent is None or message.status < 200:
        return
    del end.sent[(message.cseq.seq, str(message.cseq.method))]
    if sent.method == Method.INVITE and message.status < 300:
        end.to_ack.append(message)


async def _drain(phone: Phone, gw: Link, caller: End, callee: End) -> None:
    await trio.testing.wait_all_tasks_blocked()
    while not phone.wire.empty():
        _take(caller, await phone.wire.next())
    while not gw.out.empty():
        _take(callee, await gw.out.next())


def _ack(end: End, phone: Phone, gw: Link, ok: Response) -> None:
    ack = end.dialog.make_request(Method.ACK)  # it sent an INVITE: the 2xx answers one
    ack.headers.set("CSeq", f"{ok.cseq.seq} ACK")
    _send(end, phone, gw, ack)


async def _step(rng: random.Random, phone: Phone, gw: Link, caller: End, callee: End) -> None:
    end = rng.choice([caller, callee])
    action = rng.random()
    if action < 0.35:
        method = rng.choice(METHODS)
        body = HOLD if method in (Method.INVITE, Method.UPDATE) and rng.random() < 0.8 else b""
        if end.dialog.terminated:
            return
        request = end.dialog.make_request(method, body=body,
                                          headers=[("Content-Type", "application/sdp")] if body else [])
        if _send(end, phone, gw, request):
            end.sent[(request.cseq.seq, str(method))] = request
    elif action < 0.75 and end.to_answer:
        request = end.to_answer.pop(rng.randrange(len(end.to_answer)))
        status = rng.choice(STATUSES)
        _answer(end, phone, gw, request, status)
    elif action < 0.9 and end.to_ack:
        _ack(end, phone, gw, end.to_ack.pop(0))
    else:
        await trio.sleep(rng.choice([0.0, 0.1, 1.0, 5.0, 40.0]))
    await _drain(phone, gw, caller, callee)


@pytest.mark.parametrize("seed", range(24))
async def test_random_in_dialog_traffic_from_both_ends_never_crashes_the_session(
        autojump_clock: MockClock, seed: int) -> None:
    rng = random.Random(seed)
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        invite = await answer_on(b, phone, "gw1")
        gw = b.link("gw1")
        assert phone.dialog is not None
        callee_dialog = gw.dialogs[invite.call_id]
        callee_dialog.confirm()
        caller, callee = End("caller", phone.dialog), End("callee", callee_dialog)
        for _ in range(30):
            await _step(rng, phone, gw, caller, callee)
        if not caller.dialog.terminated:
            _send(caller, phone, gw, caller.dialog.make_request(Method.BYE))
        for _ in range(100):  # answer everything (BYEs included) until the session is gone
            for end in (caller, callee):
                for request in end.to_answer:
                    _answer(end, phone, gw, request, 200)
                end.to_answer.clear()
                for ok in end.to_ack:
                    _ack(end, phone, gw, ok)
                end.to_ack.clear()
            await trio.sleep(1.0)
            await _drain(phone, gw, caller, callee)
            if otp.whereis(a_leg_name(phone.call_id)) is None:
                break
        assert await b.exited(pid) == "normal"
        assert len(b.steps(phone.call_id, CdrClose)) == 1
        for end in (caller, callee):  # every request the session got was answered
            assert not end.sent, f"{end.name}: no answer to {[str(r.cseq) for r in end.sent.values()]}"
