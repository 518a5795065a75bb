"""CallSession: the B2BUA of one call, a StateMachine under the "calls" DynamicSupervisor.

One session per caller's INVITE, registered as `a_leg_name(call_id)` and member of
`b_leg_key(b_call_id)` for each B-leg it places. It owns every transaction and dialog of the call
and is the only one that writes its CDR. States (`CallState`) and what each handles:

============  =====================================================================================
ROUTING       the INVITE is in. One internal event sends 100 Trying, opens the CDR (awaited: it is
              durable before anything is routed), looks the number up, places the first B-leg.
CALLING       a B-leg INVITE is out and nothing was relayed from it yet. Failover is possible.
RINGING       a 180/183 of the current B-leg was relayed to the caller (To tag fixed once per call).
CONNECTING    the callee answered; its 200 was relayed and is retransmitted until the caller's ACK,
              which is then relayed to the B-leg as the ACK of its 2xx (through the B dialog).
ANSWERED      both dialogs confirmed; a BYE from either side is answered 200 and passed on.
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

Rules chosen:

* Failover: a 5xx, a 408, Timer B, or a GatewayFailed on the current B-leg before anything of it
  was relayed (100 Trying is hop-by-hop and does not count) tries the next candidate. A 5xx or
  408 after an 18x fails over too (the caller hears a new ring). A 503 whose Retry-After is longer
  than the call can still wait (the time left before the no-answer timeout) is NOT failed over:
  the destination is down for longer than the caller waits, so that 503 is relayed with its
  Retry-After. Any other final answer (486, 404, 603 ...) is the callee's and is relayed.
* All gateways failed: the caller gets 503 Service Unavailable (never the last gateway's answer,
  which would leak one carrier's state and make a 500 look like our own bug); CDR CONGESTION.
  No route: 404 (CDR NO_ROUTE). Router unreachable after one retry: 503.
* A GatewayFailed after an 18x was relayed ends the call with 503; after the answer it ends an
  answered call: BYE to the caller, CDR ANSWERED, hung up by the switch.
* 2xx retransmission follows switchd.sip's Uas2xxRetransmitter (T1, doubling to T2); with
  ``CallSettings.retransmit_2xx = False`` the 200 goes out once (TCP is reliable) and only the 64*T1
  give-up stays armed. No ACK by then: BYE both legs, CDR FAILED (cause "ack_timeout").
* The no-answer timeout runs from the INVITE: it is the caller's whole wait, failovers included.
* A callee's BYE that comes before the caller's ACK is passed on at once (the 2xx retransmission
  stops); a 2xx that comes after we gave up on its B-leg (a CANCEL race) is ACKed and BYEd.
* Requests in a dialog other than ACK, BYE and CANCEL (re-INVITE, UPDATE, INFO ...) get 501.
* An INVITE that cannot make a dialog (no Contact) is answered 400, one with Max-Forwards 0 is
  answered 483; neither gets a CDR. The B-leg's Max-Forwards is the caller's minus one.
* CDR times are the call's wall clock (`CallClock`): billable seconds are monotonic seconds. A CDR
  open that did not land is sent again before each later step, so a returning store gets it all.

Timers: every sans-IO deadline (the transaction table's and the 2xx retransmitter's) is driven by
one generic timeout "sip", re-armed after every event at the earliest deadline; "no_answer",
"max_duration" and "linger" (ENDING's bound) are generic timeouts of their own.

Faults: billing and router are reached by name at each use, retried once if restarting, and a
failure is logged, never fatal (`_call_cdr`). `terminate` (crash, shutdown, or anything that left
legs up) answers an unanswered caller 500 (503 on shutdown), sends BYE to answered legs (ACK
first where a 2xx was not yet ACKed) and CANCEL to unanswered B-legs, and closes the CDR as FAILED
(cause "crash", or "shutdown"; an answered call ended by the node's shutdown stays ANSWERED, so the
conversation is billed) — shielded and bounded by ``cleanup_timeout``. It touches nothing but its
own call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, TypeAlias

import trio

from switchd.billing import (
    CdrAnswer,
    CdrProgress,
    Disposition,
    HangupParty,
    disposition_for,
)
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
    Pid,
    Restart,
    StateMachine,
    Stop,
    join,
    monitor,
    send,
)
from switchd.sip import (
    AckTimedOut,
    Dialog,
    InviteClientTransaction,
    InviteServerTransaction,
    Method,
    RemoteProtocolError,
    Request,
    Response,
    SipError,
    TimedOut,
    ToTransactionUser,
    Uas2xxRetransmitter,
    make_response,
    new_tag,
)

from ._call_cdr import close_call, open_call, record_step, retry_once
from ._call_events import CallAnswered, CallClock, CallFailover, CallProgress, CallSetup, emit
from ._call_legs import (
    BLeg,
    CallData,
    CallSettings,
    ack_for_2xx,
    answer_caller,
    b_leg_invite,
    busy,
    cancel_leg,
    fail_transactions,
    feed,
    final_response,
    hang_up_caller,
    hang_up_leg,
    leg_fields,
    relayed_response,
    should_fail_over,
    stray_2xx,
    to_caller,
    to_gateway,
    track_dialog,
)
from ._errors import NoRoute
from ._router import lookup
from ._wire import GatewayFailed, Inbound, Outbound, a_leg_name, b_leg_key

log = logging.getLogger(__name__)


class CallState(StrEnum):
    """The states of a CallSession (see the module docstring)."""

    ROUTING = "routing"
    CALLING = "calling"
    RINGING = "ringing"
    CONNECTING = "connecting"
    ANSWERED = "answered"
    ENDING = "ending"


_S = CallState
_BEFORE_ANSWER = (_S.CALLING, _S.RINGING)
_AFTER_ANSWER = (_S.CONNECTING, _S.ANSWERED)


@dataclass(frozen=True, slots=True)
class _Start:
    """The internal event that starts the work, so init does no I/O."""


Result: TypeAlias = NextState[CallState, CallData] | KeepState[CallData] | Stop[CallData]


class CallSession(StateMachine[CallState, CallData]):
    """One call's B2BUA; start it with `call_session_spec` under the "calls" DynamicSupervisor."""

    kind = "call"

    async def init(self, invite: Request, conn: Pid, received_at: float,
                   settings: CallSettings) -> tuple[CallState, CallData, list[NextEvent]]:
        """Take the INVITE; the work starts with an internal event, so start_child returns at once."""
        uri = invite.uri
        from_uri = invite.from_.uri
        data = CallData(
            settings=settings, invite=invite, conn=conn, received_at=received_at,
            clock=CallClock.start(), ist=InviteServerTransaction(invite, timers=settings.timers),
            a_tag=new_tag(), caller=from_uri.user or str(from_uri), callee=uri.user or str(uri),
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
        with trio.move_on_after(data.settings.cleanup_timeout, shield=True):
            await self._clean_up(reason, data)

    # -- dispatch -----------------------------------------------------------------------------------

    async def _handle(self, event: Any, content: Any, state: CallState, data: CallData) -> Result:
        if event is INFO:
            match content:
                case Inbound(message=Request() as request, conn=conn):
                    if request.call_id == data.call_id:
                        return await self._from_caller(request, state, data)
                    return await self._from_callee(request, conn, state, data)
                case Inbound(message=Response() as response, conn=conn):
                    return await self._response(response, conn, state, data)
                case GatewayFailed():
                    return await self._gateway_failed(content, state, data)
                case Down(ref=ref, reason=reason) if ref is data.conn_monitor:
                    return await self._caller_lost(reason, state, data)
        elif event is INTERNAL and isinstance(content, _Start):
            return await self._start(data)
        elif isinstance(event, GenericTimeout):
            match event.name:
                case "sip":
                    return await self._sip_timers(state, data)
                case "no_answer" if state in _BEFORE_ANSWER:
                    log.info("no answer within %gs", data.settings.no_answer, extra={"call_id": data.call_id})
                    cancel_leg(data, data.b)
                    return await self._reject(data, 480, hangup_by=HangupParty.SWITCH, cause="no_answer")
                case "max_duration" if state in _AFTER_ANSWER:
                    log.info("maximum call duration of %gs reached", data.settings.max_call_duration,
                             extra={"call_id": data.call_id})
                    return await self._hang_up(data, Disposition.ANSWERED, HangupParty.SWITCH, "max_duration")
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
        deadlines = [d for d in (data.txns.next_deadline, data.rtx.next_deadline if data.rtx else None)
                     if d is not None]
        delay = max(0.0, min(deadlines) - trio.current_time()) if deadlines else None
        return NextState(new_state, data, [*result.actions, GenericTimeout("sip", delay)])

    # -- setup and routing ------------------------------------------------------------------------------

    async def _start(self, data: CallData) -> Result:
        settings = data.settings
        feed(data, data.ist, data.ist.send_trying(trio.current_time()))
        data.conn_monitor = monitor(data.conn)
        try:
            data.a_dialog = Dialog.from_uas(data.invite, data.a_tag, contact=settings.contact)
        except RemoteProtocolError as exc:
            log.info("INVITE refused: %s", exc, extra={"call_id": data.call_id})
            answer_caller(data, final_response(data.invite, exc.status_hint, data.a_tag, reason=exc.reason))
            data.ended = True  # never accepted: no CDR
            return Stop("normal", data)
        if data.invite.max_forwards == 0:  # RFC 3261 §16.3 step 3: it may go no further
            log.info("INVITE refused: Max-Forwards is 0", extra={"call_id": data.call_id})
            answer_caller(data, final_response(data.invite, 483, data.a_tag))
            data.ended = True  # never accepted: no CDR
            return Stop("normal", data)
        log.info("call from %s to %s", data.caller, data.callee, extra={"call_id": data.call_id})
        setup_at = data.clock.at(data.received_at)
        emit(settings.events, CallSetup(data.call_id, setup_at, data.caller, data.callee, settings.node))
        await open_call(data)
        try:
            data.candidates = await retry_once(
                "route lookup", data.call_id, settings.retry_delay,
                partial(lookup, data.callee, timeout=settings.router_timeout))
        except NoRoute:
            log.info("no route for %r", data.callee, extra={"call_id": data.call_id})
            return await self._reject(data, 404, hangup_by=HangupParty.SWITCH, cause="no_route")
        except OTPError as exc:
            log.error("router unavailable: %s", exc, extra={"call_id": data.call_id})
            return await self._reject(data, 503, hangup_by=HangupParty.SWITCH, cause="router_unavailable")
        result = await self._place_next(data, None)
        if result.state is not _S.CALLING:
            return result
        return NextState(_S.CALLING, data, [GenericTimeout("no_answer", max(0.0, self._wait_left(data)))])

    async def _place_next(self, data: CallData, reason: str | None) -> NextState[CallState, CallData]:
        """Send the INVITE to the next candidate, or answer 503 when none is left."""
        failed = data.b
        if failed is not None and failed.pending:
            failed.final = 0
        if data.next_candidate >= len(data.candidates):
            log.info("all %d gateway(s) failed", len(data.legs), extra={"call_id": data.call_id})
            return await self._reject(data, 503, hangup_by=HangupParty.SWITCH, cause="all_gateways_failed")
        candidate = data.candidates[data.next_candidate]
        data.next_candidate += 1
        if failed is not None:
            log.info("gateway %s failed (%s), trying %s", failed.gateway, reason, candidate.gateway.name,
                     extra={"call_id": data.call_id, "gateway": failed.gateway})
            emit(data.settings.events, CallFailover(data.call_id, data.clock.now(), failed.gateway,
                                                    reason or "", candidate.gateway.name, len(data.legs) + 1))
        now = trio.current_time()
        invite = b_leg_invite(data.invite, candidate, data.settings)
        leg = BLeg(candidate, invite, InviteClientTransaction(invite, now=now, timers=data.settings.timers),
                   attempt=len(data.legs) + 1)
        data.legs[leg.call_id] = leg
        data.b = leg
        data.txns.add(leg.ict)
        join(b_leg_key(leg.call_id))
        to_gateway(data, leg, invite)
        return NextState(_S.CALLING, data)

    # -- from the caller --------------------------------------------------------------------------------

    async def _from_caller(self, request: Request, state: CallState, data: CallData) -> Result:
        txn = data.txns.match_request(request)
        if txn is not None:  # a retransmitted INVITE, or the ACK to our non-2xx final
            feed(data, txn, txn.receive(request, trio.current_time()))
            return KeepState(data)
        match request.method:
            case Method.ACK:
                return self._caller_ack(request, state, data)
            case Method.CANCEL:
                return await self._caller_cancel(request, state, data)
            case Method.BYE:
                return await self._caller_bye(request, state, data)
            case Method.INVITE if request.to.tag is None:
                return KeepState(data)  # a late retransmission of the INVITE after its transaction
        to_caller(data, make_response(request, 501, to_tag=data.a_tag if request.to.tag is None else None))
        return KeepState(data)

    def _caller_ack(self, ack: Request, state: CallState, data: CallData) -> Result:
        if data.rtx is None or data.a_dialog is None or not data.a_dialog.matches(ack):
            return KeepState(data)
        if not data.rtx.acknowledge(ack):
            return KeepState(data)
        leg = data.b
        if leg is not None and leg.up and not leg.acked:
            to_gateway(data, leg, ack_for_2xx(leg, ack))
            leg.acked = True
        return NextState(_S.ANSWERED, data) if state is _S.CONNECTING else KeepState(data)

    async def _caller_cancel(self, cancel: Request, state: CallState, data: CallData) -> Result:
        ist = data.txns.match_cancel(cancel)
        if ist is None:
            to_caller(data, make_response(cancel, 481))
            return KeepState(data)
        to_caller(data, make_response(cancel, 200, to_tag=data.a_tag))
        if ist.final_response is not None or state not in _BEFORE_ANSWER:
            return KeepState(data)  # too late: the CANCEL has no effect (§9.2)
        return await self._caller_gave_up(data, "cancel")

    async def _caller_bye(self, bye: Request, state: CallState, data: CallData) -> Result:
        dialog = data.a_dialog
        if dialog is None or not dialog.matches(bye):
            to_caller(data, make_response(bye, 481))
            return KeepState(data)
        rejection = dialog.receive_request(bye)
        if rejection is not None:
            to_caller(data, rejection)
            return KeepState(data)
        to_caller(data, make_response(bye, 200))
        if state in _AFTER_ANSWER:
            return await self._hang_up(data, Disposition.ANSWERED, HangupParty.CALLER, "bye")
        if state in _BEFORE_ANSWER:
            return await self._caller_gave_up(data, "bye")
        return KeepState(data)

    async def _caller_gave_up(self, data: CallData, cause: str) -> Result:
        log.info("caller gave up (%s)", cause, extra={"call_id": data.call_id})
        cancel_leg(data, data.b)
        return await self._reject(data, 487, hangup_by=HangupParty.CALLER, cause=cause)

    async def _caller_lost(self, reason: ExitReason, state: CallState, data: CallData) -> Result:
        data.conn_monitor = None
        data.caller_gone = True
        fail_transactions(data, data.call_id)  # e.g. our BYE to the caller: no 200 can come now
        shutdown = reason in ("shutdown", "killed")  # its supervisor stopped it: the node is stopping
        log.log(logging.INFO if shutdown else logging.WARNING, "the caller's connection ended (%r)", reason,
                extra={"call_id": data.call_id})
        by, cause = (HangupParty.SWITCH, "shutdown") if shutdown else (HangupParty.CALLER, "connection_lost")
        if state in _BEFORE_ANSWER:
            cancel_leg(data, data.b)
            if shutdown:  # billed as `terminate` bills a shutdown before the answer
                return await self._end(data, Disposition.FAILED, 503, "Service Unavailable", by, cause)
            return await self._end(data, Disposition.CANCELLED, 487, "Request Terminated", by, cause)
        if state in _AFTER_ANSWER:
            return await self._hang_up(data, Disposition.ANSWERED, by, cause)
        return KeepState(data)

    # -- from the callee's side ---------------------------------------------------------------------

    async def _from_callee(self, request: Request, conn: Pid, state: CallState, data: CallData) -> Result:
        if request.method == Method.ACK:
            return KeepState(data)
        leg = data.legs.get(request.call_id)
        if leg is None or leg.dialog is None or not leg.dialog.matches(request):
            send(conn, Outbound(make_response(request, 481)))
            return KeepState(data)
        leg.conn = conn
        if request.method != Method.BYE:
            send(conn, Outbound(make_response(request, 501)))
            return KeepState(data)
        rejection = leg.dialog.receive_request(request)
        if rejection is not None:
            send(conn, Outbound(rejection))
            return KeepState(data)
        send(conn, Outbound(make_response(request, 200)))
        if not leg.acked and leg.dialog.remote_tag and leg.final is not None and leg.final < 300:
            to_gateway(data, leg, ack_for_2xx(leg))
            leg.acked = True
        leg.byed = True
        if leg is data.b and state in _AFTER_ANSWER:
            return await self._hang_up(data, Disposition.ANSWERED, HangupParty.CALLEE, "bye")
        return KeepState(data)

    async def _response(self, response: Response, conn: Pid, state: CallState, data: CallData) -> Result:
        now = trio.current_time()
        txn = data.txns.match_response(response)
        leg = data.legs.get(response.call_id)
        if leg is not None:
            leg.conn = conn
        if txn is None:
            if leg is not None and response.cseq.method == Method.INVITE and 200 <= response.status < 300:
                stray_2xx(data, leg, response)
            return KeepState(data)
        for out in feed(data, txn, txn.receive(response, now)):
            if (isinstance(out, ToTransactionUser) and isinstance(out.message, Response)
                    and leg is not None and txn is leg.ict):
                return await self._b_invite_response(leg, out.message, state, data)
        return KeepState(data)

    async def _b_invite_response(self, leg: BLeg, response: Response, state: CallState,
                                 data: CallData) -> Result:
        status = response.status
        current = leg is data.b and state in _BEFORE_ANSWER
        if status < 200:
            leg.provisional = True
            track_dialog(leg, response)
            if leg.cancel_pending:
                cancel_leg(data, leg)
            if not current or status == 100:
                return KeepState(data)
            answer_caller(data, relayed_response(data.invite, response, data.a_tag, data.settings))
            leg.relayed = True
            emit(data.settings.events, CallProgress(data.call_id, data.clock.now(), status, leg.gateway))
            if not data.progress_recorded:
                data.progress_recorded = True
                progress = CdrProgress(call_id=data.call_id, at=data.clock.now(), **leg_fields(data))
                await record_step(data, progress)
            return NextState(_S.RINGING, data)
        leg.final = status
        if status < 300:
            track_dialog(leg, response)
            if current:
                return await self._connect(leg, response, data)
            hang_up_leg(data, leg)  # answered after we gave up on it: ACK, then BYE
            return KeepState(data)
        if not current:
            return KeepState(data)  # e.g. the 487 to a cancelled leg: the transaction ACKed it
        if should_fail_over(response, self._wait_left(data)):
            return await self._place_next(data, f"{status} {response.reason}")
        retry_after = response.headers.get("Retry-After") if status == 503 else None
        return await self._reject(data, status, reason=response.reason, retry_after=retry_after,
                                  hangup_by=HangupParty.CALLEE, cause=f"sip_{status}")

    async def _connect(self, leg: BLeg, response: Response, data: CallData) -> Result:
        now = trio.current_time()
        ok = relayed_response(data.invite, response, data.a_tag, data.settings)
        answer_caller(data, ok)
        if data.a_dialog is not None:
            data.a_dialog.confirm()
        data.rtx = Uas2xxRetransmitter(ok, now=now, timers=data.settings.timers)
        data.answered_at = now
        log.info("answered through %s", leg.gateway, extra={"call_id": data.call_id, "gateway": leg.gateway})
        setup_time = now - data.received_at
        emit(data.settings.events, CallAnswered(data.call_id, data.clock.at(now), leg.gateway, setup_time))
        await record_step(data, CdrAnswer(call_id=data.call_id, at=data.clock.at(now), a_to_tag=data.a_tag,
                                           **leg_fields(data)))
        max_duration = GenericTimeout("max_duration", data.settings.max_call_duration)
        return NextState(_S.CONNECTING, data, [GenericTimeout("no_answer", None), max_duration])

    async def _gateway_failed(self, failed: GatewayFailed, state: CallState, data: CallData) -> Result:
        leg = data.legs.get(failed.call_id)
        if leg is None:
            return KeepState(data)
        fail_transactions(data, leg.call_id)  # its INVITE, CANCEL or BYE: no answer can come now
        reason = f"gateway {failed.gateway}: {failed.reason}"
        if leg.pending:
            leg.final = 0
            if leg is not data.b or state not in _BEFORE_ANSWER:
                return KeepState(data)
            if not leg.relayed:
                return await self._place_next(data, reason)
            log.warning("%s after progress was relayed", reason, extra={"call_id": data.call_id})
            return await self._reject(data, 503, hangup_by=HangupParty.SWITCH, cause="gateway_failed")
        if leg is data.b and leg.up and state in _AFTER_ANSWER:
            log.warning("%s during the call", reason, extra={"call_id": data.call_id})
            leg.byed = True  # nobody left to send it to
            return await self._hang_up(data, Disposition.ANSWERED, HangupParty.SWITCH, "gateway_failed")
        return KeepState(data)

    # -- timers -------------------------------------------------------------------------------------

    async def _sip_timers(self, state: CallState, data: CallData) -> Result:
        now = trio.current_time()
        timer_b = ack_timed_out = False
        for txn, outputs in data.txns.handle_timeout(now):
            for out in feed(data, txn, outputs):
                leg = data.legs.get(txn.request.call_id)
                if isinstance(out, TimedOut) and out.timer == "B" and leg is not None and txn is leg.ict:
                    timer_b = timer_b or (leg is data.b and state in _BEFORE_ANSWER)
                    leg.final = 0
        if data.rtx is not None:
            for rtx_out in data.rtx.handle_timeout(now):
                if isinstance(rtx_out, AckTimedOut):
                    ack_timed_out = True
                elif data.settings.retransmit_2xx:
                    to_caller(data, rtx_out.message)
        if timer_b:
            return await self._place_next(data, "no response (Timer B)")
        if ack_timed_out and state is _S.CONNECTING:
            log.warning("the caller never ACKed the 200", extra={"call_id": data.call_id})
            return await self._hang_up(data, Disposition.FAILED, HangupParty.SWITCH, "ack_timeout")
        return KeepState(data)

    def _wait_left(self, data: CallData) -> float:
        return data.received_at + data.settings.no_answer - trio.current_time()

    # -- endings ------------------------------------------------------------------------------------

    async def _reject(self, data: CallData, status: int, *, hangup_by: HangupParty, cause: str,
                      reason: str | None = None,
                      retry_after: str | None = None) -> NextState[CallState, CallData]:
        """Answer the caller's INVITE with a final error and end the call."""
        response = final_response(data.invite, status, data.a_tag, reason=reason, retry_after=retry_after)
        answer_caller(data, response)
        return await self._end(data, disposition_for(status), status, response.reason, hangup_by, cause)

    async def _hang_up(self, data: CallData, disposition: Disposition, hangup_by: HangupParty,
                       cause: str) -> NextState[CallState, CallData]:
        """End an answered call: BYE whichever legs are still up."""
        if data.rtx is not None:
            data.rtx.stop()
        hang_up_caller(data)
        hang_up_leg(data, data.b)
        return await self._end(data, disposition, 200, "OK", hangup_by, cause)

    async def _end(self, data: CallData, disposition: Disposition, sip_code: int, sip_reason: str,
                   hangup_by: HangupParty, cause: str) -> NextState[CallState, CallData]:
        """Close the CDR and tell the events; the session lingers in ENDING while B-leg answers are due."""
        await close_call(data, disposition, sip_code, sip_reason, hangup_by, cause)
        return NextState(_S.ENDING, data, [
            GenericTimeout("no_answer", None), GenericTimeout("max_duration", None),
            GenericTimeout("linger", data.settings.timers.timer_b)])

    async def _clean_up(self, reason: ExitReason, data: CallData) -> None:
        status = 503 if reason == "shutdown" else 500
        try:
            if data.ist.final_response is None:
                answer_caller(data, final_response(data.invite, status, data.a_tag))
            else:
                status = 200 if data.answered_at is not None else data.ist.final_response.status
                hang_up_caller(data)
            for leg in data.legs.values():
                if leg.pending and not leg.cancelled:
                    leg.provisional = True  # best effort: we will not be here for its 1xx
                hang_up_leg(data, leg)
        except SipError:
            log.exception("hanging up the legs failed", extra={"call_id": data.call_id})
        if not data.ended:
            cause = reason if isinstance(reason, str) else "crash"
            log.error("call session exits (%r) with the call up", reason, extra={"call_id": data.call_id})
            # A call answered and then ended by the node's shutdown was a call: it stays billable.
            answered = reason == "shutdown" and data.answered_at is not None
            disposition = Disposition.ANSWERED if answered else Disposition.FAILED
            await close_call(data, disposition, status, "session ended", HangupParty.SWITCH, cause)

def call_session_spec(invite: Request, conn: Pid, received_at: float, settings: CallSettings) -> ChildSpec:
    """The child spec of the CallSession for `invite`, which arrived on connection process `conn`.

    Started under "calls" with ``start_child``, it registers ``a_leg_name(invite.call_id)`` before
    start_child returns, and does no I/O in init. TEMPORARY: a session that exits is never restarted.
    """
    call_id = invite.call_id
    return ChildSpec(
        id=f"call:{call_id}",
        start=partial(CallSession.start_link, invite, conn, received_at, settings, name=a_leg_name(call_id)),
        restart=Restart.TEMPORARY,
        shutdown=settings.cleanup_timeout + 1.0,
    )
