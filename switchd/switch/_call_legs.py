"""What a CallSession knows about its legs, the SIP it builds for them, and how it sends it.

The A-leg is the caller's INVITE, answered through one InviteServerTransaction and one UAS
Dialog whose To tag is chosen once, when the session starts, and used on every response after
the 100 Trying. Each B-leg is one attempt towards one gateway: its own Call-ID, From tag and CSeq
(`make_request`), one InviteClientTransaction, and the UAC Dialog its callee's first 1xx-with-tag
or 2xx creates. The session descriptions (SDP) pass through untouched, with their Content-Type.

`should_fail_over` is the failover rule; the module docstring of `_call_session` says it in words.
`CallData` is everything one session holds; the functions after it send on its legs: caller-side
messages as `Outbound` to the caller's connection process, B-leg requests as `ToGateway` to the
gateway's link (whose absence is reported back to the session as a `GatewayFailed`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from switchd.otp import MonitorRef, NoProcess, Pid, self_pid, send
from switchd.sip import (
    ClientTransaction,
    Dialog,
    InviteClientTransaction,
    InviteServerTransaction,
    LocalProtocolError,
    Method,
    NameAddr,
    NonInviteClientTransaction,
    RemoteProtocolError,
    Request,
    Response,
    ServerTransaction,
    TimedOut,
    TimerConfig,
    ToTransactionUser,
    TransactionOutput,
    TransactionTable,
    Transmit,
    Uas2xxRetransmitter,
    make_cancel,
    make_request,
    make_response,
    new_call_id,
    new_tag,
    parse_name_addr,
)

from ._call_events import CallClock

DEFAULT_MAX_FORWARDS = 70  # RFC 3261 §8.1.1.6
from ._routing import Candidate
from ._wire import GatewayFailed, Outbound, ToGateway, gateway_name

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSettings:
    """What every CallSession of a node shares; app.py builds it from the Config.

    ``node``: this node's name, for logs and the CallSetup event, "switchd".
    ``local_address``: our SIP ``host:port``, put in the Via and Contact of what we send, "127.0.0.1:5060".
    ``timers``: the RFC 3261 timers (T1, T2) the transactions and the 2xx retransmitter run on, TimerConfig().
    ``no_answer``: seconds from the INVITE to an answer, then the B-leg is cancelled and the caller
        gets 480, 60.0.
    ``max_call_duration``: seconds an answered call may last before both legs get a BYE, 3600.0.
    ``retransmit_2xx``: retransmit the 200 to the caller until the ACK (RFC 3261 §13.3.1.4); False sends it
        once over TCP and only keeps the 64*T1 give-up, True.
    ``billing``: registered name of the BillingStore, "billing".
    ``events``: registered name of the EventManager, "events".
    ``billing_timeout``: seconds a CDR step may wait for the BillingStore, 5.0.
    ``router_timeout``: seconds a route lookup may wait for the Router (reached as "router"), 1.0.
    ``retry_delay``: pause before the one retry of a billing or router request whose server was
        restarting (NoProcess / ServerExited), 0.25.
    ``cleanup_timeout``: seconds terminate() gets to hang up the legs and close the CDR, 2.0.
    """

    node: str = "switchd"
    local_address: str = "127.0.0.1:5060"
    timers: TimerConfig = field(default_factory=TimerConfig)
    no_answer: float = 60.0
    max_call_duration: float = 3600.0
    retransmit_2xx: bool = True
    billing: str = "billing"
    events: str = "events"
    billing_timeout: float = 5.0
    router_timeout: float = 1.0
    retry_delay: float = 0.25
    cleanup_timeout: float = 2.0

    def __post_init__(self) -> None:
        for name in ("no_answer", "max_call_duration", "billing_timeout", "router_timeout",
                     "cleanup_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CallSettings.{name} must be a positive number of seconds, "
                                 f"got {getattr(self, name)!r}")
        if self.retry_delay < 0:
            raise ValueError(f"CallSettings.retry_delay must be >= 0, got {self.retry_delay!r}")

    @property
    def contact(self) -> NameAddr:
        """Our Contact, on both legs."""
        return parse_name_addr(f"<sip:{self.local_address};transport=tcp>", "Contact")


@dataclass(slots=True, eq=False)
class BLeg:
    """One attempt to reach the callee through one gateway."""

    candidate: Candidate
    invite: Request
    ict: InviteClientTransaction
    attempt: int  # 1 for the first gateway tried, 2 after one failover ...
    dialog: Dialog | None = None  # from the callee's first 1xx with a To tag, or its 2xx
    conn: Pid | None = None  # the gateway connection that delivered this leg's last message
    provisional: bool = False  # a 1xx arrived: a CANCEL may be sent (§9.1)
    relayed: bool = False  # one of its 101-199 was relayed to the caller
    final: int | None = None  # its final status; 0 when it failed without one (timeout, transport)
    cancel_pending: bool = False  # cancel as soon as a 1xx arrives (§9.1: not before)
    cancelled: bool = False  # the CANCEL went out
    acked: bool = False  # the ACK for its 2xx went out
    byed: bool = False  # the BYE went out (or the callee's BYE came in)

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    @property
    def gateway(self) -> str:
        return self.candidate.gateway.name

    @property
    def up(self) -> bool:
        """The callee answered and the dialog has not been ended."""
        return self.dialog is not None and self.dialog.confirmed and not self.byed

    @property
    def pending(self) -> bool:
        """The INVITE has no final answer yet."""
        return self.final is None


def b_leg_invite(a_invite: Request, candidate: Candidate, settings: CallSettings) -> Request:
    """The B-leg INVITE to `candidate`: fresh Call-ID, From tag and CSeq; the caller's body passed through.

    The Request-URI is the rewritten number at the gateway; From keeps the caller's identity.
    Max-Forwards is the caller's minus one (at most 70), so a routing loop through B2BUAs ends
    (RFC 3261 §16.6 step 3 asks it of proxies; a B2BUA that resets it would loop forever).
    """
    gateway = candidate.gateway
    uri = f"sip:{candidate.number}@{gateway.host}:{gateway.port};transport=tcp"
    caller = a_invite.from_
    invite = make_request(
        Method.INVITE, uri,
        from_=NameAddr(caller.display_name, caller.uri).with_tag(new_tag()),
        to=f"<sip:{candidate.number}@{gateway.host}:{gateway.port}>",
        sent_by=settings.local_address,
        contact=settings.contact,
        call_id=new_call_id(settings.local_address.rpartition(":")[0] or None),
        headers=_content_type(a_invite),
        body=a_invite.body,
    )
    hops = a_invite.max_forwards
    if hops is not None and hops <= DEFAULT_MAX_FORWARDS:
        invite.headers.set("Max-Forwards", str(max(hops - 1, 0)))
    return invite


def relayed_response(a_invite: Request, b_response: Response, a_tag: str, settings: CallSettings) -> Response:
    """The callee's 1xx/2xx as the caller gets it: our To tag and Contact, its body and reason phrase."""
    return make_response(
        a_invite, b_response.status, b_response.reason, to_tag=a_tag,
        headers=[("Contact", str(settings.contact)), *_content_type(b_response)],
        body=b_response.body,
    )


