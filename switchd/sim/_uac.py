"""The caller side: place calls over one TCP connection and record each call's SIP ladder.

`open_uac(server)` connects and starts the connection process; `UacConnection.call` runs one call
as a process of its own (so any number of calls share the connection, told apart by Call-ID, as
SIPp's ``-t t1`` does) and returns its `CallResult`. `place_call` is one call on its own connection.

A call: INVITE (with an SDP offer) through an INVITE client transaction, which ACKs a non-2xx
final itself; a 2xx is ACKed in the dialog, then after `hold` seconds the caller sends BYE — unless
the callee's BYE comes first (answered with 200). `cancel_after` sends CANCEL that long after the
INVITE (once a provisional response came, §9.1). With no final response after `timeout` seconds
the call is cancelled (or abandoned without a provisional) and ends as TIMEOUT.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Literal

import trio

from switchd.otp import Pid, Process, monitor, self_pid, send
from switchd.sip import (
    Dialog,
    InviteClientTransaction,
    Method,
    NonInviteClientTransaction,
    Request,
    Response,
    SipError,
    Status,
    TimedOut,
    TimerConfig,
    ToTransactionUser,
    TransactionOutput,
    Transmit,
    client_key,
    make_cancel,
    make_request,
    make_response,
)

from ._address import HostPort, check_user, format_address, parse_address
from ._connection import Attach, Close, Send, run_connection, socket_ends
from ._errors import AddressError, SimTransportError
from ._mailbox import ConnectionGone, earliest, next_sip
from ._sdp import CONTENT_TYPE, audio_sdp

log = logging.getLogger(__name__)

CANCEL_GRACE = 2.0
"""Seconds a timed-out call waits for the final response to its CANCEL before it is abandoned."""

CLOSE_GRACE = 1.0
"""Seconds a closing UAC connection may take to write what its calls queued before it."""


class Outcome(StrEnum):
    """How a call ended, from the caller's side."""

    ANSWERED = "answered"  # a 2xx came
    REJECTED = "rejected"  # a 3xx-6xx came (487 to our own CANCEL: CANCELLED)
    CANCELLED = "cancelled"  # we cancelled (cancel_after) and got the 487
    TIMEOUT = "timeout"  # no final response within the timeout
    TRANSPORT_ERROR = "transport_error"  # the connection was lost before the call ended


