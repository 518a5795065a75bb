"""CallSession: the B2BUA of one call, a StateMachine under the "calls" DynamicSupervisor.

One session per caller's INVITE, registered as `a_leg_name(call_id)` and member of
`b_leg_key(b_call_id)` for each B-leg it places. It owns every transaction and dialog of the call
and is the only one that writes its CDR. States (`CallState`) and what each handles:

============  =====================================================================================
ROUTING       the INVITE is in. One internal event sends 100 Trying, opens the CDR (submitted, never
              awaited: see `_call_cdr`), looks the number up, places the first B-leg.
CALLING       a B-leg INVITE is out and nothing was relayed from it yet. Failover is possible.
RINGING       a 180/183 of the current B-leg was relayed to the caller (To tag fixed once per call).
CONNECTING    the callee answered; its 200 was relayed and is retransmitted until the caller's ACK,
              which is then relayed to the B-leg as the ACK of its 2xx (through the B dialog).
ANSWERED      both dialogs confirmed; a BYE from either side is answered 200 and passed on, other
              requests in either dialog are relayed to the other (`_call_relay`).
ENDING        the caller has its final answer or its BYE, the CDR is closed; the session waits for
              the last answers due (the 487 after a CANCEL, the 200 to a BYE) at most 64*T1, then
              exits "normal". A transaction whose connection is gone ends at once (below).
============  =====================================================================================

Every state also takes: the caller's CANCEL (200; before an answer 487 to the INVITE and a CANCEL
on the B-leg, sent once the B-leg had a 1xx as §9.1 wants); the no-answer timeout (CANCEL the
B-leg, 480 to the caller); the maximum call duration (BYE both legs); a GatewayFailed; the loss
of the caller's connection process (monitored: the B-leg is cancelled or hung up). A lost
connection (the caller's process exits; a GatewayFailed for a B-leg) ends every client transaction
on it at once as a transport failure (RFC 3261 §17.1.4, §8.1.3.1), not at Timer F/B: an ENDING
call with nothing else pending exits then, freeing its max_calls slot and the drain. The caller's
connection's exit reason says who ended the call: "shutdown" (or "killed") is its supervisor
stopping it for the node's shutdown — hangup_by switch, cause "shutdown", billed as `terminate`
bills a shutdown; anything else ("normal": the peer closed) is the caller, "connection_lost".

A `Hangup` message from outside (the operator, through the API) ends the call in any state but
ENDING: CANCEL + 487 before the answer, BYE both legs after; hung up by `Hangup.by`.

Rules chosen:

* Failover: a 5xx, a 408, Timer B, or a GatewayFailed on the current B-leg before anything of it
  was relayed (100 Trying is hop-by-hop and does not count) tries the next candidate. A 5xx or
  408 after an 18x fails over too (the caller hears a new ring). A 503 whose Retry-After is longer
  than the call can still wait (the time left before the no-answer timeout) is NOT failed over:
  the destination is down for longer than the caller waits, so that 503 is relayed with its
  Retry-After. Any other final answer (486, 404, 603 ...) is the callee's and is relayed.
* All gateways failed: the caller gets 503 Service Unavailable (never the last gateway's answer,
  which would leak one carrier's state and make a 500 look like our own bug); CDR CONGESTION.
  No route: 404 (CDR NO_ROUTE). Router unreachable after one retry: 503. A call to a user of ours
  goes to its registered contacts first (`_router.route_call`); a user with none now: 480.
* A GatewayFailed after an 18x was relayed ends the call with 503; after the answer it ends an
  answered call: BYE to the caller, CDR ANSWERED, hung up by the switch.
* 2xx retransmission follows switchd.sip's Uas2xxRetransmitter (T1, doubling to T2); with
  ``CallSettings.retransmit_2xx = False`` the 200 goes out once (TCP is reliable) and only the 64*T1
  give-up stays armed. No ACK by then: BYE both legs, CDR FAILED (cause "ack_timeout").
* The no-answer timeout runs from the INVITE: it is the caller's whole wait, failovers included.
* A callee's BYE that comes before the caller's ACK is passed on at once (the 2xx retransmission
  stops); a 2xx that comes after we gave up on its B-leg (a CANCEL race) is ACKed and BYEd.
* Requests in a dialog other than ACK, BYE and CANCEL: re-INVITE, UPDATE, INFO, MESSAGE and
  OPTIONS are relayed into the other leg's dialog and their answers relayed back; NOTIFY gets 481,
  REFER and the rest 501 (`_call_relay`). The ACK to a relayed re-INVITE's 2xx is relayed to the
  leg that answered when the other leg ACKs (with its body); a relayed 2xx never ACKed in 64*T1
  hangs the call up (cause "ack_timeout") as the first one does. A 481 to a relayed request means
  that leg's dialog is gone: the call is hung up (cause "dialog_gone").
* An INVITE that cannot make a dialog (no Contact), has Max-Forwards 0 or dials no number never
  gets here: the dispatcher answers it (`_validate`). The B-leg's Max-Forwards is the caller's minus
  one. The callee is the Request-URI's dialled number (`switchd.sip.dialled_number`: a tel: URI's
  digits, a SIP URI's user part), so ``tel:+14155550199`` is routed as ``+14155550199``.
* CDR times are the call's wall clock (`CallClock`): billable seconds are monotonic seconds. Steps
  go to the node's CdrQueue and the session never waits on them; what tells the caller more than
  100 Trying is held until the step behind it is durable (write-ahead, `_call_cdr`): its 18x/200
  for the open (at most open_wait), its final answer, the 200 to its BYE and our BYE for the close.
* One billing rule: an answer the caller confirmed with its ACK is ANSWERED however the call ends
  (BYE, maximum duration, a lost gateway, shutdown, a crash); a 200 never ACKed (timeout, or the
  caller's connection lost first) is FAILED and bills 0 s (docs/billing.md).

Each leg has an explicit state (`_leg_state`: one table of every transition, `Leg.fire`); the
call's state above is what the caller hears. The session is this module (its events: set-up,
routing, the callee's answers, timers) and its helpers, one concept each: `_call_legs` (what it
knows), `_call_requests` (requests arriving in the call's dialogs), `_call_relay` (passing them to
the other leg), `_call_send` (the one way out, and the transactions), `_call_end` (endings and
terminate's clean-up), `_call_cdr` (the CDR steps), `_hold` (hold time from SDP).

Timers: every sans-IO deadline (the transaction table's and the legs' 2xx retransmitters') is driven by
one generic timeout "sip", re-armed after every event at the earliest deadline; "no_answer",
"max_duration", "linger" (ENDING's bound) and "cdr" (how long held messages may wait) are generic
timeouts of their own.

Faults: the router is reached by name at each use, retried once if restarting; billing through the
queue, which outlives the store. A failure is logged, never fatal. `terminate` (crash, shutdown,
or anything that left legs up) closes the CDR (cause "crash" or "shutdown"; ANSWERED if the caller
had confirmed the answer, else FAILED), answers an unanswered caller 500 (503 on shutdown), sends
BYE to answered legs (ACK first where a 2xx was not yet ACKed) and CANCEL to unanswered B-legs,
and waits (bounded) for the close before what it holds for the caller goes — shielded and bounded
by ``cleanup_timeout``. It touches nothing but its own call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from switchd.billing import AccountInfo, CdrDurable, CdrProgress, HangupParty
from switchd.otp import (
    INFO,
    INTERNAL,
    ChildSpec,
    Down,
    ExitReason,
    GenericTimeout,
    KeepState,
    NextEvent,
    NextState,
    OTPError,
    Restart,
    StateMachine,
    Stop,
    join,
    monitor,
)
from switchd.sip import (
    AckTimedOut,
    ClientTransaction,
    Dialog,
    InviteServerTransaction,
    Method,
    RemoteProtocolError,
    Request,
    Response,
    TimedOut,
    ToTransactionUser,
    Uas2xxRetransmitter,
    new_tag,
)

from ._call_cdr import open_call, record_answer, record_step, retry_once
from ._call_end import cdr_durable, cdr_overdue, clean_up, hang_up, reject
from ._call_events import CallAnswered, CallClock, CallFailover, CallProgress, CallSetup, emit
from ._call_legs import (
    AFTER_ANSWER,
    BEFORE_ANSWER,
    BLeg,
    CallData,
    CallSettings,
    CallState,
    Result,
    b_leg_invite,
    leg_fields,
    relayed_response,
    should_fail_over,
    track_dialog,
)
from ._call_relay import settle
from ._call_requests import (
    caller_lost,
    dialog_gone,
    from_callee,
    from_caller,
    hangup_from_outside,
    settle_all,
)
from ._call_send import (
    answer_caller,
    busy,
    cancel_leg,
    fail_transactions,
    feed,
    hang_up_leg,
    invite_client_transaction,
    send_cancel,
    send_on,
    stray_2xx,
    to_gateway,
)
from ._connections import attach_call
from ._dispatch import SessionSpec
from ._errors import NoRoute, RoutingFailed, UserUnavailable
from ._leg_state import LegEvent, LegState
from ._router import route_call
from ._validate import call_parties
from ._wire import GatewayFailed, Hangup, Inbound, ReplyPath, a_leg_name, b_leg_key, transport_pid

__all__ = ["CallSession", "CallState", "call_session_spec"]

log = logging.getLogger(__name__)


_S = CallState
_BEFORE_ANSWER, _AFTER_ANSWER = BEFORE_ANSWER, AFTER_ANSWER


@dataclass(frozen=True, slots=True)
class _Start:
    """The internal event that starts the work, so init does no I/O."""


class CallSession(StateMachine[CallState, CallData]):
    """One call's B2BUA; start it with `call_session_spec` under the "calls" DynamicSupervisor."""

    kind = "call"

    async def init(self, invite: Request, conn: ReplyPath, received_at: float, settings: CallSettings,
                   account: AccountInfo | None = None) -> tuple[CallState, CallData, list[NextEvent]]:
        """Take the INVITE (and the caller's authenticated account, if any); the work starts with an
        internal event, so start_child returns at once."""
        # The dispatcher's checks (`_validate`) passed: the parties are sound and fit their CDR.
        caller, callee = call_parties(invite)
        data = CallData(
            settings=settings, invite=invite, conn=conn, received_at=received_at,
            clock=CallClock.start(), ist=InviteServerTransaction(invite, timers=settings.timers),
            a_tag=new_tag(), caller=caller, callee=callee, account=account,
        )
        data.txns.add(data.ist)
        return _S.ROUTING, data, [NextEvent(INTERNAL, _Start())]

    async def handle_event(self, event: Any, content: Any, state: CallState, data: CallData) -> Result:
        result = await self._handle(event, content, state, data)
        return self._with_timers(result, state, data)

    def format_status(self, state: CallState, data: CallData) -> str:
        via = f" via {data.b.gateway}" if data.b is not None else ""
        return f"{state.value} {data.caller} -> {data.callee}{via}"

    async def terminate(self, reason: ExitReason, state: CallState, data: CallData) -> None:
        """Leave no leg up and no CDR open, whatever the way out (see the module docstring)."""
        if not data.ended:
            # A planned stop (the drain) ends calls by the hundred: INFO; a crash stays an ERROR.
            log.log(logging.INFO if reason == "shutdown" else logging.ERROR, "call session exits (%r) with the call up",
                    reason, extra={"call_id": data.call_id})
        with trio.move_on_after(data.settings.cleanup_timeout, shield=True):
            await clean_up(reason, data)

    # -- dispatch -----------------------------------------------------------------------------------

    async def _handle(self, event: Any, content: Any, state: CallState, data: CallData) -> Result:
        if event is INFO:
            match content:
                case Inbound(message=Request() as request, conn=conn):
                    if request.call_id == data.call_id:
                        return from_caller(request, state, data)
                    return from_callee(request, conn, state, data)
                case Inbound(message=Response() as response, conn=conn):
                    return await self._response(response, conn, state, data)
                case GatewayFailed():
                    return await self._gateway_failed(content, state, data)
                case Down(ref=ref, reason=reason) if ref is data.conn_monitor:
                    return caller_lost(reason, state, data)
                case CdrDurable():
                    cdr_durable(data)
                    return KeepState(data)
                case Hangup():
                    return hangup_from_outside(content, state, data)
        elif event is INTERNAL and isinstance(content, _Start):
            return await self._start(data)
        elif isinstance(event, GenericTimeout):
            match event.name:
                case "sip":
                    return await self._sip_timers(state, data)
                case "no_answer" if state in _BEFORE_ANSWER:
                    log.info("no answer within %gs", data.settings.no_answer, extra={"call_id": data.call_id})
                    cancel_leg(data, data.b)
                    return reject(data, 480, hangup_by=HangupParty.SWITCH, cause="no_answer")
                case "max_duration" if state in _AFTER_ANSWER:
                    log.info("maximum call duration of %gs reached", data.settings.max_call_duration,
                             extra={"call_id": data.call_id})
                    return hang_up(data, HangupParty.SWITCH, "max_duration")
                case "cdr" if data.held:
                    cdr_overdue(data)
                    return KeepState(data)
                case "linger":
                    log.warning("B-leg gave no final answer within 64*T1 after the call ended",
                                extra={"call_id": data.call_id})
                    return Stop("normal", data)
            return KeepState(data)
        log.warning("call session got an unexpected %r: %r", event, content, extra={"call_id": data.call_id})
        return KeepState(data)

    def _with_timers(self, result: Result, state: CallState, data: CallData) -> Result:
        """Re-arm "sip" at the earliest sans-IO deadline; an ENDING call with nothing pending stops."""
        if isinstance(result, Stop):
            return result
        new_state = result.state if isinstance(result, NextState) else state
        if new_state is _S.ENDING and not busy(data):
            return Stop("normal", data)
        deadlines = [d for d in (data.txns.next_deadline,
                                 *(leg.rtx.next_deadline for leg in (data.a, *data.legs.values()) if leg.rtx))
                     if d is not None]
        # Absolute deadlines: re-armed after every event, an unchanged one stands (no new timer).
        sip = min(deadlines) if deadlines else None
        held = None if data.held_since is None else data.held_since + data.held_for
        return NextState(new_state, data, [*result.actions, GenericTimeout("sip", sip, absolute=True),
                                           GenericTimeout("cdr", held, absolute=True)])

    # -- setup and routing ------------------------------------------------------------------------------

    async def _start(self, data: CallData) -> Result:
        settings = data.settings
        feed(data, data.ist, data.ist.send_trying(trio.current_time()))
        data.conn_monitor = monitor(transport_pid(data.conn))
        attach_call(transport_pid(data.conn))  # the connection is not idle while this call is on it
        # The dispatcher refused an INVITE without a sound Contact or out of hops (`_validate`).
        data.a.dialog = Dialog.from_uas(data.invite, data.a_tag, contact=settings.contact)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("call from %s to %s", data.caller, data.callee, extra={"call_id": data.call_id})
        setup_at = data.clock.at(data.received_at)
        emit(settings.events, CallSetup(data.call_id, setup_at, data.caller, data.callee, settings.node))
        open_call(data)
        try:
            data.candidates = await retry_once(
                "route lookup", data.call_id, settings.retry_delay,
                partial(route_call, data.invite.uri, data.callee, timeout=settings.router_timeout))
        except NoRoute:
            log.info("no route for %r", data.callee, extra={"call_id": data.call_id})
            return reject(data, 404, hangup_by=HangupParty.SWITCH, cause="no_route")
        except UserUnavailable as exc:
            log.info("%s has no registered contact", exc.user, extra={"call_id": data.call_id})
            return reject(data, 480, hangup_by=HangupParty.SWITCH, cause="not_registered")
        except (OTPError, RoutingFailed) as exc:
            log.error("router unavailable: %s", exc, extra={"call_id": data.call_id})
            return reject(data, 503, hangup_by=HangupParty.SWITCH, cause="router_unavailable")
        result = self._place_next(data, None)
        if result.state is not _S.CALLING:
            return result
        return NextState(_S.CALLING, data, [GenericTimeout("no_answer", max(0.0, self._wait_left(data)))])

    def _place_next(self, data: CallData, reason: str | None) -> NextState[CallState, CallData]:
        """Send the INVITE to the next candidate, or answer 503 when none is left."""
        failed = data.b
        if data.next_candidate >= len(data.candidates):
            log.info("all %d gateway(s) failed", len(data.legs), extra={"call_id": data.call_id})
            return reject(data, 503, hangup_by=HangupParty.SWITCH, cause="all_gateways_failed")
        candidate = data.candidates[data.next_candidate]
        data.next_candidate += 1
        if failed is not None:
            log.info("gateway %s failed (%s), trying %s", failed.gateway, reason, candidate.gateway.name,
                     extra={"call_id": data.call_id, "gateway": failed.gateway})
            emit(data.settings.events, CallFailover(data.call_id, data.clock.now(), failed.gateway,
                                                    reason or "", candidate.gateway.name, len(data.legs) + 1))
        invite = b_leg_invite(data.invite, candidate, data.settings,
                              caller_id=None if data.account is None else data.account.caller_id)
        leg = BLeg(candidate=candidate, invite=invite, ict=invite_client_transaction(data, invite),
                   attempt=len(data.legs) + 1)
        data.legs[leg.call_id] = leg
        data.b = leg
        join(b_leg_key(leg.call_id))
        to_gateway(data, leg, invite)
        return NextState(_S.CALLING, data)

    # -- from the callee's side ---------------------------------------------------------------------

    async def _response(self, response: Response, conn: ReplyPath, state: CallState, data: CallData) -> Result:
        now = trio.current_time()
        txn = data.txns.match_response(response)
        leg = data.leg(response.call_id)
        if isinstance(leg, BLeg):
            leg.conn = conn
        if txn is None:
            if leg is not None and response.cseq.method == Method.INVITE and 200 <= response.status < 300:
                stray_2xx(data, leg, response)
            return KeepState(data)
        rest = feed(data, txn, txn.receive(response, now))
        if txn in data.relays:
            gone = settle(data, txn, rest)
            return dialog_gone(gone, state, data) if gone is not None else KeepState(data)
        for out in rest:
            if (isinstance(out, ToTransactionUser) and isinstance(out.message, Response)
                    and isinstance(leg, BLeg) and txn is leg.ict):
                return await self._b_invite_response(leg, out.message, state, data)
        return KeepState(data)

    async def _b_invite_response(self, leg: BLeg, response: Response, state: CallState,
                                 data: CallData) -> Result:
        status = response.status
        current = leg is data.b and state in _BEFORE_ANSWER
        if status < 200:
            try:
                track_dialog(leg, response)
            except RemoteProtocolError as exc:  # no early dialog then; the 1xx is still progress
                log.info("gateway %s: a %d we cannot make a dialog of: %s", leg.gateway, status, exc,
                         extra={"call_id": data.call_id, "gateway": leg.gateway})
            if leg.state is LegState.CANCEL_PENDING:
                send_cancel(data, leg)  # the CANCEL held for a 1xx (§9.1); the row below says so
            leg.fire(LegEvent.PROVISIONAL)
            if not current or status == 100:
                return KeepState(data)
            answer_caller(data, relayed_response(data.invite, response, data.a_tag, data.settings))
            emit(data.settings.events, CallProgress(data.call_id, data.clock.now(), status, leg.gateway))
            if not data.progress_recorded:
                data.progress_recorded = True
                progress = CdrProgress(call_id=data.call_id, at=data.clock.now(), **leg_fields(data))
                record_step(data, progress)
            return NextState(_S.RINGING, data)
        leg.final = status
        if status < 300:
            try:
                track_dialog(leg, response)
            except RemoteProtocolError as exc:
                # An answer we could neither ACK nor BYE (a bad Contact): a broken gateway, as a 502
                # from it would be — the next candidate, or 503. The callee gives up on its own (§13.3.1.4).
                log.warning("gateway %s answered %d with a Contact we cannot use: %s", leg.gateway, status, exc,
                            extra={"call_id": data.call_id, "gateway": leg.gateway})
                leg.fire(LegEvent.FAIL)
                return self._place_next(data, f"unusable {status}: {exc}") if current else KeepState(data)
            leg.fire(LegEvent.ANSWER)
            if current:
                return self._connect(leg, response, data)
            hang_up_leg(data, leg)  # answered after we gave up on it: ACK, then BYE
            return KeepState(data)
        leg.fire(LegEvent.REJECT)
        if not current:
            return KeepState(data)  # e.g. the 487 to a cancelled leg: the transaction ACKed it
        if should_fail_over(response, self._wait_left(data)):
            return self._place_next(data, f"{status} {response.reason}")
        retry_after = response.headers.get("Retry-After") if status == 503 else None
        return reject(data, status, reason=response.reason, retry_after=retry_after,
                      hangup_by=HangupParty.CALLEE, cause=f"sip_{status}")

    def _connect(self, leg: BLeg, response: Response, data: CallData) -> Result:
        now = trio.current_time()
        ok = relayed_response(data.invite, response, data.a_tag, data.settings)
        data.answered_at = now
        record_answer(data)  # written ahead: the 200 below is held until the answer is durable
        answer_caller(data, ok)
        if data.a.dialog is not None:
            data.a.dialog.confirm()
        data.a.rtx = Uas2xxRetransmitter(ok, now=now, timers=data.settings.timers)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("answered through %s", leg.gateway, extra={"call_id": data.call_id, "gateway": leg.gateway})
        setup_time = now - data.received_at
        emit(data.settings.events, CallAnswered(data.call_id, data.clock.at(now), leg.gateway, setup_time))
        max_duration = GenericTimeout("max_duration", data.settings.max_call_duration)
        return NextState(_S.CONNECTING, data, [GenericTimeout("no_answer", None), max_duration])

    async def _gateway_failed(self, failed: GatewayFailed, state: CallState, data: CallData) -> Result:
        leg = data.legs.get(failed.call_id)
        if leg is None:
            return KeepState(data)
        # its INVITE, CANCEL, BYE or a relayed request: no answer can come now
        settle_all(fail_transactions(data, leg.call_id), data)
        reason = f"gateway {failed.gateway}: {failed.reason}"
        if leg.pending:
            leg.fire(LegEvent.FAIL)
            if leg is not data.b or state not in _BEFORE_ANSWER:
                return KeepState(data)
            if state is _S.CALLING:  # nothing of this leg reached the caller yet
                return self._place_next(data, reason)
            log.warning("%s after progress was relayed", reason, extra={"call_id": data.call_id})
            return reject(data, 503, hangup_by=HangupParty.SWITCH, cause="gateway_failed")
        if leg is data.b and leg.established and state in _AFTER_ANSWER:
            log.warning("%s during the call", reason, extra={"call_id": data.call_id})
            leg.fire(LegEvent.LOST)  # nobody left to send a BYE to
            return hang_up(data, HangupParty.SWITCH, "gateway_failed")
        return KeepState(data)

    # -- timers -------------------------------------------------------------------------------------

    async def _sip_timers(self, state: CallState, data: CallData) -> Result:
        now = trio.current_time()
        timer_b = ack_timed_out = False
        for txn, outputs in data.txns.handle_timeout(now):
            rest = feed(data, txn, outputs)
            if isinstance(txn, ClientTransaction) and txn in data.relays:
                settle(data, txn, rest)  # a relayed request timed out: the source gets 408
                continue
            b_leg = data.legs.get(txn.request.call_id)
            for out in rest:
                if isinstance(out, TimedOut) and out.timer == "B" and b_leg is not None and txn is b_leg.ict:
                    timer_b = timer_b or (b_leg is data.b and state in _BEFORE_ANSWER)
                    b_leg.fire(LegEvent.FAIL)
        for leg in (data.a, *data.legs.values()):
            for rtx_out in leg.rtx.handle_timeout(now) if leg.rtx is not None else ():
                if isinstance(rtx_out, AckTimedOut):
                    ack_timed_out = True
                elif data.settings.retransmit_2xx:
                    send_on(data, leg, rtx_out.message)
        if timer_b:
            return self._place_next(data, "no response (Timer B)")
        if ack_timed_out and state in _AFTER_ANSWER:
            log.warning("a 2xx was never ACKed", extra={"call_id": data.call_id})
            return hang_up(data, HangupParty.SWITCH, "ack_timeout")
        return KeepState(data)

    def _wait_left(self, data: CallData) -> float:
        return data.received_at + data.settings.no_answer - trio.current_time()


