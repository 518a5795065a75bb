"""What a CallSession knows about its legs and the SIP it builds for them.

The A-leg (`ALeg`) is the caller's INVITE, answered through one InviteServerTransaction and one
UAS Dialog whose To tag is chosen once, when the session starts, and used on every response after
the 100 Trying. Each B-leg (`BLeg`) is one attempt towards one gateway: its own Call-ID, From tag
and CSeq (`make_request`), one InviteClientTransaction, and the UAC Dialog its callee's first
1xx-with-tag or 2xx creates. Each leg has an explicit state (`_leg_state`: one table of every
transition); a request relayed from one leg's dialog into the other's is a `Relay`. The session
descriptions (SDP) pass through untouched, with their Content-Type.

`should_fail_over` is the failover rule; the module docstring of `_call_session` says it in words.
`CallData` is everything one session holds; `_call_send` sends on its legs: caller-side messages
through the caller's reply path (`_wire.deliver`: its TCP connection, or its UDP socket and
address), B-leg requests as `ToGateway` to the gateway's link.

Transport seam (UDP): a leg's transport is that of its requests' top Via — the caller's from the
Contact we give it (`CallSettings.for_caller`), a B-leg's from its gateway (`b_leg_invite`, with
RFC 3261 §18.1.1's size rule) — and every client transaction is built with ``reliable=`` that
Via's, so on UDP it retransmits itself. The caller's server transactions need no flag: on UDP the
socket's own (`_udp_socket`) absorb and retransmit for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from switchd.billing import AccountInfo, CdrQueue
from switchd.otp import KeepState, MonitorRef, NextState, Stop
from switchd.sip import (
    ClientTransaction,
    Dialog,
    InviteClientTransaction,
    InviteServerTransaction,
    LocalProtocolError,
    Method,
    NameAddr,
    RemoteProtocolError,
    Request,
    Response,
    ServerTransaction,
    TimerConfig,
    TransactionTable,
    Uas2xxRetransmitter,
    make_request,
    make_response,
    new_call_id,
    new_tag,
    parse_name_addr,
    parse_uri,
    serialize,
)

from ._call_events import CallClock
from ._hold import HoldClock
from ._leg_state import TRANSITIONS, LegEvent, LegRole, LegState, transition
from ._routing import Candidate, Transport
from ._wire import ReplyPath, UdpPeer

DEFAULT_MAX_FORWARDS = 70  # RFC 3261 §8.1.1.6

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSettings:
    """What every CallSession of a node shares; app.py builds it from the Config.

    ``node``: this node's name, for logs and the CallSetup event, "switchd".
    ``local_address``: our SIP ``host:port``, put in the Via and Contact of what we send, "127.0.0.1:5060".
    ``udp_address``: our SIP-over-UDP ``host:port``, in the Via and Contact of a B-leg to a UDP gateway;
        None: no UDP (a UDP gateway's legs then go over TCP).
    ``udp_max_request_size``: bytes above which a B-leg INVITE to a UDP gateway that takes TCP goes over
        TCP (RFC 3261 §18.1.1), 1300.
    ``caller_contact``: our Contact towards the caller; None: the TCP one (`contact`). Set per call by
        `for_caller`.
    ``timers``: the RFC 3261 timers (T1, T2) the transactions and the 2xx retransmitter run on, TimerConfig().
    ``no_answer``: seconds from the INVITE to an answer, then the B-leg is cancelled and the caller
        gets 480, 60.0.
    ``max_call_duration``: seconds an answered call may last before both legs get a BYE, 3600.0.
    ``retransmit_2xx``: retransmit the 200 to the caller until the ACK (RFC 3261 §13.3.1.4); False sends it
        once over TCP and only keeps the 64*T1 give-up, True.
    ``cdrs``: the node's CdrQueue, where the session puts its CDR steps (the BillingStore takes them
        from there); a queue of its own by default, which only a test without billing wants.
    ``open_wait``: seconds the caller's 18x or 200 may be held for the call's CDR open to be durable
        (see `_call_cdr`) before it is sent anyway: setup latency is never hostage to the database, 0.02.
    ``cdr_timeout``: seconds what ends the call for the caller (its final answer, the 200 to its BYE, our
        BYE) may be held for the close to be durable before it is sent anyway, with an error logged, 5.0.
    ``events``: registered name of the EventManager, "events".
    ``router_timeout``: seconds a route lookup may wait for the Router (reached as "router"), 1.0.
    ``retry_delay``: pause before the one retry of a router lookup whose server was restarting
        (NoProcess / ServerExited), 0.25.
    ``cleanup_timeout``: seconds terminate() gets to hang up the legs and close the CDR, 2.0.
    """

    node: str = "switchd"
    local_address: str = "127.0.0.1:5060"
    timers: TimerConfig = field(default_factory=TimerConfig)
    no_answer: float = 60.0
    max_call_duration: float = 3600.0
    retransmit_2xx: bool = True
    cdrs: CdrQueue = field(default_factory=CdrQueue, compare=False)
    open_wait: float = 0.02
    cdr_timeout: float = 5.0
    events: str = "events"
    router_timeout: float = 1.0
    retry_delay: float = 0.25
    cleanup_timeout: float = 2.0
    udp_address: str | None = None
    udp_max_request_size: int = 1300
    caller_contact: NameAddr | None = None

    def __post_init__(self) -> None:
        for name in ("no_answer", "max_call_duration", "open_wait", "cdr_timeout", "router_timeout",
                     "cleanup_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CallSettings.{name} must be a positive number of seconds, "
                                 f"got {getattr(self, name)!r}")
        if self.retry_delay < 0:
            raise ValueError(f"CallSettings.retry_delay must be >= 0, got {self.retry_delay!r}")

    @property
    def contact(self) -> NameAddr:
        """Our Contact towards the caller (in our responses and the A-leg dialog)."""
        return self.caller_contact or self.contact_for(Transport.TCP)

    def address_for(self, transport: Transport) -> str:
        """Our ``host:port`` for a leg over `transport` (the TCP one when we have no UDP address)."""
        if transport is Transport.UDP and self.udp_address is not None:
            return self.udp_address
        return self.local_address

    def contact_for(self, transport: Transport) -> NameAddr:
        """Our Contact on a leg over `transport`."""
        if transport is Transport.UDP and self.udp_address is None:
            transport = Transport.TCP
        return parse_name_addr(f"<sip:{self.address_for(transport)};transport={transport}>", "Contact")

    def for_caller(self, path: ReplyPath) -> CallSettings:
        """These settings for a call whose caller is at the end of `path`: over UDP our Contact names
        the socket the caller used, so its ACK, BYE and in-dialog requests come back on it."""
        if isinstance(path, UdpPeer):
            return replace(self, caller_contact=parse_name_addr(f"<sip:{path.local};transport=udp>", "Contact"))
        return self


@dataclass(slots=True, eq=False, kw_only=True)
class Leg:
    """What both legs share: an explicit state (`_leg_state`), the dialog, and the 2xx exchange on it.

    The state changes only through `fire`, which follows the one table in `_leg_state`; nothing
    else about a leg's progress is kept beside it.
    """

    role: ClassVar[LegRole]
    state: LegState = LegState.INVITING
    dialog: Dialog | None = None
    conn: ReplyPath | None = None  # the transport that delivered this leg's last message
    rtx: Uas2xxRetransmitter | None = None  # our 2xx to its INVITE or re-INVITE, until its ACK comes
    ack: Request | None = None  # the last ACK we sent it, sent again for a retransmitted 2xx

    @property
    def call_id(self) -> str:
        raise NotImplementedError  # pragma: no cover

    def fire(self, event: LegEvent) -> LegState:
        """Make the transition `event` causes (`_leg_state.transition`); LegStateError if there is none."""
        before = self.state
        self.state = transition(self.role, before, event)
        if self.state is not before and log.isEnabledFor(logging.DEBUG):  # (its arguments cost more than the test)
            log.debug("%s leg %s: %s -> %s on %s", self.role, self.call_id, before, self.state, event,
                      extra={"call_id": self.call_id})
        return self.state

    def can(self, event: LegEvent) -> bool:
        """True when the table has a row for `event` in the leg's state."""
        return event in TRANSITIONS[self.role][self.state]

    @property
    def pending(self) -> bool:
        """The dialog-creating INVITE has no final answer yet."""
        return self.state in _PENDING

    @property
    def established(self) -> bool:
        """The dialog is confirmed and not hung up: a BYE (or a relayed request) can go on it."""
        return self.state in _ESTABLISHED