@dataclass(frozen=True, slots=True)
class LadderEntry:
    """One message of a call's SIP ladder: when (seconds after the INVITE), which way, what."""

    at: float
    direction: Literal["sent", "received"]
    message: Request | Response

    @property
    def first_line(self) -> str:
        """``INVITE sip:2000@host SIP/2.0`` or ``SIP/2.0 180 Ringing``."""
        message = self.message
        if isinstance(message, Request):
            return f"{message.method} {message.uri} SIP/2.0"
        return f"SIP/2.0 {message.status} {message.reason}"

    @property
    def label(self) -> str:
        """``INVITE`` or ``180 Ringing`` (with the CSeq method for responses to other than INVITE)."""
        message = self.message
        if isinstance(message, Request):
            return str(message.method)
        method = message.cseq.method
        suffix = "" if method == Method.INVITE else f" ({method})"
        return f"{message.status} {message.reason}{suffix}"


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one call did: its ladder, final answer, setup latency and who hung up."""

    call_id: str
    caller: str
    callee: str
    outcome: Outcome
    final_status: int | None  # the final response to the INVITE; None: none came
    final_reason: str | None
    setup_latency: float | None  # INVITE sent → final response received, seconds
    hangup_by: Literal["caller", "callee"] | None  # of an answered call
    ladder: tuple[LadderEntry, ...]
    error: str | None = None  # what went wrong, for TIMEOUT and TRANSPORT_ERROR
    started_at: float = 0.0  # trio time the INVITE was sent

    @property
    def answered(self) -> bool:
        """True when the callee answered (2xx)."""
        return self.outcome is Outcome.ANSWERED


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOptions:
    """How a call behaves once placed (see `UacConnection.call`)."""

    hold: float = 0.0
    cancel_after: float | None = None
    timeout: float = 32.0
    timers: TimerConfig = field(default_factory=TimerConfig)


class UacConnection:
    """One TCP connection to a SIP server carrying any number of concurrent calls (by Call-ID)."""

    def __init__(self, nursery: trio.Nursery, conn: Pid, local: HostPort, server: HostPort) -> None:
        self._nursery = nursery
        self.conn = conn
        self.local = local
        self.server = server

    async def call(self, caller: str, callee: str, *, hold: float = 0.0, cancel_after: float | None = None,
                   timeout: float = 32.0, timers: TimerConfig | None = None) -> CallResult:
        """Call `callee` (a number or user) as `caller`, in a new process; returns its CallResult.

        `hold`: seconds the caller stays on an answered call before its BYE. `cancel_after`: CANCEL
        the call that long after the INVITE. `timeout`: give up when no final response came by then.
        Raises AddressError when `caller` or `callee` cannot be a SIP user part.
        """
        options = CallOptions(hold=hold, cancel_after=cancel_after, timeout=timeout, timers=timers or TimerConfig())
        try:
            call = _Caller(self, check_user(caller, "caller"), check_user(callee, "callee"), options)
        except (AddressError, SipError) as exc:  # make_request may still refuse what the URI grammar took
            reason = str(exc).removeprefix("make_request: ")
            raise AddressError(f"cannot call {callee!r} as {caller!r}: {reason}") from exc
        done: list[CallResult] = []
        finished = trio.Event()
        await self._nursery.start(partial(Process.start_link, _run_caller, call, done, finished))
        await finished.wait()
        return done[0]


@asynccontextmanager
async def open_uac(server: str | HostPort, *, connect_timeout: float = 5.0) -> AsyncIterator[UacConnection]:
    """Connect to `server` (``host:port``) and yield the UacConnection; closes it on exit.

    Raises AddressError for a bad address and SimTransportError when the connection cannot be made.
    """
    address = parse_address(server, default_port=5060) if isinstance(server, str) else server
    where = format_address(address)
    try:
        with trio.fail_after(connect_timeout):
            stream = await trio.open_tcp_stream(*address)
    except OSError as exc:
        raise SimTransportError(f"cannot connect to {where}: {_reason(exc)}") from exc
    except trio.TooSlowError:
        raise SimTransportError(f"cannot connect to {where}: no answer within {connect_timeout:g}s") from None
    local, _peer = socket_ends(stream)
    async with uac_over(stream, local=local, server=address) as uac:
        yield uac


@asynccontextmanager
async def uac_over(stream: trio.abc.Stream, *, local: HostPort, server: HostPort) -> AsyncIterator[UacConnection]:
    """A UacConnection on an already connected `stream` (a memory stream in a test); closes it on exit.

    `local` goes in our Via, From and Contact; `server` in the Request-URI and To.
    """
    ended = trio.Event()

    async def connection(stream: trio.abc.Stream) -> None:
        try:
            await run_connection(stream, None, local=local, peer=format_address(server))
        finally:
            ended.set()

    async with trio.open_nursery() as nursery:
        conn: Pid = await nursery.start(partial(Process.start_link, connection, stream))
        try:
            yield UacConnection(nursery, conn, local, server)
        finally:
            # Close comes after what the calls queued (a last 200 to a BYE): written before the close.
            send(conn, Close("UAC connection closed"))
            with trio.move_on_after(CLOSE_GRACE, shield=True):
                await ended.wait()
            nursery.cancel_scope.cancel(reason="UAC connection closed")


def _reason(exc: OSError) -> str:
    """Why a connect failed: trio wraps the per-address errors ("all attempts ... failed") in __cause__."""
    if exc.strerror:
        return exc.strerror
    cause = exc.__cause__
    causes = cause.exceptions if isinstance(cause, BaseExceptionGroup) else [cause]
    reasons = sorted({os.strerror(c.errno) if c.errno else str(c) for c in causes if isinstance(c, OSError)})
    return "; ".join(reasons) if reasons else str(exc)


async def place_call(server: str | HostPort, caller: str, callee: str, *, hold: float = 0.0,
                     cancel_after: float | None = None, timeout: float = 32.0) -> CallResult:
    """One call to `callee` through `server` on a connection of its own (see `UacConnection.call`).

    Raises AddressError / SimTransportError when the server cannot be reached; a connection lost
    during the call is a CallResult with outcome TRANSPORT_ERROR.
    """
    async with open_uac(server) as uac:
        return await uac.call(caller, callee, hold=hold, cancel_after=cancel_after, timeout=timeout)


async def _run_caller(call: _Caller, done: list[CallResult], finished: trio.Event) -> None:
    """The body of a caller process: run the call and hand its result over."""
    try:
        done.append(await call.run())
    finally:
        finished.set()


class _Caller:
    def __init__(self, uac: UacConnection, caller: str, callee: str, options: CallOptions) -> None:
        self.uac = uac
        self.caller = caller
        self.callee = callee
        self.options = options
        self.ladder: list[LadderEntry] = []
        self.started = 0.0
        local = format_address(uac.local)
        server = format_address(uac.server)
        self.invite = make_request(
            Method.INVITE, f"sip:{callee}@{server}",
            from_=f"<sip:{caller}@{local}>", to=f"<sip:{callee}@{server}>", sent_by=local,
            contact=f"<sip:{caller}@{local};transport=tcp>",
            headers=[CONTENT_TYPE, ("User-Agent", "switchd-sim")], body=audio_sdp(uac.local[0]),
        )
        self.call_id = self.invite.call_id
        self.final: Response | None = None
        self.final_at: float | None = None

    async def run(self) -> CallResult:
        send(self.uac.conn, Attach(self.call_id, self_pid()))
        monitor(self.uac.conn)
        self.started = trio.current_time()
        try:
            return await self._call()
        except ConnectionGone as exc:
            return self._result(Outcome.TRANSPORT_ERROR, self.final, error=str(exc))

    async def _call(self) -> CallResult:
        options = self.options
        tx = InviteClientTransaction(self.invite, now=self.started, timers=options.timers)
        self._send(self.invite)
        give_up_at = self.started + options.timeout
        cancel_at = None if options.cancel_after is None else self.started + options.cancel_after
        provisional = False
        cancel: Request | None = None
        timed_out = False
        while self.final is None:
            deadline = earliest(tx.next_deadline, cancel_at if cancel is None else None, give_up_at)
            message = await self._next(deadline)
            now = trio.current_time()
            if message is None:
                if any(isinstance(o, TimedOut) for o in self._do(tx.handle_timeout(now))):
                    return self._result(Outcome.TIMEOUT, None, error="no final response (Timer B)")
                if cancel is None and cancel_at is not None and now >= cancel_at and provisional:
                    cancel = self._cancel()
                if now >= give_up_at:
                    if timed_out or not provisional:
                        return self._result(Outcome.TIMEOUT, None,
                                            error=f"no final response within {options.timeout:g}s")
                    timed_out = True
                    if cancel is None:
                        cancel = self._cancel()
                    give_up_at = now + CANCEL_GRACE
                continue
            if isinstance(message, Response) and client_key(message) == client_key(self.invite):
                for output in self._do(tx.receive(message, now)):
                    if isinstance(output, ToTransactionUser) and isinstance(output.message, Response):
                        status = output.message.status
                        if status < 200:
                            provisional = True
                            if cancel is None and cancel_at is not None and now >= cancel_at:
                                cancel = self._cancel()
                        else:
                            self.final, self.final_at = output.message, now
            elif isinstance(message, Request):
                self._answer_stray(message)
        final = self.final
        if final.status >= 300:
            if timed_out:
                return self._result(Outcome.TIMEOUT, final, error=f"no answer within {options.timeout:g}s")
            cancelled = cancel is not None and final.status == Status.REQUEST_TERMINATED
            return self._result(Outcome.CANCELLED if cancelled else Outcome.REJECTED, final)
        return await self._confirmed(final, hangup_now=cancel is not None)

    async def _confirmed(self, ok: Response, *, hangup_now: bool) -> CallResult:
        """The call is answered: ACK, hold, BYE (or take the callee's BYE)."""
        dialog = Dialog.from_uac(self.invite, ok)
        ack = dialog.make_request(Method.ACK)
        self._send(ack)
        hangup_at = trio.current_time() + (0.0 if hangup_now else self.options.hold)
        while True:
            message = await self._next(hangup_at)
            if message is None:
                break
            if isinstance(message, Response):
                if message.status >= 200 and message.cseq.method == Method.INVITE:
                    self._send(ack)  # a retransmitted 2xx: ACK it again (§13.2.2.4)
                continue
            if message.method == Method.BYE and dialog.matches(message):
                rejected = dialog.receive_request(message)
                self._send(rejected or make_response(message, Status.OK))
                if rejected is None:
                    return self._result(Outcome.ANSWERED, ok, hangup_by="callee")
            else:
                self._answer_stray(message)
        bye = dialog.make_request(Method.BYE)
        tx = NonInviteClientTransaction(bye, now=trio.current_time(), timers=self.options.timers)
        self._send(bye)
        while not tx.terminated:
            message = await self._next(tx.next_deadline)
            now = trio.current_time()
            if message is None:
                self._do(tx.handle_timeout(now))
            elif isinstance(message, Response) and client_key(message) == client_key(bye):
                self._do(tx.receive(message, now))
            elif isinstance(message, Request):
                if message.method == Method.BYE:
                    self._send(make_response(message, Status.OK))  # both hung up at once
                else:
                    self._answer_stray(message)
        return self._result(Outcome.ANSWERED, ok, hangup_by="caller")

    # -- plumbing ----------------------------------------------------------------------------------

    def _cancel(self) -> Request:
        cancel = make_cancel(self.invite)
        self._send(cancel)  # its 200 is recorded in the ladder; the 487 ends the INVITE
        return cancel

    def _answer_stray(self, request: Request) -> None:
        if request.method == Method.ACK:
            return
        status = Status.OK if request.method == Method.OPTIONS else Status.CALL_OR_TRANSACTION_DOES_NOT_EXIST
        self._send(make_response(request, status))

    async def _next(self, deadline: float | None) -> Request | Response | None:
        sip = await next_sip(self.uac.conn, deadline, self.call_id)
        if sip is not None:
            self.ladder.append(LadderEntry(trio.current_time() - self.started, "received", sip))
        return sip

    def _do(self, outputs: list[TransactionOutput]) -> list[TransactionOutput]:
        for output in outputs:
            if isinstance(output, Transmit):
                self._send(output.message)
        return outputs

    def _send(self, message: Request | Response) -> None:
        self.ladder.append(LadderEntry(trio.current_time() - self.started, "sent", message))
        send(self.uac.conn, Send(message))

    def _result(self, outcome: Outcome, final: Response | None, *,
                hangup_by: Literal["caller", "callee"] | None = None, error: str | None = None) -> CallResult:
        latency = None if self.final_at is None else self.final_at - self.started
        return CallResult(
            call_id=self.call_id, caller=self.caller, callee=self.callee, outcome=outcome,
            final_status=None if final is None else final.status, final_reason=None if final is None else final.reason,
            setup_latency=latency, hangup_by=hangup_by, ladder=tuple(self.ladder), error=error,
            started_at=self.started,
        )


