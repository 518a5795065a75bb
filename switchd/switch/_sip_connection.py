"""SIP over one TCP stream: the reader and writer every connection process runs, and SipConnection.

A connection is a process (its mailbox takes `Outbound` messages from call sessions) with two
tasks in its own nursery:

* the reader reads the stream, feeds `switchd.sip.Connection` (Content-Length framing) and hands
  every message to the dispatcher (see `_dispatch`; the start of a new call's session runs in a
  task of its own meanwhile, `_starts`, so the reader never waits behind it); it
  answers a double-CRLF ping with a pong, a malformed but framed request with 400 built from the
  error's partial message (`error_response`: Via, From, To, Call-ID, CSeq copied where their text
  is clean), a too-large one with 513, and closes the stream once framing is lost (after writing
  that answer). An exception escaping the dispatch of one message is a bug: it is logged once
  with the Call-ID, a request gets a 500, and the connection and every call on it go on;
* the writer writes what is queued, all of it in one `send_all` per wake-up. A message finds
  nothing queued and the writer idle (the common case on a peer that reads): it is written to the
  socket at once by whoever sends it (`StreamIO.write`), and only what the socket does not take
  is queued. Sessions write this way without a hop through the connection's mailbox: the
  connection process installs `StreamIO.outbound` as its inline handler (`switchd.otp.set_inline_handler`),
  so a session's `Outbound` is written in the session's own task.

Deadlines (slow and idle peers, each a held file descriptor): a message must arrive whole within
``message_timeout`` seconds of its first byte — a peer trickling one byte every few seconds
(slowloris) is logged and closed — on every connection, accepted or opened to a gateway. An
accepted connection that carries no call (see `_connections`) is closed after ``idle_timeout``
seconds without a complete message. RFC 5626 double-CRLF keep-alives are answered but do not
count as activity: switchd keeps no registrations or outbound flows, so a connection that only
pings holds a descriptor and nothing else, and four bytes a minute must not keep it forever; a
connection that carries a call is never timed out, whatever it sends.

The send queue between the mailbox and the writer is bounded (``send_queue_size`` messages): a
peer that does not read fast enough to keep it below that is dropped — logged and closed — rather
than letting its backlog grow without bound in the switch. Nothing waits on a slow peer.

Shutdown (OTP's terminate): the reader and writer run shielded from the owner's cancellation, so a
supervisor's shutdown does not tear the stream down under them. The owner, cancelled, calls
`StreamIO.shutdown`: shielded and bounded by ``shutdown_flush`` seconds, it first queues every
message already in the owner's mailbox (a session's last BYE, queued just before the tree stops),
then waits until everything queued is written and closes the stream; a peer that does not read
within the bound is dropped, so it cannot hold the switch's shutdown.

`SipConnection` is one accepted connection (temporary child of the ``connections``
DynamicSupervisor); `_gateway_link.GatewayLink` runs the same `StreamIO` on the connections it
opens to gateways.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeAlias

import trio

from switchd.otp import (
    Down,
    Pid,
    Process,
    ReceiveTimeout,
    TimerRef,
    cancel_timer,
    monitor,
    receive,
    self_pid,
    send_after,
    set_inline_handler,
)
from switchd.sip import (
    DEFAULT_LIMITS,
    ConnectionClosed,
    Headers,
    Method,
    NeedData,
    Ping,
    RemoteProtocolError,
    Request,
    Response,
    new_tag,
    serialize,
)
from switchd.sip import Connection as Framer

from ._connections import CarriesCall, Closed, ConnectionTable, Shed, TrackedConnection
from ._starts import DONE, NewCall, Starts
from ._tally import sip_cause
from ._wire import Outbound
from ._wire_tap import WireTap

log = logging.getLogger(__name__)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Dispatch: TypeAlias = Callable[[Request | Response, Pid, float, str], Awaitable[None]]
"""Who gets what a connection reads: ``dispatch(message, conn, received_at, source)`` (see
`_dispatch`); `source` is the peer's address without the port (`peer_host`), for per-source limits.
The reader awaits what it returns, but runs a `NewCall` in a task of its own (`_starts`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionSettings:
    """How every SIP connection (accepted or opened to a gateway) frames and queues.

    ``max_message_size``, ``max_headers``, ``max_line_length``, ``max_vias``: the framer's limits
    (see `switchd.sip.Connection`), `switchd.sip.DEFAULT_LIMITS`'s: 65_535, 100, 8_192, 70.
    ``send_queue_size``: messages queued for writing before the peer is dropped, 100.
    ``read_size``: bytes asked of the stream per read, 65_536.
    ``shutdown_flush``: seconds a connection shut down by its supervisor may spend writing what is
    queued (its mailbox included) before it closes anyway, 1.0 (see `StreamIO.shutdown`).
    ``message_timeout``: seconds from a message's first byte to its last before the peer is
    dropped as too slow, 10.0; ``math.inf``: no limit.
    ``idle_timeout``: seconds an accepted connection carrying no call may go without a complete
    message before it is closed, 60.0; ``math.inf``: never (gateway links are never timed out).
    ``tap``: the node's `WireTap`, where every connection counts what it reads and writes (and
    traces it while tracing is on); a tap of its own by default.
    """

    max_message_size: int = DEFAULT_LIMITS.max_message_size
    max_headers: int = DEFAULT_LIMITS.max_headers
    max_line_length: int = DEFAULT_LIMITS.max_line_length
    max_vias: int = DEFAULT_LIMITS.max_vias
    send_queue_size: int = 100
    read_size: int = 65_536
    shutdown_flush: float = 1.0
    message_timeout: float = 10.0
    idle_timeout: float = 60.0
    tap: WireTap = field(default_factory=WireTap, compare=False)

    def __post_init__(self) -> None:
        for name in ("message_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ConnectionSettings.{name} must be > 0 seconds, not {getattr(self, name)!r}")

    def framer(self) -> Framer:
        """A new `switchd.sip.Connection` with these limits."""
        return Framer(max_message_size=self.max_message_size, max_headers=self.max_headers,
                      max_line_length=self.max_line_length, max_vias=self.max_vias)


def _peer(stream: trio.abc.Stream) -> tuple[str, int] | str:
    """(host, port) of the far end of a socket stream, else what to call it instead."""
    if isinstance(stream, trio.SocketStream):
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            return "unconnected socket"
        return str(host), int(port)
    return type(stream).__name__


def peer_of(stream: trio.abc.Stream) -> str:
    """`host:port` of the far end of `stream` when it is a socket, else the stream's type name."""
    peer = _peer(stream)
    if isinstance(peer, str):
        return peer
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_host(stream: trio.abc.Stream) -> str:
    """The address of the far end of `stream` without the port (what per-source limits count by)."""
    peer = _peer(stream)
    return peer if isinstance(peer, str) else peer[0]


class StreamIO:
    """The reader and writer of one stream, for the process `owner` that owns it.

    `run()` reads and writes until the stream ends and returns why; `write()` queues bytes and
    never blocks; `shutdown()` is the owner's terminate. Only the owner's tasks use it, and the
    owner must end it (`shutdown()` or `abort()`) whenever the owner exits: `run()` is shielded.
    """

    __slots__ = (
        "_closing",
        "_done",
        "_fd",
        "_flush_then_close",
        "_queue",
        "_scope",
        "_writer",
        "_writing",
        "dispatch",
        "framer",
        "label",
        "owner",
        "peer",
        "reason",
        "settings",
        "source",
        "stream",
        "tracked",
    )

    def __init__(self, stream: trio.abc.Stream, owner: Pid, settings: ConnectionSettings, dispatch: Dispatch,
                 label: str, *, tracked: TrackedConnection | None = None) -> None:
        self.stream = stream
        self.owner = owner
        self.label = label
        self.settings = settings
        self.dispatch = dispatch
        self.source = peer_host(stream)
        self.peer = peer_of(stream)
        self.tracked = tracked  # an accepted connection's row in the ConnectionTable; None for a gateway
        self.framer = settings.framer()
        self.reason = "running"
        self._queue: deque[bytes] = deque()  # written by the writer task, all of it per send_all
        self._writer: trio.lowlevel.Task | None = None  # the writer, while it waits for bytes
        self._writing = False  # the writer is inside send_all: nobody else may write now
        self._flush_then_close = False  # close_after_writes(): the writer ends once the queue is empty
        # Written to directly (see write()) when nothing is queued: a socket's descriptor, else -1.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self._scope = trio.CancelScope()  # abort() cancels it
        self._closing = False
        self._done = trio.Event()

    async def run(self) -> str:
        """Read and write until the peer closes, framing is lost, the peer is dropped or a write fails.

        Shielded from outside cancellation: only `abort()`, `close_after_writes()` (and so
        `shutdown()`) or the stream itself end it. Always closes the stream; returns the reason,
        also left in `reason`.
        """
        with trio.CancelScope(shield=True):  # the close too: the owner may be cancelled meanwhile
            try:
                with self._scope:  # (abort() may have cancelled it already)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._write_loop)
                        nursery.start_soon(self._read_loop, Starts(nursery, self.label))
            finally:
                self._closing = True
                self._fd = -1  # closed below: the number may be reused at once
                self._queue.clear()
                await trio.aclose_forcefully(self.stream)
                self._done.set()
        return self.reason

    async def shutdown(self, reason: str, take_mailbox: Callable[[], Awaitable[None]]) -> None:
        """The owner's terminate: queue its mailbox, write everything queued, then close.

        `take_mailbox` moves the messages already in the owner's mailbox to this stream (with
        `send_message`). Shielded, and bounded by ``settings.shutdown_flush`` seconds in all: what
        is not written by then is dropped with the peer. Returns once the stream is closed or
        dropped (`run()` then returns at once).
        """
        with trio.move_on_after(self.settings.shutdown_flush, shield=True):
            if not self._closing:
                await take_mailbox()
            self.close_after_writes(reason)
            await self._done.wait()
        if not self._done.is_set():
            log.warning("%s: %s: not written within %gs, dropping the peer", self.label, reason,
                        self.settings.shutdown_flush,
                        extra={"peer": self.label, "shutdown_flush": self.settings.shutdown_flush})
            self.abort(f"{reason}; not written within {self.settings.shutdown_flush:g}s")

    def write(self, data: bytes) -> None:
        """Write `data` now if the socket takes it, else queue it for the writer; never blocks.

        When nothing is queued and the writer is not writing, the bytes go straight to the
        socket's descriptor (non-blocking) in the caller's task: no task switch per message, the
        common case on a peer that reads. What the socket does not take is queued, and everything
        queued goes out in one ``send_all`` per wake-up of the writer. Drops the peer when
        ``send_queue_size`` messages are queued.
        """
        if self._closing:
            return
        queue = self._queue
        if not queue and not self._writing and self._fd >= 0:
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:  # the peer reset the connection: as a failed send_all
                self.abort(f"write failed: {exc.strerror or exc}")
                return
            if sent == len(data):
                return
            data = data[sent:]
        if len(queue) >= self.settings.send_queue_size:
            log.warning("%s: send queue full (%d messages), dropping the peer", self.label,
                        self.settings.send_queue_size,
                        extra={"peer": self.label, "send_queue_size": self.settings.send_queue_size})
            self.abort("send queue full")
            return
        queue.append(data)
        self._wake_writer()

    def _wake_writer(self) -> None:
        writer = self._writer
        if writer is not None:
            self._writer = None
            trio.lowlevel.reschedule(writer)

    def send_message(self, message: Request | Response) -> None:
        """Serialise `message` (Content-Length always written), count it in the node's tap, queue it."""
        data = serialize(message)
        self.settings.tap.sent(message, data, self.peer)
        self.write(data)

    @property
    def closing(self) -> bool:
        """True once the stream is being closed or is closed: nothing written from now on goes out."""
        return self._closing

    def outbound(self, msg: object) -> bool:
        """The owner's inline handler (`switchd.otp.set_inline_handler`): write an `Outbound` now.

        True when `msg` was an `Outbound` and is written (or queued); anything else, or anything
        once the stream is closing, is left to the owner's mailbox.
        """
        if type(msg) is Outbound and not self._closing:
            assert isinstance(msg, Outbound)
            self.send_message(msg.message)
            return True
        return False

    def close_after_writes(self, reason: str) -> None:
        """Close the stream once what is queued now has been written."""
        if self._closing:
            return
        self._closing = True
        self.reason = reason
        self._flush_then_close = True
        self._wake_writer()

    def abort(self, reason: str) -> None:
        """Close the stream now, dropping what is queued."""
        if self._done.is_set():
            return
        self._closing = True
        self.reason = reason
        self._scope.cancel(reason=f"{self.label}: {reason}")

    # -- the two tasks --------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        queue, stream = self._queue, self.stream
        try:
            while True:
                if not queue:
                    if self._flush_then_close:
                        break
                    self._writer = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(self._writer_aborted)
                    continue
                data = queue.popleft() if len(queue) == 1 else b"".join(queue)  # all queued: one send_all
                queue.clear()
                self._writing = True
                try:
                    await stream.send_all(data)
                finally:
                    self._writing = False
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.reason = f"write failed: {exc or type(exc).__name__}"
        self.abort(self.reason)

    def _writer_aborted(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        self._writer = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def _read_loop(self, starts: Starts) -> None:
        framer, stream, size, tap = self.framer, self.stream, self.settings.read_size, self.settings.tap
        running = starts.running
        tracked, message_timeout = self.tracked, self.settings.message_timeout
        # When the first byte of a message still incomplete arrived (None: between messages). Bytes
        # left over after a message in the same read start the clock at the next read, at most one
        # read late; the framer does not say how much it holds, and this needs no more than that.
        first_byte_at: float | None = None
        while True:
            try:
                if first_byte_at is None:
                    data = await stream.receive_some(size)
                else:
                    with trio.move_on_at(first_byte_at + message_timeout) as deadline:
                        data = await stream.receive_some(size)
                    if deadline.cancelled_caught:
                        self._too_slow(message_timeout)
                        return
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.abort(f"read failed: {exc or type(exc).__name__}")
                return
            framer.receive_data(bytes(data))
            received_at = trio.current_time()
            framer.keep_bytes = tracing = tap.tracing  # a trace takes the bytes read, not a re-serialisation
            framed = messages = False
            while True:
                try:
                    event = framer.next_event()
                except RemoteProtocolError as exc:
                    self._bad_input(exc)
                    if exc.framing_lost:
                        return
                    continue
                kind = type(event)
                if kind is Request or kind is Response:
                    assert isinstance(event, Request | Response)
                    framed = messages = True
                    if tracing:
                        tap.received(event, self.peer, framer.last_bytes, received_at)
                    else:
                        tap.received(event, self.peer)
                    try:
                        if running:  # a session start still runs: a message of its Call-ID waits for it
                            await starts.settle(event.call_id)
                        pending = self.dispatch(event, self.owner, received_at, self.source)
                        if type(pending) is NewCall:  # an admitted INVITE: its session starts while we read on
                            assert isinstance(pending, NewCall)
                            await starts.spawn(pending)
                        elif pending is not DONE:
                            await pending
                    except Exception as exc:  # noqa: BLE001 - a bug costs its message, not the connection
                        self._dispatch_failed(event, exc)
                elif kind is NeedData:
                    break
                elif kind is Ping:
                    assert isinstance(event, Ping)
                    framed = True
                    self.write(event.pong)
                else:
                    assert kind is ConnectionClosed
                    self.close_after_writes("closed by the peer")
                    return
            if framed:
                first_byte_at = None
                if messages and tracked is not None:
                    tracked.touch(received_at)
            elif first_byte_at is None and data.strip(b"\r\n"):  # CRLFs alone are keep-alive, not a message
                first_byte_at = received_at

    def count_rejection(self, cause: str) -> None:
        """Count a rejection sent at the edge (e.g. ``sip_cause(400)``) in the node's rejection tally.

        For accepted connections; on a gateway link (no table) it is not counted: a gateway's bad
        message is not a request the node turned away.
        """
        if self.tracked is not None:
            self.tracked.table.rejections.count(cause)

    def _too_slow(self, timeout: float) -> None:
        """A message took longer than `timeout` from its first byte: log (rate-limited), close."""
        message = "%s: no complete message within %gs of its first byte; closing"
        extra = {"peer": self.label, "message_timeout": timeout}
        if self.tracked is not None:
            self.tracked.table.closes.note(Closed.MESSAGE_TIMEOUT, message, self.label, timeout, extra=extra)
            self.tracked.table.unregister(self.tracked)
        else:
            log.warning(message, self.label, timeout, extra=extra)
        self.close_after_writes(f"no complete message within {timeout:g}s")

    def _bad_input(self, exc: RemoteProtocolError) -> None:
        """Answer a bad request if it can be answered; close when framing is lost."""
        partial = exc.partial
        answered = False
        self.settings.tap.refused(exc.status_hint)
        self.count_rejection(sip_cause(exc.status_hint))  # docs/security.md: the edge counts its refusals
        if isinstance(partial, Request) and partial.method != Method.ACK:  # §17: an ACK gets no answer
            response = error_response(partial, exc.status_hint, exc.reason)
            if response is not None:
                self.send_message(response)
                answered = True
        outcome = f"answered {exc.status_hint}" if answered else "not answered"
        call_id = partial.headers.get("Call-ID") if partial is not None else None
        log.warning("%s: %s (%s%s)", self.label, exc, outcome, ", closing" if exc.framing_lost else "",
                    extra={"peer": self.label, "status": exc.status_hint, "framing_lost": exc.framing_lost,
                           # the bad byte may be in it: a log handler must never be handed it raw
                           "call_id": call_id if call_id is None or _clean(call_id) else ascii(call_id)})
        if exc.framing_lost:
            self.close_after_writes(f"framing lost: {exc}")

    def _dispatch_failed(self, message: Request | Response, exc: Exception) -> None:
        """A bug in the dispatch of one message: logged once, a request answered 500; the rest goes on."""
        response = dispatch_failed(self.label, message, exc)
        if response is not None:
            self.send_message(response)


def _clean(value: str) -> bool:
    """True when `value` can be copied into an answer: strict UTF-8 and no control character but HTAB."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a byte that was not UTF-8, kept as a surrogate by the parser
        return False
    return _CONTROL.search(value) is None


def dispatch_failed(label: str, message: Request | Response, exc: Exception) -> Response | None:
    """Log a bug in the dispatch of `message` (on the transport `label`) once; the 500 to send, if any.

    A request but an ACK gets a 500 (built as `error_response` builds it); the transport goes on.
    """
    call_id = message.headers.get("Call-ID")
    log.error("%s: dispatching a message of Call-ID %s failed: %r", label, call_id, exc,
              exc_info=exc, extra={"peer": label, "call_id": call_id})
    if isinstance(message, Request) and message.method != Method.ACK:
        return error_response(message, 500, "Server Internal Error")
    return None


def error_response(request: Request, status: int, reason: str) -> Response | None:
    """A `status` response to a request that failed to parse, from the headers it does have.

    Via (all), From, To, Call-ID and CSeq are copied as written (RFC 3261 §8.2.6.2), and To gets a
    tag when it has none; a header whose text is not clean (not UTF-8, a control character: the
    very thing that may have failed the request) is left out, never echoed. None when no clean Via
    is left: a response could not be routed. Never raises, whatever `request` holds.
    """
    vias = [via for via in request.headers.get_all("Via") if _clean(via)]
    if not vias:
        return None
    out = Headers()
    for via in vias:
        out.add("Via", via)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is None or not _clean(value):
            continue
        if name == "To" and ";tag=" not in value.replace(" ", "").lower():
            value = f"{value};tag={new_tag()}"
        out.add(name, value)
    return Response(status, reason if _clean(reason) else "Bad Request", out)


class SipConnection:
    """One accepted SIP-over-TCP connection as a process (see the module docstring).

    Messages it takes: `Outbound(message)` — write `message` to the peer; `CarriesCall(session)`
    — `session` carries a call on this connection: monitor it, and neither time out nor shed the
    connection until it exits; `Shed(reason)` — the table let this idle connection go: close now.
    It is entered in `table` (a `ConnectionTable`; a private one when None) for its whole life.
    The process exits ``"normal"`` when the stream ends, however it ends (the reason is logged).
    """

    @staticmethod
    async def start_link(stream: trio.abc.Stream, settings: ConnectionSettings, dispatch: Dispatch, *,
                         table: ConnectionTable | None = None, name: str | None = None,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the connection process over `stream`; ``task_status.started(pid)`` at once."""
        await Process.start_link(_serve, stream, settings, dispatch, ConnectionTable() if table is None else table, name=name,
                                 task_status=task_status)


@dataclass(frozen=True, slots=True)
class _IdleCheck:
    """The connection's own timer: see whether it has been idle for idle_timeout by now."""


async def _serve(stream: trio.abc.Stream, settings: ConnectionSettings, dispatch: Dispatch,
                 table: ConnectionTable) -> None:
    pid = self_pid()
    label = f"sip {peer_of(stream)} {pid}"
    entry = table.register(pid, peer_host(stream))
    io = StreamIO(stream, pid, settings, dispatch, label, tracked=entry)
    set_inline_handler(io.outbound)  # sessions' Outbound messages are written in their own task
    idle_timer: TimerRef | None = None
    log.debug("%s: connected", label, extra={"peer": label})

    def arm_idle_timer(delay: float) -> None:
        nonlocal idle_timer
        if idle_timer is not None:
            cancel_timer(idle_timer)
        if delay < math.inf:
            idle_timer = send_after(pid, _IdleCheck(), delay)

    def check_idle() -> None:
        idle = entry.idle_for(trio.current_time())
        if idle is None:
            return  # a call is attached; its end re-arms the timer
        left = settings.idle_timeout - idle
        if left > 0:
            arm_idle_timer(left)  # a message came meanwhile
            return
        table.closes.note(Closed.IDLE, "%s: idle for %gs without a call; closing", label, idle,
                          extra={"peer": label, "idle_timeout": settings.idle_timeout})
        table.unregister(entry)
        io.close_after_writes(f"idle for {idle:g}s")

    def handle(msg: object) -> None:
        kind = type(msg)
        if kind is Outbound:
            assert isinstance(msg, Outbound)
            io.send_message(msg.message)
        elif kind is CarriesCall:
            assert isinstance(msg, CarriesCall)
            monitor(msg.session)
            entry.attach()
        elif kind is Down:
            entry.detach(trio.current_time())
            if entry.calls == 0:
                arm_idle_timer(settings.idle_timeout)
        elif kind is _IdleCheck:
            check_idle()
        elif kind is Shed:
            assert isinstance(msg, Shed)
            io.abort(msg.reason)
        else:
            log.warning("%s: unexpected message %r", label, msg, extra={"peer": label})

    async def take_mailbox() -> None:
        while True:
            try:
                handle(await receive(timeout=0))
            except ReceiveTimeout:
                return

    try:
        async with trio.open_nursery() as nursery:

            async def pump() -> None:
                await io.run()
                nursery.cancel_scope.cancel(reason=f"{label}: {io.reason}")

            nursery.start_soon(pump)
            arm_idle_timer(settings.idle_timeout)
            try:
                while True:
                    handle(await receive())
            except trio.Cancelled:  # shut down (or the stream ended): terminate, then go on cancelled
                await io.shutdown("shutdown", take_mailbox)
                raise
            finally:
                io.abort("connection process exited")  # a no-op once the stream is closed
    finally:
        closed_by_us = not entry.open  # shed or timed out: the table's tally logged it already
        table.unregister(entry)
    log.log(logging.DEBUG if closed_by_us else logging.INFO, "%s: connection ended: %s", label, io.reason,
            extra={"peer": label, "reason": io.reason})
