"""Requests in a call's dialogs, relayed across the B2BUA either way, and their answers relayed back.

What happens to a request that arrives in one leg's dialog (after its CSeq was checked, §12.2.2):

==============================  ================================================================
re-INVITE, UPDATE (RFC 3311)    relayed into the other leg's dialog with its body (SDP passed
                                through) and Content-Type; the final answer is relayed back. A
                                2xx carries our Contact; a re-INVITE's 2xx is retransmitted until
                                its ACK (§13.3.1.4), and the ACK is relayed to the leg that
                                answered, with its body (`_call_session` does it when the ACK
                                comes in). An error or a timeout (408) is relayed as it is and the
                                call goes on with its old session. One offer at a time per call:
                                glare gets 491, a second offer before the first was answered 500
                                with Retry-After (`_leg_state.refusal`).
INFO, MESSAGE, OPTIONS          relayed the same way (INFO with its Info-Package), in a confirmed
                                dialog and also in the early dialogs before the answer.
NOTIFY                          481: we relay no SUBSCRIBE or REFER, so no subscription exists
                                across the B2BUA for a NOTIFY to belong to (RFC 6665 §4.1.3).
REFER, SUBSCRIBE, anything else 501 (no transfer through switchd: docs/sip.md).
==============================  ================================================================

The leg states decide everything else (`_leg_state`): a request is relayed when its leg has the
row for it (OFFER_IN or REQUEST) and the other leg the matching one (OFFER_OUT or REQUEST); the
transitions are made when the relay starts and when its final answer comes. A relayed request
has its own server transaction towards the source (retransmissions, and the ACK to a refused
re-INVITE, are absorbed there) and its own client transaction towards the target; each is one
`Relay`. Provisional answers are hop by hop and are not relayed (a re-INVITE gets our 100 Trying).
A 481 from the target means its dialog is gone: `settle` returns that leg and the session hangs
the call up. Max-Forwards goes down by one across the B2BUA, as on the first INVITE.
"""

from __future__ import annotations

import logging
import random

import trio

from switchd.sip import (
    ClientTransaction,
    Method,
    Request,
    Response,
    ServerTransaction,
    SipError,
    TimedOut,
    ToTransactionUser,
    TransactionOutput,
    TransportFailed,
    Uas2xxRetransmitter,
    make_response,
)

from ._call_legs import DEFAULT_MAX_FORWARDS, CallData, Leg, Relay, content_type
from ._call_send import (
    ack_leg,
    client_transaction,
    feed,
    invite_server_transaction,
    send_on,
    server_transaction,
)
from ._hold import holds
from ._leg_state import LegEvent, LegState, refusal

log = logging.getLogger(__name__)

RELAYED = frozenset({Method.INVITE, Method.UPDATE, Method.INFO, Method.MESSAGE, Method.OPTIONS})
"""The methods relayed from one leg's dialog into the other's."""

OFFERS = frozenset({Method.INVITE, Method.UPDATE})
"""The relayed methods that change the session (an SDP offer/answer): one at a time per call."""

_REQUEST_HEADERS = ("Content-Disposition", "Info-Package")  # passed end to end with the body
_RESPONSE_HEADERS = ("Content-Disposition", "Retry-After")
_GONE = frozenset({LegState.ENDED, LegState.HUNG_UP})


def in_dialog_answer(method: Method | str) -> int | None:
    """The answer to an in-dialog request the switch does not relay, or None for one it relays."""
    if method in RELAYED:
        return None
    return 481 if method == Method.NOTIFY else 501


def relay_refusal(data: CallData, source: Leg, request: Request) -> int | None:
    """The status `request` from `source`'s dialog is refused with, or None when it can be relayed."""
    offer = request.method in OFFERS
    event = LegEvent.OFFER_IN if offer else LegEvent.REQUEST
    if not source.can(event):
        return refusal(source.role, source.state, event)
    if request.max_forwards == 0:
        return 483  # RFC 3261 §16.3 step 3, as for the first INVITE
    target = data.peer(source)
    if target is None or target.dialog is None or target.dialog.terminated or target.state in _GONE:
        return 481
    if not target.can(LegEvent.OFFER_OUT if offer else LegEvent.REQUEST):
        # the other leg is busy with an exchange of its own: as if the request had met it there
        return refusal(target.role, target.state, LegEvent.OFFER_IN) if offer else 500
    return None


def refuse(data: CallData, leg: Leg, request: Request, status: int) -> None:
    """Answer `request` from `leg`'s dialog with `status` through a server transaction of its own.

    A 500 gets a Retry-After of 0-10 s, as RFC 3261 §14.2 wants for an INVITE that overlaps another.
    """
    headers = [("Retry-After", str(random.randint(0, 10)))] if status == 500 else []
    server = server_transaction(data, request)
    feed(data, server, server.send_response(make_response(request, status, headers=headers), trio.current_time()))


