"""Outbound registration: switchd registers itself with a SIP trunk that asks for it (a gateway's `registration`).

One `OutboundRegistration` (a GenServer, registered as ``trunk_name(gateway)``) per such gateway,
under the ``registrations`` supervisor (`registrations_spec`). It sends REGISTER through the
gateway's link (like a call's B-leg: ``ToGateway``, the answers dispatched back by Call-ID, for
which it joins ``b_leg_key(call_id)``), and:

* answers a 401/407 with digest credentials (`switchd.sip.authorization`: the first challenge it
  can answer — MD5 or SHA-256, qop=auth or none); a second challenge to credentials just sent
  means they are wrong — a failure — unless it says ``stale=true`` (answered again, at most
  `MAX_STALE` times in a row);
* takes a 423 Interval Too Brief by asking again with the trunk's Min-Expires;
* once registered, registers again at ``refresh_at`` (90 %) of the time granted — the ``expires``
  of our Contact in the 200, else its Expires header, else what was asked;
* after a failure (a final error, credentials refused, no answer within Timer F, the gateway
  unreachable) tries again after ``retry_min`` seconds, doubling up to ``retry_max``; a success
  resets it.

Every REGISTER of one process has one Call-ID and a growing CSeq (RFC 3261 §10.2.4). A refresh
starts without credentials (the trunk challenges it afresh: a nonce kept for an hour would be
stale anyway). State changes are logged (registered, failed and why, registered again), not every
refresh; the password is in no log line: it lives in the `TrunkRegistration` (left out of its
repr) and in the digest computation, and only the digest response goes on the wire.

Shut down by its supervisor (reason ``shutdown``), a registered process un-REGISTERs (Expires: 0,
RFC 3261 §10.2.2), answering one more challenge if it gets one, and waits for the answer up to
``unregister_timeout``; it does not after a crash, since the restarted process registers the same
Contact again at once. ``registrations`` starts after ``sip`` and so stops before it: the gateway
links are still up for the un-REGISTER.

The Contact it registers is ``sip:<username>@<sip.listen>;transport=tcp`` — for a gateway on UDP
``sip:<username>@<first sip.listen_udp>;transport=udp``, the REGISTER then going out over UDP from
that socket (retransmitted on Timer E) —: the trunk sends calls for the account there, and they
come in like any INVITE (a trunk's network is normally in ``acl.trusted``, so they are not
challenged).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial

import trio

from switchd.otp import (
    Caller,
    ChildSpec,
    ChildType,
    ExitReason,
    GenServer,
    NoProcess,
    NoReply,
    Reply,
    Restart,
    Stop,
    Strategy,
    Supervisor,
    SupervisorFlags,
    TimerRef,
    call,
    cancel_timer,
    delete_child,
    join,
    receive,
    self_pid,
    send,
    send_after,
    start_child,
    terminate_child,
    whereis,
)
from switchd.sip import (
    Challenge,
    LocalProtocolError,
    Method,
    NonInviteClientTransaction,
    RemoteProtocolError,
    Request,
    Response,
    TimedOut,
    TimerConfig,
    ToTransactionUser,
    TransactionOutput,
    Transmit,
    authorization,
    make_request,
    new_call_id,
    new_tag,
    parse_uri,
)

from ._routing import Gateway, Transport, TrunkRegistration
from ._wire import GatewayFailed, Inbound, ToGateway, b_leg_key, gateway_name

log = logging.getLogger(__name__)

__all__ = [
    "REGISTRATIONS", "OutboundRegistration", "TrunkReport", "TrunkSettings", "TrunkStatus", "registration_spec",
    "registrations_spec", "trunk_name", "trunk_status", "update_registrations",
]

REGISTRATIONS = "registrations"
"""The registered name of the supervisor of the outbound registrations."""

MAX_STALE = 3
"""Challenges with ``stale=true`` answered in a row before the attempt counts as failed (a trunk
that calls every nonce stale would otherwise be asked for ever)."""


def trunk_name(gateway: str) -> str:
    """The registered name of the process that registers with `gateway`."""
    return f"trunk:{gateway}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkSettings:
    """How every outbound registration of a node behaves.

    ``local_address``: our TCP ``host:port``, in the Via and the Contact, "127.0.0.1:5060".
    ``udp_address``: our UDP ``host:port`` (the first of sip.listen_udp), used for gateways on UDP;
    None: the node has no UDP socket, and every registration goes over TCP.
    ``timers``: the transaction timers (Timer F bounds the wait for an answer), TimerConfig().
    ``refresh_at``: the share of the granted time after which the registration is refreshed, 0.9.
    ``retry_min``, ``retry_max``: seconds before a new try after a failure, doubling from the first
    to the second, 30.0 and 600.0.
    ``unregister_timeout``: seconds the un-REGISTER at shutdown may wait for its answer, 2.0.
    """

    local_address: str = "127.0.0.1:5060"
    udp_address: str | None = None
    timers: TimerConfig = field(default_factory=TimerConfig)
    refresh_at: float = 0.9
    retry_min: float = 30.0
    retry_max: float = 600.0
    unregister_timeout: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.refresh_at < 1:
            raise ValueError(f"TrunkSettings.refresh_at must be between 0 and 1, not {self.refresh_at!r}")
        if not 0 < self.retry_min <= self.retry_max:
            raise ValueError("TrunkSettings: need 0 < retry_min <= retry_max")
        if not 0 <= self.unregister_timeout < math.inf:
            raise ValueError(f"TrunkSettings.unregister_timeout must be finite and >= 0, "
                             f"not {self.unregister_timeout!r}")


class TrunkStatus(StrEnum):
    """Where an outbound registration is."""

    REGISTERING = "registering"  # the first REGISTER is out
    REGISTERED = "registered"  # the trunk took it; a refresh is due later
    FAILED = "failed"  # the last attempt failed; a new one is due later
    UNREGISTERED = "unregistered"  # shut down: the trunk took the un-REGISTER


@dataclass(frozen=True, slots=True)
class TrunkReport:
    """What `trunk_status` tells of one registration."""

    status: TrunkStatus
    granted: int | None  # seconds the trunk granted last time; None before it granted any
    reason: str  # why the last attempt failed; "" unless FAILED
    failures: int  # in a row; 0 once registered
    registrations: int  # REGISTERs the trunk took, refreshes included


@dataclass(slots=True)
class TrunkState:
    """What an OutboundRegistration holds between messages."""

    gateway: Gateway
    registration: TrunkRegistration
    settings: TrunkSettings
    call_id: str
    from_tag: str
    cseq: int = 0
    expires: int = 3600  # what we ask for (raised by a 423)
    status: TrunkStatus = TrunkStatus.REGISTERING
    granted: int | None = None
    failures: int = 0
    reason: str = ""
    registrations: int = 0
    txn: NonInviteClientTransaction | None = None
    challenge: tuple[str, Challenge] | None = None  # (the header to answer in, the challenge answered)
    nc: int = 0  # nonce count used with the challenge's nonce
    stale: int = 0  # stale challenges answered in a row in this attempt
    unregistering: bool = False  # the un-REGISTER of the shutdown is out: no retry, no refresh
    txn_timer: TimerRef | None = None
    next_timer: TimerRef | None = None


@dataclass(frozen=True, slots=True)
class _Send:
    """Time to (re-)register."""


@dataclass(frozen=True, slots=True)
class _TxnTimer:
    """The transaction's deadline passed."""