_PENDING = frozenset({LegState.INVITING, LegState.EARLY, LegState.CANCEL_PENDING, LegState.CANCELLING})
_ESTABLISHED = frozenset({LegState.ANSWERED, LegState.UP, LegState.OFFER_SENT, LegState.OFFER_RECEIVED})


@dataclass(slots=True, eq=False, kw_only=True)
class ALeg(Leg):
    """The caller's dialog: its INVITE, answered through one server transaction; we are its UAS."""

    role: ClassVar[LegRole] = LegRole.CALLER
    invite: Request

    @property
    def call_id(self) -> str:
        return self.invite.call_id


@dataclass(slots=True, eq=False, kw_only=True)
class BLeg(Leg):
    """One attempt to reach the callee through one gateway; we are its UAC."""

    role: ClassVar[LegRole] = LegRole.CALLEE
    candidate: Candidate
    invite: Request
    ict: InviteClientTransaction
    attempt: int  # 1 for the first gateway tried, 2 after one failover ...
    final: int | None = None  # the status of its INVITE's final answer, for the operator's view

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    @property
    def gateway(self) -> str:
        return self.candidate.gateway.name


def b_leg_invite(a_invite: Request, candidate: Candidate, settings: CallSettings, *,
                 caller_id: str | None = None) -> Request:
    """The B-leg INVITE to `candidate`: fresh Call-ID, From tag and CSeq; the caller's body passed through.

    The Request-URI is the rewritten number at the gateway, or the candidate's own URI (a registered
    phone's Contact); From keeps the caller's identity, or presents `caller_id` (the caller's
    account's number) at our host. Max-Forwards is the caller's minus one (at most 70), so a routing
    loop through B2BUAs ends (RFC 3261 §16.6 step 3 asks it of proxies; a B2BUA that resets it
    would loop forever).

    The transport is the gateway's; to a UDP gateway that takes TCP, an INVITE larger than
    ``settings.udp_max_request_size`` goes over TCP instead (RFC 3261 §18.1.1), and so does the
    rest of that leg (its Via, Contact and Request-URI say so).
    """
    transport = candidate.gateway.transport
    invite = _b_leg_invite(a_invite, candidate, settings, transport, caller_id)
    if (transport is Transport.UDP and candidate.gateway.tcp_fallback
            and len(serialize(invite)) > settings.udp_max_request_size):
        invite = _b_leg_invite(a_invite, candidate, settings, Transport.TCP, caller_id)
    return invite