def final_response(a_invite: Request, status: int, a_tag: str, *, reason: str | None = None,
                   retry_after: str | None = None) -> Response:
    """A final error response to the caller's INVITE with our To tag."""
    headers = [("Retry-After", retry_after)] if retry_after is not None else []
    return make_response(a_invite, status, reason, to_tag=a_tag, headers=headers)


def ack_for_2xx(leg: BLeg, body_from: Request | None = None) -> Request:
    """The ACK to the B-leg's 2xx (§13.2.2.4), through its dialog; carries the caller's ACK body."""
    if leg.dialog is None:
        raise LocalProtocolError(f"B-leg {leg.call_id}: no dialog to ACK a 2xx in")
    if body_from is not None and body_from.body:
        return leg.dialog.make_request(Method.ACK, body=body_from.body, headers=_content_type(body_from))
    return leg.dialog.make_request(Method.ACK)


def should_fail_over(response: Response | None, wait_left: float) -> bool:
    """True when a final answer (None: a timeout or transport failure) sends the call to the next gateway.

    5xx and 408 do; a 503 whose Retry-After is longer than `wait_left` (the seconds the call may
    still wait for an answer) does not: the callee's side is down for longer than the caller
    waits, so the 503 is relayed with its Retry-After. Any other answer is the callee's and is relayed.
    """
    if response is None:
        return True
    status = response.status
    if status == 503:
        retry_after = _retry_after_seconds(response)
        return retry_after is None or retry_after <= wait_left
    return status == 408 or 500 <= status <= 599