@dataclass(frozen=True, slots=True)
class _Report:
    """Request: the TrunkReport."""


class OutboundRegistration(GenServer[TrunkState]):
    """Registers switchd with one trunk and keeps it registered (see the module docstring)."""

    async def init(self, gateway: Gateway, settings: TrunkSettings) -> TrunkState:
        if gateway.registration is None:
            raise ValueError(f"gateway {gateway.name!r} has no registration")
        host = settings.local_address.rpartition(":")[0] or None
        state = TrunkState(gateway, gateway.registration, settings, new_call_id(host), new_tag(),
                           expires=gateway.registration.expires)
        join(b_leg_key(state.call_id))
        send(self_pid(), _Send())  # the work starts after init: a trunk that is down never fails the start
        return state

    async def handle_call(self, request: object, caller: Caller, state: TrunkState) -> Reply[TrunkState]:
        if isinstance(request, _Report):
            return Reply(TrunkReport(state.status, state.granted, state.reason, state.failures,
                                     state.registrations), state)
        raise ValueError(f"{trunk_name(state.gateway.name)}: unknown request {request!r}")

    async def handle_info(self, msg: object, state: TrunkState) -> NoReply[TrunkState] | Stop[TrunkState]:
        if isinstance(msg, _Send):
            state.next_timer = None
            state.challenge, state.stale = None, 0
            self._send(state)
        elif not self._event(msg, state):
            return await super().handle_info(msg, state)
        return NoReply(state)

    def _event(self, msg: object, state: TrunkState) -> bool:
        """Feed an answer, a link failure or a timer to the REGISTER out; False for anything else."""
        match msg:
            case Inbound(message=Response() as response):
                self._response(response, state)
            case Inbound():
                pass  # a request on our Call-ID: nothing a registration answers
            case GatewayFailed(reason=reason):
                if state.txn is not None:
                    self._failed(state, f"gateway unreachable: {reason}")
            case _TxnTimer():
                state.txn_timer = None
                self._timers(state)
            case _:
                return False
        return True

    async def terminate(self, reason: ExitReason, state: TrunkState) -> None:
        """Shut down while registered: un-REGISTER, and wait (bounded) for the trunk to take it."""
        if state.status is TrunkStatus.REGISTERED and reason in ("shutdown", "normal"):
            await self._unregister(state)

    async def _unregister(self, state: TrunkState) -> None:
        self._cancel_timer(state, "next_timer")
        self._cancel_timer(state, "txn_timer")
        state.unregistering, state.expires, state.stale, state.txn = True, 0, 0, None
        self._send(state)  # with the credentials for the last challenge, as a refresh would be
        with trio.move_on_after(state.settings.unregister_timeout):
            while state.txn is not None:
                self._event(await receive(), state)  # anything else (a status call) goes unanswered now
        if state.txn is not None:
            log.info("%s: no answer to the un-REGISTER within %gs; the trunk lets it expire",
                     trunk_name(state.gateway.name), state.settings.unregister_timeout,
                     extra={"gateway": state.gateway.name})

    def format_status(self, state: TrunkState) -> str:
        granted = f" for {state.granted}s" if state.status is TrunkStatus.REGISTERED else ""
        why = f" ({state.reason})" if state.status is TrunkStatus.FAILED else ""
        return f"{state.status.value}{granted}{why} at {state.gateway.address}"

    # -- sending --------------------------------------------------------------------------------------

    def _request(self, state: TrunkState) -> Request:
        reg = state.registration
        local, transport = _local(state)
        domain = reg.domain or state.gateway.host
        aor = f"<sip:{reg.username}@{domain}>"
        uri = f"sip:{domain}"
        state.cseq += 1
        headers = [("Expires", str(state.expires))]
        if state.challenge is not None:
            header, challenge = state.challenge
            state.nc += 1
            headers.append((header, authorization(challenge, method="REGISTER", uri=uri, username=reg.username,
                                                  password=reg.password, nc=state.nc, cnonce=new_tag())))
        return make_request(Method.REGISTER, uri, from_=f"{aor};tag={state.from_tag}", to=aor, sent_by=local,
                            transport=transport.via, contact=f"<sip:{reg.username}@{local};transport={transport}>",
                            call_id=state.call_id, cseq=state.cseq, headers=headers)

    def _send(self, state: TrunkState) -> None:
        try:
            request = self._request(state)
        except LocalProtocolError as exc:  # a username or domain that makes no URI
            self._failed(state, str(exc))
            return
        state.txn = NonInviteClientTransaction(request, now=trio.current_time(), timers=state.settings.timers,
                                               reliable=request.top_via.reliable)  # on UDP it retransmits
        self._arm(state)
        self._transmit(request, state)

    def _transmit(self, request: Request, state: TrunkState) -> None:
        try:
            send(gateway_name(state.gateway.name), ToGateway(request, self_pid()))
        except NoProcess:
            self._failed(state, "no link to the gateway")

    def _arm(self, state: TrunkState) -> None:
        self._cancel_timer(state, "txn_timer")
        deadline = None if state.txn is None else state.txn.next_deadline
        if deadline is not None:
            state.txn_timer = send_after(self_pid(), _TxnTimer(), max(0.0, deadline - trio.current_time()))

    @staticmethod
    def _cancel_timer(state: TrunkState, which: str) -> None:
        timer: TimerRef | None = getattr(state, which)
        if timer is not None:
            cancel_timer(timer)
            setattr(state, which, None)

    def _later(self, state: TrunkState, delay: float) -> None:
        self._cancel_timer(state, "next_timer")
        state.next_timer = send_after(self_pid(), _Send(), delay)

    # -- answers --------------------------------------------------------------------------------------

    def _timers(self, state: TrunkState) -> None:
        if state.txn is not None:
            self._outputs(state, state.txn.handle_timeout(trio.current_time()))

    def _response(self, response: Response, state: TrunkState) -> None:
        txn = state.txn
        if txn is None or response.cseq.seq != txn.request.cseq.seq:
            return  # an answer to an earlier REGISTER (or a retransmission): nothing waits for it
        self._outputs(state, txn.receive(response, trio.current_time()))

    def _outputs(self, state: TrunkState, outputs: list[TransactionOutput]) -> None:
        for out in outputs:
            if isinstance(out, Transmit) and isinstance(out.message, Request):
                self._transmit(out.message, state)  # a retransmission (UDP's Timer E)
            elif isinstance(out, TimedOut):
                state.txn = None
                self._failed(state, f"no answer within Timer {out.timer}")
                return
            elif (isinstance(out, ToTransactionUser) and isinstance(out.message, Response)
                    and out.message.status >= 200):
                state.txn = None
                self._cancel_timer(state, "txn_timer")
                self._final(out.message, state)
                return
        self._arm(state)

    def _final(self, response: Response, state: TrunkState) -> None:
        status = response.status
        if 200 <= status < 300:
            self._unregistered(state) if state.unregistering else self._registered(response, state)
        elif status in (401, 407):
            self._challenged(response, state)
        elif status == 423 and not state.unregistering:
            self._too_brief(response, state)
        else:
            self._failed(state, f"{status} {response.reason}")

    def _challenged(self, response: Response, state: TrunkState) -> None:
        header = "Authorization" if response.status == 401 else "Proxy-Authorization"
        try:
            challenges = response.www_authenticate if response.status == 401 else response.proxy_authenticate
        except RemoteProtocolError as exc:
            self._failed(state, f"{response.status} with a challenge that does not parse: {exc}")
            return
        challenge = _answerable(challenges, state.registration)
        if challenge is None:
            offered = ", ".join(f"{c.scheme} {c.param('algorithm') or ''}".strip() for c in challenges) or "none"
            self._failed(state, f"{response.status} with no challenge switchd can answer (offered: {offered})")
            return
        if state.challenge is not None:
            if (challenge.param("stale") or "").lower() != "true":
                self._failed(state, f"{response.status} {response.reason}: credentials refused")
                return
            state.stale += 1
            if state.stale > MAX_STALE:
                self._failed(state, f"{response.status}: {MAX_STALE} stale nonces in a row")
                return
        state.challenge, state.nc = (header, challenge), 0
        self._send(state)

    def _too_brief(self, response: Response, state: TrunkState) -> None:
        text = (response.headers.get("Min-Expires") or "").strip()
        if not text.isdigit() or int(text) <= state.expires:
            self._failed(state, f"423 with Min-Expires {text!r}")
            return
        state.expires = int(text)
        log.info("%s: the trunk wants at least %ds; asking for that", trunk_name(state.gateway.name), state.expires,
                 extra={"gateway": state.gateway.name, "expires": state.expires})
        self._send(state)

    def _registered(self, response: Response, state: TrunkState) -> None:
        granted = _granted(response, state)
        if granted <= 0:
            self._failed(state, "the trunk granted 0 s")
            return
        was = state.status
        state.status, state.granted, state.failures, state.reason = TrunkStatus.REGISTERED, granted, 0, ""
        state.registrations += 1
        if was is not TrunkStatus.REGISTERED:
            log.info("%s: registered with %s for %ds", trunk_name(state.gateway.name), state.gateway.address, granted,
                     extra={"gateway": state.gateway.name, "expires": granted})
        self._later(state, granted * state.settings.refresh_at)

    def _unregistered(self, state: TrunkState) -> None:
        state.status, state.granted = TrunkStatus.UNREGISTERED, None
        log.info("%s: unregistered from %s", trunk_name(state.gateway.name), state.gateway.address,
                 extra={"gateway": state.gateway.name})

    def _failed(self, state: TrunkState, reason: str) -> None:
        state.txn = None
        self._cancel_timer(state, "txn_timer")
        if state.unregistering:
            log.info("%s: un-REGISTER failed (%s); the trunk lets it expire", trunk_name(state.gateway.name), reason,
                     extra={"gateway": state.gateway.name})
            return
        settings = state.settings
        delay = min(settings.retry_max, settings.retry_min * 2 ** min(state.failures, 30))
        state.failures += 1
        changed = state.status is not TrunkStatus.FAILED or reason != state.reason
        state.status, state.reason = TrunkStatus.FAILED, reason
        log.log(logging.WARNING if changed else logging.DEBUG,
                "%s: registration with %s failed (%s); trying again in %gs", trunk_name(state.gateway.name),
                state.gateway.address, reason, delay,
                extra={"gateway": state.gateway.name, "retry_in": delay, "failures": state.failures})
        self._later(state, delay)


