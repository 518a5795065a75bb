"""How a CallSession sends on its legs: one path per leg, its transactions, and the write-ahead hold.

Everything a session puts on the wire goes through `send_on(data, leg, message)`:

* the caller's leg: `to_caller` — an `Outbound` to the caller's connection process, or held (in
  order) until the CDR step `cdr_gate` is durable (write-ahead, see `_call_cdr`);
* a B-leg: a request as `ToGateway` to the gateway's link (its absence comes back to the session
  as a `GatewayFailed`), a response (to a request the callee sent) as an `Outbound` to the
  connection that request came in on.

Every transaction a session starts is made by `client_transaction` or `server_transaction` and
put in the call's table; `feed` performs what a transaction asks (its Transmits, through
`send_on`) and hands the rest back. What a transport changes about either (timers, where an answer
goes) is decided here and nowhere else.
"""

from __future__ import annotations

import logging

import trio

from switchd.otp import NoProcess, self_pid, send
from switchd.sip import (
    ClientTransaction,
    Dialog,
    InviteClientTransaction,
    InviteServerTransaction,
    Method,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Request,
    Response,
    ServerTransaction,
    SipError,
    TimedOut,
    ToTransactionUser,
    TransactionOutput,
    Transmit,
    TransportFailed,
    make_cancel,
)

from ._call_legs import ALeg, BLeg, CallData, Leg, ack_for_2xx
from ._leg_state import LegEvent, LegState
from ._wire import GatewayFailed, ToGateway, deliver, gateway_name

log = logging.getLogger(__name__)


# -- transactions ---------------------------------------------------------------------------------


def client_transaction(data: CallData, request: Request) -> ClientTransaction:
    """The client transaction of `request`, sent now, in the call's table (INVITE or non-INVITE)."""
    if request.method == Method.INVITE:
        return invite_client_transaction(data, request)
    txn = NonInviteClientTransaction(request, now=trio.current_time(), timers=data.settings.timers,
                                     reliable=request.top_via.reliable)  # on UDP it retransmits itself
    data.txns.add(txn)
    return txn


def invite_client_transaction(data: CallData, invite: Request) -> InviteClientTransaction:
    """The client transaction of `invite`, sent now, in the call's table."""
    txn = InviteClientTransaction(invite, now=trio.current_time(), timers=data.settings.timers,
                                  reliable=invite.top_via.reliable)
    data.txns.add(txn)
    return txn


def server_transaction(data: CallData, request: Request) -> ServerTransaction:
    """The server transaction of `request`, which matched none, in the call's table."""
    if request.method == Method.INVITE:
        return invite_server_transaction(data, request)
    txn = NonInviteServerTransaction(request, timers=data.settings.timers)
    data.txns.add(txn)
    return txn


def invite_server_transaction(data: CallData, invite: Request) -> InviteServerTransaction:
    """The server transaction of `invite`, which matched none, in the call's table."""
    txn = InviteServerTransaction(invite, timers=data.settings.timers)
    data.txns.add(txn)
    return txn


def feed(data: CallData, txn: ClientTransaction | ServerTransaction,
         outputs: list[TransactionOutput]) -> list[TransactionOutput]:
    """Perform a transaction's Transmits, forget it once Terminated; return what the core must handle."""
    rest: list[TransactionOutput] = []
    for out in outputs:
        if isinstance(out, Transmit):
            leg = data.leg(out.message.call_id)
            if leg is not None:
                send_on(data, leg, out.message)
        elif isinstance(out, ToTransactionUser | TimedOut | TransportFailed):
            rest.append(out)
    if txn.terminated:
        data.txns.discard(txn)
    return rest


def fail_transactions(data: CallData, call_id: str) -> list[tuple[ClientTransaction, list[TransactionOutput]]]:
    """End at once every client transaction of `call_id`: the connection it was sent on is gone.

    A transport failure ends a client transaction when it happens, not at its timeout (RFC 3261
    §17.1.4, §8.1.3.1): no answer can come any more. Used when the caller's connection process
    exits (`call_id` is the A-leg's) and on a `GatewayFailed` (a B-leg's). Returns each transaction
    ended, now out of `data.txns`, with what it handed up (a relayed request's source is owed an answer).
    """
    failed = [t for t in data.txns if isinstance(t, ClientTransaction) and t.request.call_id == call_id]
    return [(txn, feed(data, txn, txn.transport_error())) for txn in failed]


# -- sending on a leg -------------------------------------------------------------------------------


def send_on(data: CallData, leg: Leg, message: Request | Response) -> None:
    """Put `message` on `leg`'s transport: the one way out of a session (see the module docstring)."""
    if isinstance(leg, ALeg):
        to_caller(data, message)
    elif isinstance(leg, BLeg) and isinstance(message, Request):
        to_gateway(data, leg, message)
    elif leg.conn is not None:
        deliver(leg.conn, message)  # a transport that is gone drops it, as in Erlang


def to_caller(data: CallData, message: Request | Response) -> None:
    """Send `message` to the caller, or hold it (in order) until the step `cdr_gate` is durable."""
    if data.caller_gone:
        return  # its connection process exited: there is nobody to send to
    if data.held or not data.settings.cdrs.is_durable(data.cdr_gate):
        if not data.held:
            data.held_since = trio.current_time()
        data.held.append(message)
        return
    deliver(data.conn, message)  # a transport that is gone drops it, as in Erlang


def release_caller(data: CallData, *, force: bool = False) -> int:
    """Send the held messages once `cdr_gate` is durable (or at once with `force`); how many went."""
    if not data.held or not (force or data.settings.cdrs.is_durable(data.cdr_gate)):
        return 0
    held, data.held, data.held_since = data.held, [], None
    for message in held:
        deliver(data.conn, message)
    return len(held)


