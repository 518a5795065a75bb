"""SIP over one TCP stream: the reader and writer every connection process runs, and SipConnection.

A connection is a process (its mailbox takes `Outbound` messages from call sessions) with two
tasks in its own nursery:

* the reader reads the stream, feeds `switchd.sip.Connection` (Content-Length framing) and hands
  every message to the dispatcher as an `Inbound` (by registered name, see `_dispatch`); it
  answers a double-CRLF ping with a pong, a malformed but framed request with 400 built from the
  error's partial message (Via, From, To, Call-ID, CSeq copied), a too-large one with 513, and
  closes the stream once framing is lost (after writing that answer);
* the writer writes what is queued, several messages per `send_all` when they pile up.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

import trio

from switchd.otp import Pid, Process, ReceiveTimeout, receive, self_pid
from switchd.sip import Connection as Framer
from switchd.sip import (
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

from ._wire import Outbound

log = logging.getLogger(__name__)

Dispatch: TypeAlias = Callable[[Request | Response, Pid, float], Awaitable[None]]
"""Who gets what a connection reads: ``await dispatch(message, conn, received_at)`` (see `_dispatch`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionSettings:
    """How every SIP connection (accepted or opened to a gateway) frames and queues.

    ``max_message_size``, ``max_headers``, ``max_line_length``, ``max_vias``: the framer's limits
    (see `switchd.sip.Connection`), 65_535, 100, 8_192, 70 — `switchd.config.SipConfig`'s defaults.
    ``send_queue_size``: messages queued for writing before the peer is dropped, 100.
    ``read_size``: bytes asked of the stream per read, 65_536.
    ``shutdown_flush``: seconds a connection shut down by its supervisor may spend writing what is
    queued (its mailbox included) before it closes anyway, 1.0 (see `StreamIO.shutdown`).
    """

    max_message_size: int = 65_535
    max_headers: int = 100
    max_line_length: int = 8_192
    max_vias: int = 70
    send_queue_size: int = 100
    read_size: int = 65_536
    shutdown_flush: float = 1.0

    def framer(self) -> Framer:
        """A new `switchd.sip.Connection` with these limits."""
        return Framer(max_message_size=self.max_message_size, max_headers=self.max_headers,
                      max_line_length=self.max_line_length, max_vias=self.max_vias)


def peer_of(stream: trio.abc.Stream) -> str:
    """`host:port` of the far end of `stream` when it is a socket, else the stream's type name."""
    if isinstance(stream, trio.SocketStream):
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            return "unconnected socket"
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return type(stream).__name__


class StreamIO:
    """The reader and writer of one stream, for the process `owner` that owns it.

    `run()` reads and writes until the stream ends and returns why; `write()` queues bytes and
    never blocks; `shutdown()` is the owner's terminate. Only the owner's tasks use it, and the
    owner must end it (`shutdown()` or `abort()`) whenever the owner exits: `run()` is shielded.
    """

    __slots__ = (
        "_closing",
        "_done",
        "_receive",
        "_scope",
        "_send",
        "dispatch",
        "framer",
        "label",
        "owner",
        "reason",
        "settings",
        "stream",
    )

    def __init__(self, stream: trio.abc.Stream, owner: Pid, settings: ConnectionSettings, dispatch: Dispatch,
                 label: str) -> None:
        self.stream = stream
        self.owner = owner
        self.label = label
        self.settings = settings
        self.dispatch = dispatch
        self.framer = settings.framer()
        self.reason = "running"
        # A None in the queue means: close once everything before it is written.
        self._send, self._receive = trio.open_memory_channel[bytes | None](settings.send_queue_size)
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
                        nursery.start_soon(self._read_loop)
            finally:
                self._closing = True
                await trio.aclose_forcefully(self.stream)
                self._send.close()
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
        """Queue `data` for the writer; drops the peer when the queue is full."""
        if self._closing:
            return
        try:
            self._send.send_nowait(data)
        except trio.WouldBlock:
            log.warning("%s: send queue full (%d messages), dropping the peer", self.label,
                        self.settings.send_queue_size,
                        extra={"peer": self.label, "send_queue_size": self.settings.send_queue_size})
            self.abort("send queue full")

    def send_message(self, message: Request | Response) -> None:
        """Serialise `message` (Content-Length always written) and queue it."""
        self.write(serialize(message))

    def close_after_writes(self, reason: str) -> None:
        """Close the stream once what is queued now has been written."""
        if self._closing:
            return
        self._closing = True
        self.reason = reason
        try:
            self._send.send_nowait(None)
        except trio.WouldBlock:
            self.abort(f"{reason}; send queue full")

    def abort(self, reason: str) -> None:
        """Close the stream now, dropping what is queued."""
        if self._done.is_set():
            return
        self._closing = True
        self.reason = reason
        self._scope.cancel(reason=f"{self.label}: {reason}")

    # -- the two tasks --------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        receive_channel, stream = self._receive, self.stream
        try:
            async for first in receive_channel:
                if first is None:
                    break
                chunks = [first]
                closing = False
                while True:  # whatever else is queued goes in the same send_all
                    try:
                        more = receive_channel.receive_nowait()
                    except trio.WouldBlock:
                        break
                    if more is None:
                        closing = True
                        break
                    chunks.append(more)
                await stream.send_all(chunks[0] if len(chunks) == 1 else b"".join(chunks))
                if closing:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.reason = f"write failed: {exc or type(exc).__name__}"
        self.abort(self.reason)

    async def _read_loop(self) -> None:
        framer, stream, size = self.framer, self.stream, self.settings.read_size
        while True:
            try:
                data = await stream.receive_some(size)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.abort(f"read failed: {exc or type(exc).__name__}")
                return
            framer.receive_data(bytes(data))
            received_at = trio.current_time()
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
                    await self.dispatch(event, self.owner, received_at)
                elif kind is NeedData:
                    break
                elif kind is Ping:
                    assert isinstance(event, Ping)
                    self.write(event.pong)
                else:
                    assert kind is ConnectionClosed
                    self.close_after_writes("closed by the peer")
                    return

    def _bad_input(self, exc: RemoteProtocolError) -> None:
        """Answer a bad request if it can be answered; close when framing is lost."""
        partial = exc.partial
        answered = False
        if isinstance(partial, Request) and partial.method != Method.ACK:  # §17: an ACK gets no answer
            response = error_response(partial, exc.status_hint, exc.reason)
            if response is not None:
                self.send_message(response)
                answered = True
        outcome = f"answered {exc.status_hint}" if answered else "not answered"
        log.warning("%s: %s (%s%s)", self.label, exc, outcome, ", closing" if exc.framing_lost else "",
                    extra={"peer": self.label, "status": exc.status_hint, "framing_lost": exc.framing_lost,
                           "call_id": partial.headers.get("Call-ID") if partial is not None else None})
        if exc.framing_lost:
            self.close_after_writes(f"framing lost: {exc}")


def error_response(request: Request, status: int, reason: str) -> Response | None:
    """A `status` response to a request that failed to parse, from the headers it does have.

    Via (all), From, To, Call-ID and CSeq are copied as written (RFC 3261 §8.2.6.2), and To gets a
    tag when it has none. None when the request has no Via: a response could not be routed.
    """
    vias = request.headers.get_all("Via")
    if not vias:
        return None
    out = Headers()
    for via in vias:
        out.add("Via", via)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is None:
            continue
        if name == "To" and ";tag=" not in value.replace(" ", "").lower():
            value = f"{value};tag={new_tag()}"
        out.add(name, value)
    return Response(status, reason, out)


class SipConnection:
    """One accepted SIP-over-TCP connection as a process (see the module docstring).

    Messages it takes: `Outbound(message)` — write `message` to the peer. The process exits
    ``"normal"`` when the stream ends, however it ends (the reason is logged).
    """

    @staticmethod
    async def start_link(stream: trio.abc.Stream, settings: ConnectionSettings, dispatch: Dispatch, *,
                         name: str | None = None,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the connection process over `stream`; ``task_status.started(pid)`` at once."""
        await Process.start_link(_serve, stream, settings, dispatch, name=name, task_status=task_status)


async def _serve(stream: trio.abc.Stream, settings: ConnectionSettings, dispatch: Dispatch) -> None:
    pid = self_pid()
    label = f"sip {peer_of(stream)} {pid}"
    io = StreamIO(stream, pid, settings, dispatch, label)
    log.debug("%s: connected", label, extra={"peer": label})
    async with trio.open_nursery() as nursery:

        async def pump() -> None:
            await io.run()
            nursery.cancel_scope.cancel(reason=f"{label}: {io.reason}")

        def handle(msg: object) -> None:
            if type(msg) is Outbound:
                assert isinstance(msg, Outbound)
                io.send_message(msg.message)
            else:
                log.warning("%s: unexpected message %r", label, msg, extra={"peer": label})

        async def take_mailbox() -> None:
            while True:
                try:
                    handle(await receive(timeout=0))
                except ReceiveTimeout:
                    return

        nursery.start_soon(pump)
        try:
            while True:
                handle(await receive())
        except trio.Cancelled:  # shut down (or the stream ended): terminate, then go on cancelled
            await io.shutdown("shutdown", take_mailbox)
            raise
        finally:
            io.abort("connection process exited")  # a no-op once the stream is closed
    log.info("%s: connection ended: %s", label, io.reason, extra={"peer": label, "reason": io.reason})