def _local(state: TrunkState) -> tuple[str, Transport]:
    """Our address towards the gateway and the transport: its own (UDP only with a UDP socket), else TCP."""
    udp = state.settings.udp_address
    if state.gateway.transport is Transport.UDP and udp is not None:
        return udp, Transport.UDP
    return state.settings.local_address, Transport.TCP


def _answerable(challenges: Sequence[Challenge], registration: TrunkRegistration) -> Challenge | None:
    """The first of `challenges` switchd can answer (the trunk's order is its preference, RFC 8760 §2.4)."""
    for challenge in challenges:
        try:
            authorization(challenge, method="REGISTER", uri="sip:check", username=registration.username,
                          password=registration.password, nc=1, cnonce="check")
        except LocalProtocolError:
            continue  # another scheme or algorithm, auth-int only, no nonce: try the next one
        return challenge
    return None


def _granted(response: Response, state: TrunkState) -> int:
    """Seconds the trunk granted: our Contact's expires in the 200, else Expires, else what we asked."""
    ours = parse_uri(f"sip:{state.registration.username}@{_local(state)[0]}")
    try:
        for contact in response.contact:
            uri, value = contact.uri, contact.param("expires")
            if ((uri.user, uri.host.lower(), uri.port) == (ours.user, ours.host.lower(), ours.port)
                    and value is not None and value.isdigit()):
                return int(value)
    except RemoteProtocolError:
        pass  # a Contact we cannot read: fall back to Expires
    header = (response.headers.get("Expires") or "").strip()
    return int(header) if header.isdigit() else state.expires


