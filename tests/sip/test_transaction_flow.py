"""A B2BUA's calls end to end through Part B: transactions, table, dialogs, 2xx retransmitter.

Every message crosses a "wire" (serialize, then parse_message), so what the builders and dialogs
produce is also proven to be valid SIP for the parser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from switchd.sip import (
    AckTimedOut,
    Dialog,
    InviteClientTransaction,
    InviteServerTransaction,
    Method,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Request,
    Response,
    Terminated,
    TimedOut,
    ToTransactionUser,
    TransactionOutput,
    TransactionTable,
    Transmit,
    Uas2xxRetransmitter,
    make_cancel,
    make_request,
    make_response,
    parse_message,
    parse_name_addr,
    serialize,
)

from ._sample_calls import request, response

ME = "<sip:switch@10.0.0.9:5060;transport=tcp>"


def wire(message: Request | Response) -> Request | Response:
    return parse_message(serialize(message))


@dataclass
class Leg:
    """What was written on one connection, parsed back."""

    sent: list[Request | Response] = field(default_factory=list)

    def act(self, outputs: Sequence[TransactionOutput | AckTimedOut]) -> list[TransactionOutput | AckTimedOut]:
        """Perform the Transmits; return the rest for the core."""
        rest: list[TransactionOutput | AckTimedOut] = []
        for out in outputs:
            if isinstance(out, Transmit):
                self.sent.append(wire(out.message))
            else:
                rest.append(out)
        return rest

    def statuses(self) -> list[int]:
        return [m.status for m in self.sent if isinstance(m, Response)]


@dataclass
class Call:
    """The A-leg (alice → switch) and the B-leg (switch → bob) of one call, as a core holds them."""

    table: TransactionTable = field(default_factory=TransactionTable)
    a: Leg = field(default_factory=Leg)
    b: Leg = field(default_factory=Leg)
    a_invite: Request = field(default_factory=request)
    b_invite: Request = field(
        default_factory=lambda: make_request(
            Method.INVITE, "sip:bob@192.0.2.4:5080", from_="<sip:alice@example.com>;tag=swB",
            to="<sip:bob@example.com>", sent_by="10.0.0.9:5060", contact=ME, call_id="bleg@10.0.0.9",
            branch="z9hG4bKbleg1",
        )
    )

    def start(self, now: float) -> tuple[InviteServerTransaction, InviteClientTransaction]:
        ist = InviteServerTransaction(self.a_invite)
        self.table.add(ist)
        self.a.act(ist.send_trying(now))
        ict = InviteClientTransaction(self.b_invite, now=now)
        self.table.add(ict)
        self.b.sent.append(wire(self.b_invite))  # the core writes the request itself
        return ist, ict

    def from_bob(self, message: Response, now: float) -> list[TransactionOutput | AckTimedOut]:
        txn = self.table.match_response(message)
        assert txn is not None
        rest = self.b.act(txn.receive(message, now))
        if Terminated() in rest:
            self.table.discard(txn)
        return rest


def test_an_answered_call_from_invite_to_bye() -> None:
    call = Call()
    ist, _ict = call.start(now=0.0)
    assert call.a.statuses() == [100]

    # bob rings: the core relays 180 to alice with its A-leg tag, both dialogs are early
    ringing = response(call.b_invite, 180, to_tag="bobtag")
    [relay] = call.from_bob(ringing, 0.2)
    assert relay == ToTransactionUser(ringing)
    b_leg = Dialog.from_uac(call.b_invite, ringing)
    a_leg = Dialog.from_uas(call.a_invite, "swA", contact=parse_name_addr(ME))
    call.a.act(ist.send_response(make_response(call.a_invite, 180, to_tag="swA", headers=[("Contact", ME)]), 0.2))

    # bob answers: ACK him through the B-leg dialog, answer alice, arm the 2xx retransmitter
    ok_b = response(call.b_invite, 200, to_tag="bobtag")
    assert call.from_bob(ok_b, 1.0) == [ToTransactionUser(ok_b), Terminated()]
    b_leg.receive_response(ok_b)
    call.b.sent.append(wire(b_leg.make_request(Method.ACK)))
    ok_a = make_response(call.a_invite, 200, to_tag="swA", headers=[("Contact", ME)])
    assert call.a.act(ist.send_response(ok_a, 1.0)) == [Terminated()]
    call.table.discard(ist)
    a_leg.confirm()
    rtx = Uas2xxRetransmitter(ok_a, now=1.0)
    assert len(call.table) == 0 and a_leg.confirmed and b_leg.confirmed

    # no ACK yet at +T1: the 2xx goes out again; then alice's ACK (a new branch) reaches the dialog
    assert rtx.next_deadline == 1.5
    call.a.act(rtx.handle_timeout(1.5))
    assert call.a.statuses() == [100, 180, 200, 200]
    ack = request(Method.ACK, branch="z9hG4bKack2xx", cseq_method="ACK", to_tag="swA")
    assert call.table.match_request(ack) is None and a_leg.matches(ack)
    assert rtx.acknowledge(ack) and rtx.next_deadline is None

    # alice hangs up: 200 to her BYE, a BYE to bob on the B-leg, bob's 200 ends it all
    bye_a = request(Method.BYE, branch="z9hG4bKbyeA", cseq=314160, to_tag="swA")
    assert call.table.match_request(bye_a) is None and a_leg.matches(bye_a)
    assert a_leg.receive_request(bye_a) is None
    nist = NonInviteServerTransaction(bye_a)
    call.a.act(nist.send_response(make_response(bye_a, 200), 5.0))
    bye_b = b_leg.make_request(Method.BYE)
    nict = NonInviteClientTransaction(bye_b, now=5.0)
    call.table.add(nict)
    call.b.sent.append(wire(bye_b))
    ok_bye = response(bye_b, 200)
    assert call.from_bob(ok_bye, 5.1) == [ToTransactionUser(ok_bye), Terminated()]

    assert [m.method for m in call.b.sent if isinstance(m, Request)] == ["INVITE", "ACK", "BYE"]
    sent_ack = call.b.sent[1]
    assert isinstance(sent_ack, Request) and sent_ack.cseq.seq == 1 and sent_ack.to.tag == "bobtag"
    assert call.a.statuses() == [100, 180, 200, 200, 200]
    assert a_leg.terminated and b_leg.terminated
    assert len(call.table) == 0 and call.table.next_deadline is None


def test_a_busy_callee_is_acked_by_the_transaction_and_relayed() -> None:
    call = Call()
    ist, _ict = call.start(now=0.0)
    busy = response(call.b_invite, 486, to_tag="bobtag")
    assert call.from_bob(busy, 0.3) == [ToTransactionUser(busy), Terminated()]
    [ack] = call.b.sent[1:]
    assert isinstance(ack, Request) and ack.method == Method.ACK and ack.branch == "z9hG4bKbleg1"

    call.a.act(ist.send_response(make_response(call.a_invite, 486, to_tag="swA"), 0.3))
    assert ist.next_deadline == 0.3 + 32.0  # Timer H waits for alice's ACK
    alice_ack = request(Method.ACK, cseq_method="ACK", to_tag="swA")  # same branch as her INVITE
    assert call.table.match_request(alice_ack) is ist
    assert ist.receive(alice_ack, 0.4) == [Terminated()]
    call.table.discard(ist)
    assert call.a.statuses() == [100, 486] and len(call.table) == 0


def test_a_caller_who_cancels_gets_200_and_487_and_bob_is_cancelled() -> None:
    call = Call()
    ist, _ict = call.start(now=0.0)
    call.from_bob(response(call.b_invite, 180, to_tag="bobtag"), 0.5)

    cancel = make_cancel(call.a_invite)  # as alice would build it
    assert call.table.match_request(cancel) is None
    assert call.table.match_cancel(cancel) is ist
    cancel_txn = NonInviteServerTransaction(cancel)
    call.a.act(cancel_txn.send_response(make_response(cancel, 200, to_tag="swA"), 2.0))
    call.a.act(ist.send_response(make_response(call.a_invite, 487, to_tag="swA"), 2.0))

    b_cancel = make_cancel(call.b_invite)
    b_cancel_txn = NonInviteClientTransaction(b_cancel, now=2.0)
    call.table.add(b_cancel_txn)
    call.b.sent.append(wire(b_cancel))
    assert call.from_bob(response(b_cancel, 200), 2.1)[-1] == Terminated()
    terminated = response(call.b_invite, 487, to_tag="bobtag")
    assert call.from_bob(terminated, 2.2) == [ToTransactionUser(terminated), Terminated()]

    assert call.a.statuses() == [100, 200, 487]
    assert [m.method for m in call.b.sent if isinstance(m, Request)] == ["INVITE", "CANCEL", "ACK"]
    assert call.table.match_request(request(Method.ACK, cseq_method="ACK", to_tag="swA")) is ist


def test_an_unanswered_b_leg_times_out_and_alice_gets_408() -> None:
    call = Call()
    ist, ict = call.start(now=0.0)
    assert call.table.next_deadline == 32.0
    [(txn, outputs)] = call.table.handle_timeout(32.0)
    assert txn is ict and outputs == [TimedOut("B"), Terminated()]
    call.a.act(ist.send_response(make_response(call.a_invite, 408, to_tag="swA"), 32.0))
    assert call.a.statuses() == [100, 408]
    assert call.table.next_deadline == 64.0  # Timer H on alice's INVITE


def test_a_2xx_nobody_acks_is_given_up_so_the_core_can_hang_up() -> None:
    ok = make_response(request(), 200, to_tag="swA", headers=[("Contact", ME)])
    rtx = Uas2xxRetransmitter(ok, now=0.0)
    outputs: list[object] = []
    while (deadline := rtx.next_deadline) is not None:
        outputs += rtx.handle_timeout(deadline)
    assert outputs[-1] == AckTimedOut(ok)
