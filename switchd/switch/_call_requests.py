"""The requests that reach a CallSession in its call's dialogs, from the caller and from a callee.

From either side: a retransmission goes to its server transaction; the ACK to our 2xx puts the
leg up and lets the ACK the other leg's 2xx waits for go (with its body); a BYE is answered and
hangs the call up; a CANCEL gets its 200 (before the answer, the caller's ends the call with
487). Every other request in a dialog is checked for its CSeq order (§12.2.2) and relayed to the
other leg or answered (`_call_relay`). A request that matches no dialog of the call gets 481; one
without a To tag is not in a dialog at all.
"""

from __future__ import annotations

import logging

import trio

from switchd.billing import Disposition, HangupParty
from switchd.otp import ExitReason, KeepState, NextState
from switchd.sip import ClientTransaction, Method, Request, TransactionOutput, make_response

from ._call_end import end, hang_up, reject
from ._call_legs import AFTER_ANSWER, BEFORE_ANSWER, BLeg, CallData, CallState, Leg, Result, release_setup
from ._call_relay import in_dialog_answer, refuse, relay, relay_refusal, settle
from ._call_send import (
    ack_leg,
    cancel_leg,
    fail_transactions,
    feed,
    release_caller,
    send_on,
    to_caller,
)
from ._leg_state import LegEvent, LegState
from ._wire import Hangup, ReplyPath, deliver

log = logging.getLogger(__name__)


def from_caller(request: Request, state: CallState, data: CallData) -> Result:
    txn = data.txns.match_request(request)
    if txn is not None:  # a retransmitted request, or the ACK to our non-2xx final
        feed(data, txn, txn.receive(request, trio.current_time()))
        return KeepState(data)
    match request.method:
        case Method.ACK:
            return _ack(data.a, request, state, data)
        case Method.CANCEL:
            return _caller_cancel(request, state, data)
        case Method.BYE:
            return _caller_bye(request, state, data)
        case Method.INVITE if request.to.tag is None:
            return KeepState(data)  # a late retransmission of the INVITE after its transaction
    if request.to.tag is None:  # not in a dialog, yet with our Call-ID
        to_caller(data, make_response(request, 501, to_tag=data.a_tag))
        return KeepState(data)
    return _in_dialog(data.a, request, state, data)


def _ack(leg: Leg, ack: Request, state: CallState, data: CallData) -> Result:
    """The ACK to our 2xx on `leg`: the leg is up, and the ACK the other leg's 2xx waits for goes now.

    The caller's ACK to the first 200 confirms the answer (billable from then on); the ACK to a
    relayed re-INVITE's 2xx carries the answer to an offer the 2xx made, so it is passed on.
    """
    rtx, dialog = leg.rtx, leg.dialog
    if rtx is None or dialog is None or not dialog.matches(ack) or not rtx.acknowledge(ack):
        return KeepState(data)
    leg.rtx = None
    leg.fire(LegEvent.ACK)
    if leg is data.a:
        data.confirmed = True  # the caller has the answer: from now on the call is billable
    peer = data.peer(leg)
    if peer is not None and peer.state is LegState.ANSWERED and peer.rtx is None:
        ack_leg(data, peer, ack)
    if state is CallState.CONNECTING:
        release_setup(data)
        return NextState(CallState.ANSWERED, data)
    return KeepState(data)


def _caller_cancel(cancel: Request, state: CallState, data: CallData) -> Result:
    ist = data.txns.match_cancel(cancel)
    if ist is None:
        to_caller(data, make_response(cancel, 481))
        return KeepState(data)
    to_caller(data, make_response(cancel, 200, to_tag=data.a_tag if cancel.to.tag is None else None))
    if ist is not data.ist or ist.final_response is not None or state not in BEFORE_ANSWER:
        return KeepState(data)  # too late, or a relayed re-INVITE: the CANCEL has no effect (§9.2)
    return _caller_gave_up(data, "cancel")


def _caller_bye(bye: Request, state: CallState, data: CallData) -> Result:
    dialog = data.a.dialog
    if dialog is None or not dialog.matches(bye):
        to_caller(data, make_response(bye, 481))
        return KeepState(data)
    rejection = dialog.receive_request(bye)
    if rejection is not None:
        to_caller(data, rejection)
        return KeepState(data)
    result: Result = KeepState(data)
    if state is CallState.CONNECTING:
        # Our 200's ACK has not come, yet the caller sends BYE in the dialog: it had the 200 (it
        # must ACK every 2xx, §13.2.2.4) and its ACK was lost (UDP). The answer was confirmed.
        data.confirmed = True
    if state in AFTER_ANSWER:
        data.a.fire(LegEvent.BYE)
        result = hang_up(data, HangupParty.CALLER, "bye")
    elif state in BEFORE_ANSWER:
        result = _caller_gave_up(data, "bye")  # its INVITE gets 487 first: the leg has ENDED
        data.a.fire(LegEvent.BYE)
    elif data.a.can(LegEvent.BYE):  # after our final answer, or our BYE crossed this one
        data.a.fire(LegEvent.BYE)
    to_caller(data, make_response(bye, 200))  # after the close: it waits until the close is durable
    return result


def _caller_gave_up(data: CallData, cause: str) -> Result:
    log.debug("caller gave up (%s)", cause, extra={"call_id": data.call_id})
    cancel_leg(data, data.b)
    return reject(data, 487, hangup_by=HangupParty.CALLER, cause=cause)