# -- the supervisor and its clients -------------------------------------------------------------------


def registration_spec(gateway: Gateway, settings: TrunkSettings) -> ChildSpec:
    """The child spec of `gateway`'s OutboundRegistration: id and name ``trunk_name(gateway.name)``, PERMANENT.

    Its shutdown leaves the un-REGISTER its ``unregister_timeout`` and a second to spare.
    """
    name = trunk_name(gateway.name)
    return ChildSpec(id=name, start=partial(OutboundRegistration.start_link, gateway, settings, name=name),
                     restart=Restart.PERMANENT, shutdown=settings.unregister_timeout + 1.0)


def registrations_spec(gateways: Sequence[Gateway], settings: TrunkSettings) -> ChildSpec:
    """The ``registrations`` supervisor: one OutboundRegistration per gateway of `gateways` with a registration.

    one_for_one (the registrations share nothing), 10 restarts in 60 s: a registration that keeps
    crashing escalates rather than hammering a trunk. Start it after the gateway links.
    """
    children = [registration_spec(gw, settings) for gw in gateways if gw.registration is not None]
    flags = SupervisorFlags(Strategy.ONE_FOR_ONE, max_restarts=10, max_seconds=60.0)
    return ChildSpec(id=REGISTRATIONS, start=partial(Supervisor.start_link, children, flags, name=REGISTRATIONS),
                     restart=Restart.PERMANENT, type=ChildType.SUPERVISOR, shutdown=math.inf)