def _retry_after_seconds(response: Response) -> int | None:
    try:
        value = response.retry_after
    except RemoteProtocolError:  # a malformed Retry-After is no reason to keep the call from failing over
        return None
    return None if value is None else value.seconds


def _content_type(message: Request | Response) -> list[tuple[str, str]]:
    content_type = message.content_type
    return [("Content-Type", content_type)] if content_type is not None and message.body else []


# -- the call's data, and the sending done on it ------------------------------------------------


@dataclass(slots=True, eq=False)
class CallData:
    """Everything a CallSession holds; mutated in place by the one process that owns it."""

    settings: CallSettings
    invite: Request
    conn: Pid  # the caller's connection process
    received_at: float
    clock: CallClock
    ist: InviteServerTransaction
    a_tag: str
    caller: str
    callee: str
    a_dialog: Dialog | None = None  # None only when the INVITE cannot make a dialog (no Contact)
    txns: TransactionTable = field(default_factory=TransactionTable)
    candidates: list[Candidate] = field(default_factory=list)
    next_candidate: int = 0
    legs: dict[str, BLeg] = field(default_factory=dict)
    b: BLeg | None = None  # the current (last placed) B-leg
    rtx: Uas2xxRetransmitter | None = None
    conn_monitor: MonitorRef | None = None
    answered_at: float | None = None
    caller_gone: bool = False  # the caller's connection process exited: nothing more to send it
    cdr_opened: bool = False
    progress_recorded: bool = False
    ended: bool = False  # CDR closed and CallEnded emitted

    @property
    def call_id(self) -> str:
        return self.invite.call_id


def answer_caller(data: CallData, response: Response) -> None:
    """Send a response to the caller's INVITE through its server transaction; none after its final."""
    if data.ist.final_response is not None:
        return
    feed(data, data.ist, data.ist.send_response(response, trio.current_time()))


def hang_up_caller(data: CallData) -> None:
    """BYE the caller's confirmed dialog, unless it ended already or the caller's connection is gone."""
    dialog = data.a_dialog
    if dialog is None or not dialog.confirmed or data.caller_gone:
        return
    bye = dialog.make_request(Method.BYE)
    data.txns.add(NonInviteClientTransaction(bye, now=trio.current_time(), timers=data.settings.timers))
    to_caller(data, bye)


def hang_up_leg(data: CallData, leg: BLeg | None) -> None:
    """BYE an answered B-leg (ACK its 2xx first if nobody did); CANCEL one still ringing."""
    if leg is None:
        return
    if leg.dialog is not None and leg.dialog.confirmed and not leg.byed:
        if not leg.acked:
            to_gateway(data, leg, ack_for_2xx(leg))
            leg.acked = True
        bye = leg.dialog.make_request(Method.BYE)
        leg.byed = True
        data.txns.add(NonInviteClientTransaction(bye, now=trio.current_time(), timers=data.settings.timers))
        to_gateway(data, leg, bye)
    elif leg.pending:
        cancel_leg(data, leg)


def cancel_leg(data: CallData, leg: BLeg | None) -> None:
    """CANCEL a B-leg INVITE with no final answer; before its first 1xx, only note it (§9.1)."""
    if leg is None or not leg.pending or leg.cancelled:
        return
    if not leg.provisional:
        leg.cancel_pending = True
        return
    cancel = make_cancel(leg.invite)
    leg.cancelled, leg.cancel_pending = True, False
    data.txns.add(NonInviteClientTransaction(cancel, now=trio.current_time(), timers=data.settings.timers))
    to_gateway(data, leg, cancel)