def relay(data: CallData, source: Leg, request: Request) -> None:
    """Pass `request` from `source`'s dialog into the other leg's; `relay_refusal` said it may go."""
    target = data.peer(source)
    assert target is not None and target.dialog is not None, "relay_refusal lets no request through without a target"
    method = request.method
    offer = method in OFFERS
    server: ServerTransaction
    if method == Method.INVITE:
        server = invite_server_transaction(data, request)
        feed(data, server, server.send_trying(trio.current_time()))  # hop by hop, as for the first INVITE
    else:
        server = server_transaction(data, request)
    out = target.dialog.make_request(method, body=request.body,
                                     headers=[*content_type(request), *_passed(request, _REQUEST_HEADERS)])
    hops = request.max_forwards
    if hops is not None and hops <= DEFAULT_MAX_FORWARDS:
        out.headers.set("Max-Forwards", str(hops - 1))
    source.fire(LegEvent.OFFER_IN if offer else LegEvent.REQUEST)
    target.fire(LegEvent.OFFER_OUT if offer else LegEvent.REQUEST)
    if offer:
        data.reinvites += 1
    client = client_transaction(data, out)
    data.relays[client] = Relay(source, target, request, server, client)
    log.debug("%s relayed from the %s to the %s", method, source.role, target.role,
             extra={"call_id": data.call_id, "method": str(method)})
    send_on(data, target, out)


def settle(data: CallData, txn: ClientTransaction, outputs: list[TransactionOutput]) -> Leg | None:
    """Relay back what a relayed request's client transaction handed up: its final answer, or a 408
    (timeout) or 503 (transport failure) in its place. Returns the target leg when it answered 481
    (its dialog is gone: the session hangs the call up), else None. Not a relay: nothing happens."""
    relay = data.relays.get(txn)
    if relay is None:
        return None
    for out in outputs:
        if isinstance(out, ToTransactionUser) and isinstance(out.message, Response) and out.message.status >= 200:
            del data.relays[txn]
            return _answered(data, relay, out.message)
        if isinstance(out, TimedOut | TransportFailed):
            del data.relays[txn]
            _failed(data, relay, 408 if isinstance(out, TimedOut) else 503)
    return None


def _answered(data: CallData, relay: Relay, response: Response) -> Leg | None:
    source, target, request = relay.source, relay.target, relay.request
    method, status, now = request.method, response.status, trio.current_time()
    ok = status < 300
    headers = _passed(response, _RESPONSE_HEADERS)
    if ok and method in OFFERS:
        headers = [("Contact", str(data.settings.contact)), *headers]
        _refresh_target(data, target, response)
    if method in OFFERS:
        event = (LegEvent.ANSWER if method == Method.INVITE else LegEvent.ACCEPT) if ok else LegEvent.REJECT
        target.fire(event)
        source.fire(event)
    answer = make_response(request, status, response.reason, headers=[*headers, *content_type(response)],
                           body=response.body)
    feed(data, relay.server, relay.server.send_response(answer, now))
    if method == Method.INVITE and ok:
        if source.state is LegState.ANSWERED:  # its ACK is awaited, then relayed to the target
            source.rtx = Uas2xxRetransmitter(answer, now=now, timers=data.settings.timers)
        if target.state is not LegState.ANSWERED:  # hung up meanwhile: its 2xx is ACKed at once
            ack_leg(data, target)
    if method in OFFERS and ok and request.body:
        hold = holds(request.body)
        if hold is not None:
            data.hold.offer(source.role, hold, now)
    return target if status == 481 else None


def _failed(data: CallData, relay: Relay, status: int) -> None:
    if relay.request.method in OFFERS:
        relay.target.fire(LegEvent.FAIL)
        relay.source.fire(LegEvent.REJECT)
    answer = make_response(relay.request, status)
    feed(data, relay.server, relay.server.send_response(answer, trio.current_time()))


def _refresh_target(data: CallData, leg: Leg, response: Response) -> None:
    """A 2xx to our re-INVITE or UPDATE refreshes the leg's remote target (§12.2.1.2)."""
    if leg.dialog is None:
        return
    try:
        leg.dialog.receive_response(response)
    except SipError as exc:  # a Contact that does not parse, or a To tag of another dialog: keep the old target
        log.info("%s leg: %d to %s not applied to its dialog: %s", leg.role, response.status,
                 response.cseq.method, exc, extra={"call_id": data.call_id})


def _passed(message: Request | Response, names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(name, value) for name in names for value in message.headers.get_all(name)]