async def update_registrations(old: Sequence[Gateway], new: Sequence[Gateway], settings: TrunkSettings) -> list[str]:
    """Bring ``registrations`` from the gateways `old` to `new` (a reload); returns what changed.

    As the gateway links do (`update_gateway_links`): a gateway of `new` that now has a
    registration gets a process; one whose registration or address changed gets a new one (the
    old one un-REGISTERs first); one whose registration was removed has its process stopped (it
    un-REGISTERs). A gateway of `old` missing from `new` keeps its registration. Raises NoProcess
    if ``registrations`` is not running.
    """
    if whereis(REGISTRATIONS) is None:
        raise NoProcess(f"no process is registered as {REGISTRATIONS!r}")
    before = {gw.name: gw for gw in old}
    changes: list[str] = []
    for gw in new:
        previous = before.get(gw.name)
        had = previous is not None and previous.registration is not None
        if previous is not None and replace(previous, rate_plan=gw.rate_plan) == gw:
            continue  # the same trunk (a new rate plan changes nothing for its registration)
        if had:
            await terminate_child(REGISTRATIONS, trunk_name(gw.name))
            await delete_child(REGISTRATIONS, trunk_name(gw.name))
        if gw.registration is not None:
            await start_child(REGISTRATIONS, registration_spec(gw, settings))
            changes.append(f"{gw.name}: registration renewed" if had else f"{gw.name}: registering with {gw.address}")
        elif had:
            changes.append(f"{gw.name}: registration stopped")
    return changes


async def trunk_status(gateway: str, *, timeout: float = 1.0) -> TrunkReport:
    """Where the registration with `gateway` is (for status lines and tests); NoProcess when it has none."""
    report: TrunkReport = await call(trunk_name(gateway), _Report(), timeout=timeout)
    return report
