"""The callee side of one simulated call: a process that plays its Behaviour against one INVITE.

The connection process starts it for a new INVITE and then hands it every message with that
Call-ID. It answers through the INVITE server transaction (100 at once, then the behaviour's
responses; a non-2xx final waits for its ACK, Timer H bounds the wait), retransmits its 2xx until
the ACK (§13.3.1.4), answers CANCEL while ringing with 200 then 487 (§9.2), answers the caller's
BYE with 200, and with ``hangup_after`` sends its own BYE in the dialog. It exits when the call is
over or its connection is lost.
"""

from __future__ import annotations

import logging

import trio

from switchd.otp import Pid, monitor, send
from switchd.sip import (
    AckTimedOut,
    Dialog,
    DialogState,
    InviteServerTransaction,
    Method,
    NameAddr,
    NonInviteClientTransaction,
    Request,
    Response,
    Status,
    TimedOut,
    TimerConfig,
    TransactionOutput,
    Transmit,
    Uas2xxRetransmitter,
    client_key,
    make_response,
    new_tag,
)

from ._behaviour import Answer, Behaviour, Busy, Drop, NeverAnswer, Reject
from ._connection import Close, Send
from ._mailbox import ConnectionGone, earliest, next_sip
from ._sdp import CONTENT_TYPE, audio_sdp

log = logging.getLogger(__name__)


async def run_callee(invite: Request, conn: Pid, behaviour: Behaviour, contact: NameAddr,
                     timers: TimerConfig) -> None:
    """The body of a callee process for `invite`, which arrived on connection `conn`."""
    callee = _Callee(invite, conn, behaviour, contact, timers)
    try:
        await callee.run()
    except ConnectionGone as exc:
        log.debug("call %s over: %s", invite.call_id, exc, extra={"call_id": invite.call_id})