def call_session_spec(invite: Request, conn: ReplyPath, received_at: float, settings: CallSettings,
                      account: AccountInfo | None = None) -> ChildSpec:
    """The child spec of the CallSession for `invite`, which arrived from the end of the reply path `conn`,
    from the caller of `account` (None: a caller that was not challenged).

    Started under "calls" with ``start_child``, it registers ``a_leg_name(invite.call_id)`` before
    start_child returns, and does no I/O in init. TEMPORARY: a session that exits is never restarted.
    """
    call_id = invite.call_id
    return ChildSpec(
        id=f"call:{call_id}",
        start=partial(CallSession.start_link, invite, conn, received_at, settings.for_caller(conn), account,
                      name=a_leg_name(call_id)),
        restart=Restart.TEMPORARY,
        shutdown=settings.cleanup_timeout + 1.0,
    )


def call_session_specs(settings: CallSettings) -> SessionSpec:
    """``session_spec(invite, conn, received_at, account)`` for a Dispatcher: every session gets `settings`.

    The node's one place where a new INVITE meets the settings its session runs with.
    """
    def session_spec(invite: Request, conn: ReplyPath, received_at: float,
                     account: AccountInfo | None = None, /) -> ChildSpec:
        return call_session_spec(invite, conn, received_at, settings, account)

    return session_spec

