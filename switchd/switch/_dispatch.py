"""Dispatch: who owns a message a connection read (the rules are in `_wire`'s docstring).

In order, for a message with Call-ID `c` read from the peer at the end of the reply path `conn` (a
TCP connection process, or a UDP socket and the peer's address: `_wire`):

1. the process registered as ``a_leg_name(c)`` exists → it gets ``Inbound(message, conn, at)``:
   the caller's ACK, BYE, CANCEL, a retransmitted INVITE, every other request in its dialog (a
   re-INVITE, UPDATE, INFO ... whatever the method: the session relays or answers it), responses
   to our requests on the A-leg (routed by Call-ID, never by Request-URI: SIPp sends them to
   ``sip:service@switch``);
2. members of the group ``b_leg_key(c)`` exist → each gets the Inbound: responses from a gateway,
   and requests the callee sends in its dialog (its BYE, re-INVITE, INFO ...);
3. nobody owns it:
   * a response is stray (the session ended): dropped, logged at debug;
   * an ACK is dropped (RFC 3261 §17: an ACK is never answered);
   * a method we do not implement: 405 with Allow when we know it, 501 when we don't;
   * a new INVITE (no To tag) → `_validate.new_call_refusal` (400, 414, 483, 484), then — from a
     source the ACL does not trust, when calls are challenged — digest authentication (407 with
     challenges; 403 or 400 for credentials that fail, see `_authenticate`), then admission by the
     source address it came from, then a CallSession under ``calls``: ``await start_child(calls,
     session_spec(invite, conn, at, account))`` with the authenticated account (None when trusted
     or not challenged); refused for draining, over the node's or the source's calls per second, or
     at max_calls → 503 with Retry-After at once (counted and logged, rate-limited, by `Admission`);
   * REGISTER (when the node runs a registrar) → the source's REGISTER rate (503), digest
     authentication (401, always: a registration names an account), the checks of `_bindings` and
     the AOR must be the authenticated account's (403), then the registrar: 200 listing the
     user's bindings, or its refusal (404 for a domain or user not served, 423, 500 out of order);
   * OPTIONS → 200 with Allow (503 while draining, so a load balancer's probe takes the node out);
   * anything else (BYE, CANCEL, an INVITE with a To tag, UPDATE, INFO, MESSAGE ...) → 481: we serve
     those only in the dialog of a call (an INFO outside one gets 481 as RFC 6086 §4.2.2 wants; a
     pager-mode MESSAGE is not served).

Before any of that, a request from a network the ACL denies is answered 403 (an ACK from one is
dropped), whoever owns it; then every request but an ACK goes through `_validate.refusal`: a Request-URI
scheme we do not serve is a 416, an option tag we do not support a 420 — owned or not (RFC 3261
§8.2.2; an unowned request with a method we do not implement gets its 405/501 first, §8.2.1).
A refused request never reaches a session, and a refused INVITE starts nothing: no 100 Trying,
no session, no CDR.

Nothing here waits but a session's start (and a REGISTER, a challenged INVITE): the dispatcher
hands the start back to the reader as a `NewCall`, which the reader runs in a task of its own
while it reads on (`_starts`). So the 503 of an INVITE admission refuses is written by the reader
as soon as the INVITE is parsed, never behind the start of an admitted one.

Every answer goes back the way the request came in (``deliver(conn, ...)``). On UDP the socket
absorbed a retransmitted request before it got here, so each rule runs once per request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import trio

from switchd.billing import AccountInfo
from switchd.otp import (
    AlreadyRegistered,
    ChildSpec,
    MaxChildren,
    OTPError,
    dispatch,
    members,
    send,
    start_child,
    whereis,
)
from switchd.sip import Method, Request, Response, make_response, new_tag

from ._acl import Acl, Trust
from ._admission import Admission, retry_after_header
from ._authenticate import Authenticated, Authenticator, AuthOutcome, AuthRefused, Challenged
from ._bindings import RegisterRefusal, contact_headers, read_register
from ._errors import Overloaded
from ._registrar import register
from ._starts import DONE, NewCall
from ._tally import Cause, sip_cause
from ._validate import Refusal, new_call_refusal, refusal
from ._wire import Inbound, ReplyPath, UdpPeer, a_leg_name, b_leg_key, deliver

log = logging.getLogger(__name__)


class SessionSpec(Protocol):
    """``session_spec(invite, conn, received_at, account)``: the child spec of the CallSession for a new
    INVITE from the end of `conn`; `account` is the caller's authenticated account, None when it was
    not challenged."""

    def __call__(self, invite: Request, conn: ReplyPath, received_at: float, account: AccountInfo | None = None,
                 /) -> ChildSpec: ...


ALLOWED = (Method.INVITE, Method.ACK, Method.BYE, Method.CANCEL, Method.OPTIONS, Method.UPDATE, Method.INFO,
           Method.MESSAGE)
"""The methods switchd implements, as its Allow header lists them (and REGISTER with a registrar); UPDATE,
INFO and MESSAGE only in the dialog of a call, where its session relays them (`_call_relay`)."""

ALLOW_HEADER = ("Allow", ", ".join(ALLOWED))
ACCOUNTS_RETRY_AFTER = 5
"""Seconds a 503 asks a phone to wait when the accounts cannot be looked up (the registrar restarting)."""
_WITH_REGISTER = ("Allow", ", ".join((*ALLOWED, Method.REGISTER)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Dispatcher:
    """The dispatch rules (module docstring) bound to this node's session factory and admission.

    ``session_spec``: builds the CallSession child spec for a new INVITE (S's ``call_session_spec``
    with the node's CallSettings bound).
    ``admission``: the node's `Admission` (the drain, the call rates, the max_calls refusals; its
    ``rejections`` tally also counts the error answers given here).
    ``calls``: the name of the DynamicSupervisor sessions start under, "calls".
    ``start_timeout``: seconds to wait for a session to start before answering 500, 5.0.
    ``acl``: who is denied (403) and who trusted (never challenged), `Acl()`: nobody.
    ``authenticator``: checks digest credentials; None: nothing is challenged (and no REGISTER served).
    ``challenge_calls``: challenge new INVITEs from sources the ACL does not trust (407), False.
    ``registrar``: serve REGISTER with the process "registrar" (needs an authenticator), False.
    ``registrar_timeout``: seconds a REGISTER may wait for the registrar before a 500, 2.0.
    """

    session_spec: SessionSpec
    admission: Admission
    calls: str = "calls"
    start_timeout: float = 5.0
    acl: Acl = field(default_factory=Acl)
    authenticator: Authenticator | None = None
    challenge_calls: bool = False
    registrar: bool = False
    registrar_timeout: float = 2.0

    def __post_init__(self) -> None:
        if (self.registrar or self.challenge_calls) and self.authenticator is None:
            raise ValueError("Dispatcher: a registrar or challenged calls need an authenticator")

    @property
    def allow(self) -> tuple[str, str]:
        """The Allow header: the methods implemented, REGISTER too with a registrar."""
        return _WITH_REGISTER if self.registrar else ALLOW_HEADER

    def _implements(self, method: Method | str) -> bool:
        return method in ALLOWED or (method == Method.REGISTER and self.registrar)

    def __call__(self, message: Request | Response, conn: ReplyPath, received_at: float,
                 source: str = "") -> Awaitable[None]:
        """Deliver `message`, read on `conn` at `received_at` from the address `source`, to its owner or answer it.

        Decided in the call, without a wait, for everything but what needs another process's answer:
        the result is `DONE` then, a `NewCall` for an admitted new INVITE (its session's start), a
        coroutine for a REGISTER or a challenged INVITE. A reader runs a NewCall in a task of its
        own and awaits the rest (`_starts`); ``await dispatcher(...)`` does it all in line.
        """
        call_id = message.call_id
        trust = self.acl.classify(source)
        if type(message) is Request:
            if trust is Trust.DENIED:
                self._denied(conn, message, source)
                return DONE
            refused = refusal(message)
            if refused is not None:
                if not self._implements(message.method) and not _owned(call_id):
                    refused = self._not_implemented(message.method)  # §8.2.1 before §8.2.2
                self._refuse(conn, message, refused)
                return DONE
        inbound = Inbound(message, conn, received_at)
        owner = whereis(a_leg_name(call_id))
        if owner is not None:
            send(owner, inbound)
            return DONE
        if dispatch(b_leg_key(call_id), inbound):
            return DONE
        if type(message) is not Request:
            log.debug("stray %d response for Call-ID %s dropped", message.status, call_id,  # type: ignore[union-attr]
                      extra={"call_id": call_id})
            return DONE
        return self._unowned(message, conn, received_at, source, trust)

    def _unowned(self, request: Request, conn: ReplyPath, received_at: float, source: str,
                 trust: Trust) -> Awaitable[None]:
        method = request.method
        call_id = request.call_id
        if method == Method.ACK:
            log.debug("ACK for no known dialog dropped", extra={"call_id": call_id})
            return DONE
        if not self._implements(method):
            self._refuse(conn, request, self._not_implemented(method))
            return DONE
        if method == Method.OPTIONS:
            if self.admission.draining:
                _answer(conn, request, 503, headers=[retry_after_header(_draining(self.admission))])
            else:
                _answer(conn, request, 200, headers=[self.allow, ("Accept", "application/sdp")])
            return DONE
        if method == Method.INVITE and request.to.tag is None:
            return self._new_call(request, conn, received_at, source, trust)
        if method == Method.REGISTER:
            return self._register(request, conn, source)
        log.info("%s for no known dialog: 481", method, extra={"call_id": call_id})
        self.admission.rejections.count(sip_cause(481))
        _answer(conn, request, 481)
        return DONE

    def _new_call(self, invite: Request, conn: ReplyPath, received_at: float, source: str,
                  trust: Trust) -> Awaitable[None]:
        """Refuse a new INVITE now (edge checks, admission), or hand back what is left: its session's start,
        or — when it is to be challenged — the authentication, then admission and the start."""
        refused = new_call_refusal(invite)
        if refused is not None:
            self._refuse(conn, invite, refused)
            return DONE
        # A draining node refuses at once (admission, below) rather than have the caller authenticate first.
        if self.challenge_calls and trust is not Trust.TRUSTED and not self.admission.draining:
            return self._challenged_call(invite, conn, received_at, source)
        return self._admit(invite, conn, received_at, source, None)

    async def _challenged_call(self, invite: Request, conn: ReplyPath, received_at: float, source: str) -> None:
        outcome = await self._authenticate(conn, invite, source, proxy=True)
        if outcome is not None:
            await self._admit(invite, conn, received_at, source, outcome.account)

    def _admit(self, invite: Request, conn: ReplyPath, received_at: float, source: str,
               account: AccountInfo | None) -> Awaitable[None]:
        """Admission (503 now when refused, counted and logged rate-limited by `Admission`), then the start."""
        call_id = invite.call_id
        try:
            self.admission.admit(source, call_id=call_id)
        except Overloaded as exc:
            _answer(conn, invite, 503, headers=[retry_after_header(exc)])
            return DONE
        return NewCall(call_id, partial(self._start, invite, conn, received_at, account))

    async def _start(self, invite: Request, conn: ReplyPath, received_at: float, account: AccountInfo | None) -> None:
        """Start the admitted INVITE's CallSession; answer the INVITE when that fails."""
        call_id = invite.call_id
        try:
            try:
                await start_child(self.calls, self.session_spec(invite, conn, received_at, account),
                                  timeout=self.start_timeout)
            except MaxChildren as exc:
                raise self.admission.full(exc, call_id=call_id) from exc
        except Overloaded as exc:  # counted and logged (rate-limited) by admission
            _answer(conn, invite, 503, headers=[retry_after_header(exc)])
        except AlreadyRegistered:
            # Another connection started this Call-ID's session meanwhile: it is the owner.
            owner = whereis(a_leg_name(call_id))
            if owner is not None:
                send(owner, Inbound(invite, conn, received_at))
        except Exception as exc:  # noqa: BLE001 - whatever the session's init raised, or NoProcess while
            # "calls" restarts: the caller gets a 500 and this connection goes on
            log.error("cannot start a call session: %r", exc, extra={"call_id": call_id})
            self.admission.rejections.count(sip_cause(500))
            _answer(conn, invite, 500)

    async def _register(self, request: Request, conn: ReplyPath, source: str) -> None:
        """Serve a REGISTER (see the module docstring)."""
        call_id = request.call_id
        try:
            self.admission.admit_register(source, call_id=call_id)
        except Overloaded as exc:  # counted and logged (rate-limited) by admission
            _answer(conn, request, 503, headers=[retry_after_header(exc)])
            return
        outcome = await self._authenticate(conn, request, source, proxy=False)
        if outcome is None:
            return
        checked = read_register(request, _origin(conn, source), self.acl)
        if isinstance(checked, RegisterRefusal):
            self._refuse(conn, request, Refusal(checked.status, checked.reason, checked.why, checked.headers))
            return
        user = outcome.account.username
        if checked.user != user:  # §10.3 step 3: an account registers its own address only
            self._not_authenticated(conn, request, AuthRefused(403, None, f"account {user!r} may not register "
                                                                          f"{checked.user!r}"), source)
            return
        try:
            result = await register(checked, timeout=self.registrar_timeout)
        except OTPError as exc:  # restarting, or too slow: the phone retries
            log.error("REGISTER of %s: registrar unavailable: %s", user, exc, extra={"call_id": call_id})
            self.admission.rejections.count(sip_cause(500))
            _answer(conn, request, 500)
            return
        if isinstance(result, RegisterRefusal):
            self._refuse(conn, request, Refusal(result.status, result.reason, result.why, result.headers))
            return
        _answer(conn, request, 200, headers=contact_headers(result, trio.current_time()))

    async def _authenticate(self, conn: ReplyPath, request: Request, source: str, *, proxy: bool) -> Authenticated | None:
        """The request's account, or None once it was answered (challenge, refusal, or 503 when the
        accounts cannot be read: the registrar restarting is no reason to tell a phone it is forbidden)."""
        assert self.authenticator is not None
        try:
            outcome = await self.authenticator.check(request, proxy=proxy, now=trio.current_time())
        except OTPError as exc:
            log.error("%s: accounts unavailable: %s", request.method, exc, extra={"call_id": request.call_id})
            self.admission.rejections.count(sip_cause(503))
            _answer(conn, request, 503, headers=[("Retry-After", str(ACCOUNTS_RETRY_AFTER))])
            return None
        if isinstance(outcome, Authenticated):
            return outcome
        self._not_authenticated(conn, request, outcome, source)
        return None

    def _not_authenticated(self, conn: ReplyPath, request: Request, outcome: AuthOutcome, source: str) -> None:
        """Answer a request whose credentials did not pass: a challenge, or a refusal counted as ``auth``."""
        if isinstance(outcome, Challenged):
            if outcome.stale:  # a replay or an old nonce: worth a line; a first challenge is routine
                log.info("%s from %s challenged again: %s", request.method, source, outcome.why,
                         extra={"call_id": request.call_id})
            _answer(conn, request, outcome.status, headers=list(outcome.headers))
            return
        assert isinstance(outcome, AuthRefused)
        self.admission.rejections.note(Cause.AUTH, "%s from %s refused with %d: %s", request.method, source,
                                       outcome.status, outcome.why,
                                       extra={"call_id": request.call_id, "status": outcome.status})
        _answer(conn, request, outcome.status, reason=outcome.reason)

    def _denied(self, conn: ReplyPath, request: Request, source: str) -> None:
        """A request from a denied network: 403 (an ACK is dropped), counted and logged as ``acl``."""
        self.admission.rejections.note(Cause.ACL, "%s from %s refused with 403: denied by the ACL", request.method,
                                       source, extra={"call_id": request.call_id})
        if request.method != Method.ACK:
            _answer(conn, request, 403)

    def _not_implemented(self, method: Method | str) -> Refusal:
        known = isinstance(method, Method)
        return Refusal(405 if known else 501, None, "method not implemented", (self.allow,))

    def _refuse(self, conn: ReplyPath, request: Request, refused: Refusal) -> None:
        """Answer `request` with the refusal the edge checks found, and count it by its status."""
        log.info("%s refused with %d: %s", request.method, refused.status, refused.why,
                 extra={"call_id": request.call_id, "status": refused.status})
        self.admission.rejections.count(sip_cause(refused.status))
        _answer(conn, request, refused.status, headers=list(refused.headers), reason=refused.reason)


def _origin(conn: ReplyPath, source: str) -> str:
    """Where a REGISTER came from, as its bindings keep it: the address and port of a UDP peer (calls
    to the phone go back there), the address of a TCP one (calls open a connection to its Contact)."""
    if isinstance(conn, UdpPeer):
        host, port = conn.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return source


def _draining(admission: Admission) -> Overloaded:
    return Overloaded("draining", retry_after=admission.drain_retry_after)


def _owned(call_id: str) -> bool:
    return whereis(a_leg_name(call_id)) is not None or bool(members(b_leg_key(call_id)))


def _answer(conn: ReplyPath, request: Request, status: int, *, headers: list[tuple[str, str]] | None = None,
            reason: str | None = None) -> None:
    """Send `status` for `request` back the way it came, with a To tag when the request had none."""
    to_tag = None if request.to.tag is not None else new_tag()
    deliver(conn, make_response(request, status, reason, to_tag=to_tag, headers=headers or ()))