def hangup_from_outside(hangup: Hangup, state: CallState, data: CallData) -> Result:
    """`Hangup` (the operator, through the API): CANCEL + 487 before the answer, BYE both legs after."""
    log.info("call ended from outside by %s (%s)", hangup.by.value, hangup.cause,
             extra={"call_id": data.call_id})
    if state in BEFORE_ANSWER:
        cancel_leg(data, data.b)
        return reject(data, 487, hangup_by=hangup.by, cause=hangup.cause)
    if state in AFTER_ANSWER:
        return hang_up(data, hangup.by, hangup.cause)
    return KeepState(data)  # ENDING already (ROUTING never sees it: _start runs first)


def caller_lost(reason: ExitReason, state: CallState, data: CallData) -> Result:
    data.conn_monitor = None
    data.caller_gone = True
    release_caller(data, force=True)  # nobody to hold them for: dropped with the connection
    settle_all(fail_transactions(data, data.call_id), data)  # e.g. our BYE to the caller
    if data.a.can(LegEvent.LOST):
        data.a.fire(LegEvent.LOST)
    shutdown = reason in ("shutdown", "killed")  # its supervisor stopped it: the node is stopping
    log.log(logging.INFO if shutdown else logging.WARNING, "the caller's connection ended (%r)", reason,
            extra={"call_id": data.call_id})
    by, cause = (HangupParty.SWITCH, "shutdown") if shutdown else (HangupParty.CALLER, "connection_lost")
    if state in BEFORE_ANSWER:
        cancel_leg(data, data.b)
        if shutdown:  # billed as `terminate` bills a shutdown before the answer
            return end(data, Disposition.FAILED, 503, "Service Unavailable", by, cause)
        return end(data, Disposition.CANCELLED, 487, "Request Terminated", by, cause)
    if state in AFTER_ANSWER:
        return hang_up(data, by, cause)
    return KeepState(data)


def from_callee(request: Request, conn: ReplyPath, state: CallState, data: CallData) -> Result:
    leg = data.legs.get(request.call_id)
    if leg is not None:
        leg.conn = conn
    txn = data.txns.match_request(request)
    if txn is not None:  # a retransmitted request, or the ACK to our error to its re-INVITE
        feed(data, txn, txn.receive(request, trio.current_time()))
        return KeepState(data)
    if request.method == Method.ACK:
        return _ack(leg, request, state, data) if leg is not None else KeepState(data)
    if leg is None or leg.dialog is None or not leg.dialog.matches(request):
        deliver(conn, make_response(request, 481))
        return KeepState(data)
    match request.method:
        case Method.BYE:
            return _callee_bye(leg, request, state, data)
        case Method.CANCEL:  # of its re-INVITE: answered, without effect (§9.2)
            send_on(data, leg, make_response(request, 200 if data.txns.match_cancel(request) else 481))
            return KeepState(data)
    return _in_dialog(leg, request, state, data)


def _callee_bye(leg: BLeg, bye: Request, state: CallState, data: CallData) -> Result:
    assert leg.dialog is not None  # _from_callee matched the request to it
    rejection = leg.dialog.receive_request(bye)
    if rejection is not None:
        send_on(data, leg, rejection)
        return KeepState(data)
    owed_ack = leg.state is LegState.ANSWERED and leg.rtx is None  # its 2xx came, our ACK did not go
    if not leg.can(LegEvent.BYE):  # no confirmed dialog to end (an early one, or an attempt that failed)
        send_on(data, leg, make_response(bye, 481))
        return KeepState(data)
    send_on(data, leg, make_response(bye, 200))
    if owed_ack:
        ack_leg(data, leg)
    leg.fire(LegEvent.BYE)
    if leg is data.b and state in AFTER_ANSWER:
        return hang_up(data, HangupParty.CALLEE, "bye")
    return KeepState(data)


def _in_dialog(leg: Leg, request: Request, state: CallState, data: CallData) -> Result:
    """A request in `leg`'s dialog other than ACK, BYE and CANCEL: relayed, or answered (`_call_relay`)."""
    assert leg.dialog is not None  # the caller's exists from the start; a B-leg's request matched it
    rejection = leg.dialog.receive_request(request)  # CSeq order (500), target refresh (§12.2.2)
    if rejection is not None:
        send_on(data, leg, rejection)
        return KeepState(data)
    status = in_dialog_answer(request.method)
    if status is None:
        status = relay_refusal(data, leg, request)
    if status is not None:
        log.debug("%s in the %s's dialog answered %d", request.method, leg.role, status,
                 extra={"call_id": data.call_id, "state": leg.state.value})
        refuse(data, leg, request, status)
        return KeepState(data)
    relay(data, leg, request)
    return KeepState(data)


def settle_all(outputs: list[tuple[ClientTransaction, list[TransactionOutput]]],
               data: CallData) -> None:
    """Relay back a 503 for each relayed request whose transaction the lost connection ended."""
    for txn, rest in outputs:
        settle(data, txn, rest)


def dialog_gone(leg: Leg, state: CallState, data: CallData) -> Result:
    """`leg` answered 481 to a request relayed into its dialog: its end has no such dialog any more."""
    if state not in AFTER_ANSWER or not leg.established or data.peer(leg) is None:
        return KeepState(data)  # before the answer, or a leg the call no longer uses
    log.warning("the %s's dialog is gone (481 in it): hanging up", leg.role, extra={"call_id": data.call_id})
    leg.fire(LegEvent.LOST)
    party = HangupParty.CALLER if leg is data.a else HangupParty.CALLEE
    return hang_up(data, party, "dialog_gone")