def _b_leg_invite(a_invite: Request, candidate: Candidate, settings: CallSettings, transport: Transport,
                  caller_id: str | None) -> Request:
    if transport is Transport.UDP and settings.udp_address is None:
        transport = Transport.TCP  # no UDP socket to send it from
    gateway = candidate.gateway
    user = candidate.number.replace("#", "%23")  # a dialled "#" (tel: local numbers) is escaped in a SIP user part
    uri = candidate.uri or f"sip:{user}@{gateway.host}:{gateway.port};transport={transport}"
    caller = a_invite.from_
    presented = caller.uri if caller_id is None else parse_uri(
        f"sip:{caller_id}@{settings.local_address.rpartition(':')[0] or settings.local_address}", "From")
    invite = make_request(
        Method.INVITE, uri,
        from_=NameAddr(caller.display_name, presented).with_tag(new_tag()),
        to=f"<sip:{user}@{gateway.host}:{gateway.port}>",
        sent_by=settings.address_for(transport),
        transport=transport.via,
        contact=settings.contact_for(transport),
        call_id=new_call_id(settings.local_address.rpartition(":")[0] or None),
        headers=content_type(a_invite),
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
        headers=[("Contact", str(settings.contact)), *content_type(b_response)],
        body=b_response.body,
    )


def final_response(a_invite: Request, status: int, a_tag: str, *, reason: str | None = None,
                   retry_after: str | None = None) -> Response:
    """A final error response to the caller's INVITE with our To tag."""
    headers = [("Retry-After", retry_after)] if retry_after is not None else []
    return make_response(a_invite, status, reason, to_tag=a_tag, headers=headers)


def ack_for_2xx(leg: Leg, body_from: Request | None = None) -> Request:
    """The ACK to the 2xx of the leg's last INVITE (§13.2.2.4), through its dialog; carries `body_from`'s
    body (the other leg's ACK: the answer to an offer the 2xx made), and is kept as ``leg.ack``."""
    if leg.dialog is None:
        raise LocalProtocolError(f"{leg.role} leg {leg.call_id}: no dialog to ACK a 2xx in")
    if body_from is not None and body_from.body:
        ack = leg.dialog.make_request(Method.ACK, body=body_from.body, headers=content_type(body_from))
    else:
        ack = leg.dialog.make_request(Method.ACK)
    leg.ack = ack
    return ack


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


def content_type(message: Request | Response) -> list[tuple[str, str]]:
    """The Content-Type header that goes with `message`'s body when it is passed on (none without a body)."""
    kind = message.content_type
    return [("Content-Type", kind)] if kind is not None and message.body else []