def feed(data: CallData, txn: ClientTransaction | ServerTransaction,
         outputs: list[TransactionOutput]) -> list[TransactionOutput]:
    """Perform a transaction's Transmits, forget it once Terminated; return what the core must handle."""
    rest: list[TransactionOutput] = []
    for out in outputs:
        if isinstance(out, Transmit):
            message = out.message
            if message.call_id == data.call_id:
                to_caller(data, message)
            else:
                leg = data.legs.get(message.call_id)
                if leg is not None and isinstance(message, Request):
                    to_gateway(data, leg, message)
        elif isinstance(out, ToTransactionUser | TimedOut):
            rest.append(out)
    if txn.terminated:
        data.txns.discard(txn)
    return rest


def fail_transactions(data: CallData, call_id: str) -> list[ClientTransaction]:
    """End at once every client transaction of `call_id`: the connection it was sent on is gone.

    A transport failure ends a client transaction when it happens, not at its timeout (RFC 3261
    §17.1.4, §8.1.3.1): no answer can come any more. Used when the caller's connection process
    exits (`call_id` is the A-leg's) and on a `GatewayFailed` (a B-leg's). Returns what was ended,
    now out of `data.txns`.
    """
    failed = [t for t in data.txns if isinstance(t, ClientTransaction) and t.request.call_id == call_id]
    for txn in failed:
        feed(data, txn, txn.transport_error())
    return failed


def to_caller(data: CallData, message: Request | Response) -> None:
    send(data.conn, Outbound(message))  # a connection that is gone drops it, as in Erlang


def to_gateway(data: CallData, leg: BLeg, request: Request) -> None:
    try:
        send(gateway_name(leg.gateway), ToGateway(request, self_pid()))
    except NoProcess:  # no connection process for that gateway: it is down
        send(self_pid(), GatewayFailed(leg.gateway, leg.call_id, "no connection process"))


def stray_2xx(data: CallData, leg: BLeg, response: Response) -> None:
    """A 2xx after the INVITE transaction ended: a retransmission (ACK again) or another fork (ACK, BYE)."""
    if leg.dialog is not None and response.to.tag == leg.dialog.remote_tag:
        if leg.acked:
            to_gateway(data, leg, ack_for_2xx(leg))
        return
    fork = Dialog.from_uac(leg.invite, response)
    to_gateway(data, leg, fork.make_request(Method.ACK))
    to_gateway(data, leg, fork.make_request(Method.BYE))


def busy(data: CallData) -> bool:
    """True while a client transaction of the call waits for an answer (a 487, a 200 to a BYE ...)."""
    return any(isinstance(t, ClientTransaction) for t in data.txns) or any(
        leg.cancel_pending and leg.pending for leg in data.legs.values())


def track_dialog(leg: BLeg, response: Response) -> None:
    """Create or update the B-leg's dialog from a 1xx-with-tag or a 2xx; a 2xx of another fork replaces it."""
    tag = response.to.tag
    if leg.dialog is None or (tag != leg.dialog.remote_tag and response.status >= 200):
        if tag is None and response.status < 200:
            return
        leg.dialog = Dialog.from_uac(leg.invite, response)
    elif tag == leg.dialog.remote_tag:
        try:
            leg.dialog.receive_response(response)
        except LocalProtocolError:
            log.debug("response for another dialog ignored", extra={"call_id": leg.call_id})


def leg_fields(data: CallData) -> dict[str, Any]:
    """The CDR's B-leg fields: the current leg's gateway, route, Call-ID, and how many were tried."""
    leg = data.b
    if leg is None:
        return {}
    return {"b_call_id": leg.call_id, "gateway": leg.gateway, "route_id": leg.candidate.route_id,
            "route_prefix": leg.candidate.prefix, "b_attempts": len(data.legs)}