def to_gateway(data: CallData, leg: BLeg, request: Request) -> None:
    """Send `request` to the B-leg's gateway; an unreachable one comes back as a GatewayFailed."""
    try:
        send(gateway_name(leg.gateway), ToGateway(request, self_pid()))
    except NoProcess:  # no connection process for that gateway: it is down
        send(self_pid(), GatewayFailed(leg.gateway, leg.call_id, "no connection process"))


# -- what the session does to its legs ----------------------------------------------------------------


def answer_caller(data: CallData, response: Response) -> None:
    """Send a response to the caller's INVITE through its server transaction; none after its final.

    The A-leg makes its transition (`_leg_state`): a 101-199 PROVISIONAL, a 2xx ANSWER, an error
    REJECT. A caller whose connection is gone is sent nothing (its leg went with it).
    """
    if data.ist.final_response is not None or data.caller_gone:
        return
    status = response.status
    if status > 100:  # 100 Trying is hop by hop: it makes no dialog
        event = LegEvent.PROVISIONAL if status < 200 else LegEvent.ANSWER if status < 300 else LegEvent.REJECT
        data.a.fire(event)
    feed(data, data.ist, data.ist.send_response(response, trio.current_time()))


def ack_leg(data: CallData, leg: Leg, body_from: Request | None = None) -> None:
    """ACK the 2xx the leg answered our INVITE with (the other leg's ACK body with it, if any)."""
    ack = ack_for_2xx(leg, body_from)
    if leg.can(LegEvent.ACK):
        leg.fire(LegEvent.ACK)
    send_on(data, leg, ack)


def hang_up_caller(data: CallData) -> None:
    """BYE the caller's dialog if it is established, unless the caller's connection is gone."""
    if not data.caller_gone:
        hang_up_leg(data, data.a)


def hang_up_leg(data: CallData, leg: Leg | None) -> None:
    """BYE an established leg (ACKing first a 2xx we owe an ACK for); CANCEL a B-leg still ringing."""
    if leg is None:
        return
    if leg.established and leg.dialog is not None:
        if leg.state is LegState.ANSWERED:
            if leg.rtx is None:  # the 2xx answered our INVITE: it is ACKed before the BYE
                ack_leg(data, leg)
            else:  # we answered theirs: its ACK no longer matters
                leg.rtx.stop()
                leg.rtx = None
        bye = leg.dialog.make_request(Method.BYE)
        leg.fire(LegEvent.BYE)
        client_transaction(data, bye)
        send_on(data, leg, bye)
    elif isinstance(leg, BLeg) and leg.pending:
        cancel_leg(data, leg)


def stop_retransmitting(data: CallData) -> None:
    """Stop retransmitting every 2xx of the call: it is being hung up. The retransmitters stay on
    their legs (done): a leg in ANSWERED with one is still a leg whose ACK we wait for, not owe."""
    for leg in (data.a, *data.legs.values()):
        if leg.rtx is not None:
            leg.rtx.stop()


def cancel_leg(data: CallData, leg: BLeg | None, *, at_once: bool = False) -> None:
    """CANCEL a B-leg INVITE with no final answer; before its first 1xx only note it (§9.1), unless
    `at_once` (a session that is going away will not be there for the 1xx)."""
    if leg is None or leg.state not in (LegState.INVITING, LegState.EARLY, LegState.CANCEL_PENDING):
        return
    if leg.state is not LegState.EARLY and not at_once:
        leg.fire(LegEvent.GIVE_UP)
        return
    leg.fire(LegEvent.CANCEL)
    send_cancel(data, leg)


def send_cancel(data: CallData, leg: BLeg) -> None:
    """Send the CANCEL of the B-leg's INVITE (its leg has made the transition already)."""
    cancel = make_cancel(leg.invite)
    client_transaction(data, cancel)
    to_gateway(data, leg, cancel)


def stray_2xx(data: CallData, leg: Leg, response: Response) -> None:
    """A 2xx after its INVITE transaction ended: a retransmission (ACK it again) or, on a B-leg, the
    answer of another fork (ACK it, then BYE it)."""
    if leg.dialog is not None and response.to.tag == leg.dialog.remote_tag:
        if leg.ack is not None and leg.ack.cseq.seq == response.cseq.seq:
            send_on(data, leg, leg.ack)
        return
    if not isinstance(leg, BLeg):
        return
    try:
        fork = Dialog.from_uac(leg.invite, response)
        ack, bye = fork.make_request(Method.ACK), fork.make_request(Method.BYE)
    except SipError as exc:  # no dialog to be made of it (a Contact we cannot use): nothing to ACK it at
        log.info("gateway %s: a stray %d we cannot make a dialog of: %s", leg.gateway, response.status, exc,
                 extra={"call_id": data.call_id, "gateway": leg.gateway})
        return
    to_gateway(data, leg, ack)
    to_gateway(data, leg, bye)


def busy(data: CallData) -> bool:
    """True while the call still owes something: a client transaction waits for an answer (a 487, a
    200 to a BYE ...), a CANCEL waits for a 1xx, or a message to the caller is held until its CDR
    step is durable. A client transaction that has its answer and only absorbs duplicates (Timer D
    or K, on UDP) owes nothing."""
    return bool(data.held) or any(isinstance(t, ClientTransaction) and t.awaiting_final for t in data.txns) or any(
        leg.state is LegState.CANCEL_PENDING for leg in data.legs.values())