# -- the call's data ----------------------------------------------------------------------------


class CallState(StrEnum):
    """The states of a CallSession: what the caller hears (see `_call_session`'s docstring)."""

    ROUTING = "routing"
    CALLING = "calling"
    RINGING = "ringing"
    CONNECTING = "connecting"
    ANSWERED = "answered"
    ENDING = "ending"


BEFORE_ANSWER = (CallState.CALLING, CallState.RINGING)
AFTER_ANSWER = (CallState.CONNECTING, CallState.ANSWERED)


@dataclass(slots=True, eq=False)
class Relay:
    """A request in the dialog passed from one leg to the other, until its final answer is passed back.

    `server` answers `source` (it absorbs the source's retransmissions and, for a re-INVITE, the
    ACK to an error); `client` carries the request built in the target's dialog. `_call_relay`
    owns both ends.
    """

    source: Leg
    target: Leg
    request: Request  # as the source sent it
    server: ServerTransaction
    client: ClientTransaction


@dataclass(slots=True, eq=False)
class CallData:
    """Everything a CallSession holds; mutated in place by the one process that owns it."""

    settings: CallSettings
    invite: Request
    conn: ReplyPath  # the caller's connection process, or UDP socket and address
    received_at: float
    clock: CallClock
    ist: InviteServerTransaction
    a_tag: str
    caller: str
    callee: str
    account: AccountInfo | None = None  # the caller's, when it authenticated: its CDR's account and rate plan
    a: ALeg = field(init=False)  # the caller's leg; its dialog is made when the session starts
    txns: TransactionTable = field(default_factory=TransactionTable)
    candidates: list[Candidate] = field(default_factory=list)
    next_candidate: int = 0
    legs: dict[str, BLeg] = field(default_factory=dict)
    b: BLeg | None = None  # the current (last placed) B-leg
    relays: dict[ClientTransaction, Relay] = field(default_factory=dict)  # by the transaction to the target
    reinvites: int = 0  # re-INVITEs and UPDATEs relayed, either way (the CDR's count)
    hold: HoldClock = field(default_factory=HoldClock)
    conn_monitor: MonitorRef | None = None
    answered_at: float | None = None  # when the callee's 200 reached us: the CDR's answer, billing's start
    confirmed: bool = False  # the caller ACKed our 200: the answer is billable (see docs/billing.md)
    caller_gone: bool = False  # the caller's connection process exited: nothing more to send it
    cdr_gate: int = 0  # the CdrQueue ticket that must be durable before the caller hears more
    held: list[Request | Response] = field(default_factory=list)  # to the caller, behind cdr_gate
    held_since: float | None = None  # trio time the oldest held message was held
    held_for: float = 0.0  # seconds they may be held: open_wait before the close, cdr_timeout after
    progress_recorded: bool = False
    ended: bool = False  # CDR closed and CallEnded emitted

    def __post_init__(self) -> None:
        self.a = ALeg(invite=self.invite, conn=self.conn)

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    def leg(self, call_id: str) -> Leg | None:
        """The leg whose Call-ID is `call_id`: the caller's, or one of the B-legs placed."""
        return self.a if call_id == self.call_id else self.legs.get(call_id)

    def peer(self, leg: Leg) -> Leg | None:
        """The leg a request in `leg`'s dialog is relayed to: the current B-leg for the caller's, the
        caller's for the current B-leg, None for a B-leg given up on."""
        if leg is self.a:
            return self.b
        return self.a if leg is self.b else None


Result: TypeAlias = NextState[CallState, CallData] | KeepState[CallData] | Stop[CallData]
"""What a CallSession's handlers return."""


def release_setup(data: CallData) -> None:
    """Let go of what the call's set-up no longer needs once the caller ACKed the answer (ANSWERED).

    The INVITEs (the caller's, and each B-leg's) and the caller's final answer stay referenced by
    the call's transactions and legs for as long as the call is up, yet from now on only their
    dialog identity is read (a late 2xx of another fork: `_call_send`; the final's status: the
    CDR and `terminate`); every in-dialog request, relay and BYE is built from the dialogs. They
    are trimmed to those headers (`switchd.sip` ``Request.trim``): a held call no longer keeps their
    bodies and other headers with their parsed forms (~3 KiB a call, docs/performance.md, issue 16).
    """
    data.invite.trim()
    for leg in data.legs.values():
        leg.invite.trim()
    final = data.ist.final_response
    if final is not None:
        final.trim()


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