class _Callee:
    def __init__(self, invite: Request, conn: Pid, behaviour: Behaviour, contact: NameAddr,
                 timers: TimerConfig) -> None:
        self.invite = invite
        self.conn = conn
        self.behaviour = behaviour
        self.contact = contact
        self.timers = timers
        self.tag = new_tag()
        self.tx = InviteServerTransaction(invite, timers=timers)
        self.call_id = invite.call_id

    async def run(self) -> None:
        monitor(self.conn)
        behaviour = self.behaviour
        log.info("INVITE %s to %s: %s", self.call_id, self.invite.uri, behaviour, extra={"call_id": self.call_id})
        if isinstance(behaviour, Drop):
            await self._wait_until(trio.current_time() + behaviour.after)
            send(self.conn, Close(f"drop behaviour for {self.call_id}"))
            return
        self._do(self.tx.send_trying(trio.current_time()))
        match behaviour:
            case Busy():
                await self._final(Status.BUSY_HERE)
            case Reject(code=code, retry_after=retry_after):
                extra = [] if retry_after is None else [("Retry-After", str(retry_after))]
                await self._final(code, extra)
            case Answer(ring=ring, hangup_after=hangup_after):
                self._ringing()
                if await self._ring(trio.current_time() + ring):
                    await self._answered(hangup_after)
            case NeverAnswer():
                self._ringing()
                await self._ring(None)

    # -- steps -----------------------------------------------------------------------------------

    def _ringing(self) -> None:
        ringing = make_response(self.invite, Status.RINGING, to_tag=self.tag, headers=[("Contact", str(self.contact))])
        self._do(self.tx.send_response(ringing, trio.current_time()))

    async def _ring(self, until: float | None) -> bool:
        """Ring until `until` (forever when None); False when the caller cancelled meanwhile."""
        while True:
            message = await self._next(until)
            if message is None:
                return True
            if isinstance(message, Request) and message.method in (Method.CANCEL, Method.BYE):
                # §9.2 CANCEL, or a BYE in the early dialog (§15): 200 to it, 487 to the INVITE
                self._send(make_response(message, Status.OK, to_tag=self.tag if message.to.tag is None else None))
                await self._final(Status.REQUEST_TERMINATED)
                return False
            if isinstance(message, Request):
                self._other_request(message)

    async def _final(self, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        """Send a non-2xx final response and wait for its ACK (Timer H)."""
        response = make_response(self.invite, status, to_tag=self.tag, headers=headers or ())
        self._do(self.tx.send_response(response, trio.current_time()))
        while not self.tx.terminated:
            message = await self._next(self.tx.next_deadline)
            if message is None:
                self._do(self.tx.handle_timeout(trio.current_time()))
            elif isinstance(message, Request) and message.method in (Method.ACK, Method.INVITE):
                self._do(self.tx.receive(message, trio.current_time()))
            elif isinstance(message, Request):
                self._other_request(message)

    async def _answered(self, hangup_after: float | None) -> None:
        now = trio.current_time()
        host = self.contact.uri.host
        ok = make_response(self.invite, Status.OK, to_tag=self.tag,
                           headers=[("Contact", str(self.contact)), CONTENT_TYPE], body=audio_sdp(host))
        self._do(self.tx.send_response(ok, now))
        dialog = Dialog.from_uas(self.invite, self.tag, contact=self.contact, state=DialogState.CONFIRMED)
        retransmit = Uas2xxRetransmitter(ok, now=now, timers=self.timers)
        hangup_at = None if hangup_after is None else now + hangup_after
        while True:
            message = await self._next(earliest(retransmit.next_deadline, hangup_at))
            now = trio.current_time()
            if message is None:
                for action in retransmit.handle_timeout(now):
                    if isinstance(action, Transmit):
                        self._send(action.message)
                    elif isinstance(action, AckTimedOut):
                        await self._bye(dialog)
                        return
                if hangup_at is not None and now >= hangup_at:
                    await self._bye(dialog)
                    return
                continue
            if not isinstance(message, Request):
                continue
            if message.method == Method.ACK:
                retransmit.acknowledge(message)
            elif message.method == Method.BYE and dialog.matches(message):
                retransmit.stop()
                rejected = dialog.receive_request(message)
                self._send(rejected or make_response(message, Status.OK))
                if rejected is None:
                    log.info("call %s: caller hung up", self.call_id, extra={"call_id": self.call_id})
                    return
            elif message.method == Method.CANCEL:
                self._send(make_response(message, Status.OK, to_tag=self.tag))  # too late: answered
            elif message.method == Method.INVITE and message.to.tag is None:
                pass  # a retransmitted INVITE after our 2xx: the retransmitter covers it
            else:
                self._other_request(message)

    async def _bye(self, dialog: Dialog) -> None:
        """Hang up: BYE in the dialog, then wait for its final response (Timer F)."""
        bye = dialog.make_request(Method.BYE)
        transaction = NonInviteClientTransaction(bye, now=trio.current_time(), timers=self.timers)
        log.info("call %s: callee hangs up", self.call_id, extra={"call_id": self.call_id})
        self._send(bye)
        key = client_key(bye)
        while not transaction.terminated:
            message = await self._next(transaction.next_deadline)
            now = trio.current_time()
            if message is None:
                outputs = transaction.handle_timeout(now)
                if any(isinstance(o, TimedOut) for o in outputs):
                    log.warning("call %s: no answer to our BYE", self.call_id, extra={"call_id": self.call_id})
            elif isinstance(message, Response) and client_key(message) == key:
                transaction.receive(message, now)
            elif isinstance(message, Request) and message.method == Method.BYE:
                self._send(make_response(message, Status.OK))  # both hung up at once

    # -- plumbing ----------------------------------------------------------------------------------

    async def _next(self, deadline: float | None) -> Request | Response | None:
        """The next SIP message for this call, or None at `deadline`; raises ConnectionGone."""
        return await next_sip(self.conn, deadline, self.call_id)

    async def _wait_until(self, deadline: float) -> None:
        while await self._next(deadline) is not None:
            pass

    def _other_request(self, request: Request) -> None:
        if request.method == Method.ACK:
            return
        if request.method == Method.INVITE and request.to.tag is None:
            self._do(self.tx.receive(request, trio.current_time()))  # a retransmission
            return
        status = Status.OK if request.method == Method.OPTIONS else Status.CALL_OR_TRANSACTION_DOES_NOT_EXIST
        self._send(make_response(request, status, to_tag=self.tag if request.to.tag is None else None))

    def _do(self, outputs: list[TransactionOutput]) -> None:
        for output in outputs:
            if isinstance(output, Transmit):
                self._send(output.message)

    def _send(self, message: Request | Response) -> None:
        send(self.conn, Send(message))
