"""Dispatch: who owns a message a connection read (the rules are in `_wire`'s docstring).

In order, for a message with Call-ID `c` read on the connection process `conn`:

1. the process registered as ``a_leg_name(c)`` exists → it gets ``Inbound(message, conn, at)``:
   the caller's ACK, BYE, CANCEL, a retransmitted INVITE, responses to our requests on the A-leg
   (routed by Call-ID, never by Request-URI: SIPp sends them to ``sip:service@switch``);
2. members of the group ``b_leg_key(c)`` exist → each gets the Inbound: responses from a gateway,
   and requests the callee sends in its dialog (its BYE);
3. nobody owns it:
   * a response is stray (the session ended): dropped, logged at debug;
   * an ACK is dropped (RFC 3261 §17: an ACK is never answered);
   * a method we do not implement: 405 with Allow when we know it, 501 when we don't;
   * a new INVITE (no To tag) → admission, then a CallSession under ``calls``:
     ``await start_child(calls, session_spec(invite, conn, at))``; refused for draining or at
     max_calls → 503 with Retry-After;
   * OPTIONS → 200 with Allow (503 while draining, so a load balancer's probe takes the node out);
   * anything else (BYE, CANCEL, an INVITE with a To tag ...) → 481.

Every answer goes back on the connection the request came in on (``Outbound`` to `conn`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from switchd.otp import AlreadyRegistered, ChildSpec, MaxChildren, Pid, dispatch, send, start_child, whereis
from switchd.sip import Method, Request, Response, make_response, new_tag

from ._admission import Admission, retry_after_header
from ._errors import Overloaded
from ._wire import Inbound, Outbound, a_leg_name, b_leg_key

log = logging.getLogger(__name__)

SessionSpec = Callable[[Request, Pid, float], ChildSpec]
"""``session_spec(invite, conn, received_at)``: the child spec of the CallSession for a new INVITE."""

ALLOWED = (Method.INVITE, Method.ACK, Method.BYE, Method.CANCEL, Method.OPTIONS)
"""The methods switchd implements, as its Allow header lists them."""

ALLOW_HEADER = ("Allow", ", ".join(ALLOWED))


@dataclass(frozen=True, slots=True, kw_only=True)
class Dispatcher:
    """The dispatch rules (module docstring) bound to this node's session factory and admission.

    ``session_spec``: builds the CallSession child spec for a new INVITE (S's ``call_session_spec``
    with the node's CallSettings bound).
    ``admission``: the node's `Admission` (draining, max_calls counters).
    ``calls``: the name of the DynamicSupervisor sessions start under, "calls".
    ``start_timeout``: seconds to wait for a session to start before answering 500, 5.0.
    """

    session_spec: SessionSpec
    admission: Admission
    calls: str = "calls"
    start_timeout: float = 5.0

    async def __call__(self, message: Request | Response, conn: Pid, received_at: float) -> None:
        """Deliver `message`, read on `conn` at `received_at`, to its owner or answer it here."""
        call_id = message.call_id
        inbound = Inbound(message, conn, received_at)
        owner = whereis(a_leg_name(call_id))
        if owner is not None:
            send(owner, inbound)
            return
        if dispatch(b_leg_key(call_id), inbound):
            return
        if isinstance(message, Response):
            log.debug("stray %d response for Call-ID %s dropped", message.status, call_id,
                      extra={"call_id": call_id})
            return
        await self._unowned(message, conn, received_at)

    async def _unowned(self, request: Request, conn: Pid, received_at: float) -> None:
        method = request.method
        call_id = request.call_id
        if method == Method.ACK:
            log.debug("ACK for no known dialog dropped", extra={"call_id": call_id})
            return
        if method not in ALLOWED:
            known = isinstance(method, Method)
            log.info("%s refused with %d", method, 405 if known else 501, extra={"call_id": call_id})
            _answer(conn, request, 405 if known else 501, headers=[ALLOW_HEADER])
            return
        if method == Method.OPTIONS:
            if self.admission.draining:
                _answer(conn, request, 503, headers=[retry_after_header(_draining(self.admission))])
            else:
                _answer(conn, request, 200, headers=[ALLOW_HEADER, ("Accept", "application/sdp")])
            return
        if method == Method.INVITE and request.to.tag is None:
            await self._new_call(request, conn, received_at)
            return
        log.info("%s for no known dialog: 481", method, extra={"call_id": call_id})
        _answer(conn, request, 481)

    async def _new_call(self, invite: Request, conn: Pid, received_at: float) -> None:
        call_id = invite.call_id
        try:
            self.admission.admit()
            try:
                await start_child(self.calls, self.session_spec(invite, conn, received_at),
                                  timeout=self.start_timeout)
            except MaxChildren as exc:
                raise self.admission.full(exc) from exc
        except Overloaded as exc:
            log.warning("new call refused with 503: %s", exc, extra={"call_id": call_id})
            _answer(conn, invite, 503, headers=[retry_after_header(exc)])
        except AlreadyRegistered:
            # Another connection started this Call-ID's session meanwhile: it is the owner.
            owner = whereis(a_leg_name(call_id))
            if owner is not None:
                send(owner, Inbound(invite, conn, received_at))
        except Exception as exc:  # noqa: BLE001 - whatever the session's init raised, or NoProcess while
            # "calls" restarts: the caller gets a 500 and this connection goes on
            log.error("cannot start a call session: %r", exc, extra={"call_id": call_id})
            _answer(conn, invite, 500)


def _draining(admission: Admission) -> Overloaded:
    return Overloaded("draining", retry_after=admission.drain_retry_after)


def _answer(conn: Pid, request: Request, status: int, *, headers: list[tuple[str, str]] | None = None) -> None:
    """Send `status` for `request` back on `conn`, with a To tag when the request had none."""
    to_tag = None if request.to.tag is not None else new_tag()
    send(conn, Outbound(make_response(request, status, to_tag=to_tag, headers=headers or ())))
