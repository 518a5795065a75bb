"""One simulated SIP endpoint's TCP connection, as a process that routes messages to calls by Call-ID.

Both ends of the simulator use it: the gateway's accepted connections and the UAC's connection
to the server. The process owns the stream: a reader task frames the bytes with
`switchd.sip.Connection` and posts each message to the process's own mailbox; the process writes
what calls ask it to (`Send`, `Close`) and hands each incoming message to the call attached to
its Call-ID (`Attach`), as `Received`. When the connection ends, every attached call gets
`ConnectionLost`.

A message for no attached call goes to the `on_new` hook when it is an INVITE without a To tag (the
gateway starts a call process there); otherwise: an ACK or a response is dropped, OPTIONS gets
200, BYE and CANCEL get 481, anything else 501.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from switchd.otp import Down, Pid, monitor, receive, self_pid, send
from switchd.sip import (
    Connection,
    ConnectionClosed,
    Method,
    NeedData,
    Ping,
    RemoteProtocolError,
    Request,
    Response,
    SipError,
    Status,
    make_response,
)

log = logging.getLogger(__name__)

_READ_SIZE = 65_536


@dataclass(frozen=True, slots=True)
class Send:
    """To the connection: write `message`."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class Close:
    """To the connection: close the TCP connection now (a ``drop`` behaviour)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Attach:
    """To the connection: hand messages with this Call-ID to `pid` until it exits."""

    call_id: str
    pid: Pid


@dataclass(frozen=True, slots=True)
class Received:
    """From the connection to a call: `message` arrived on connection `conn`."""

    message: Request | Response
    conn: Pid


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """From the connection to a call: the TCP connection ended (`reason`)."""

    reason: str


@dataclass(frozen=True, slots=True)
class _Incoming:
    message: Request | Response


@dataclass(frozen=True, slots=True)
class _Raw:
    data: bytes


@dataclass(frozen=True, slots=True)
class _ReaderDone:
    reason: str


NewCallHook = Callable[[Request, Pid, tuple[str, int]], Awaitable[Pid | None]]
"""Called with a new INVITE, the connection's pid and our (host, port) on it; returns the pid of
the call process that takes the INVITE (None: the hook answered it itself)."""


async def run_connection(stream: trio.abc.Stream, on_new: NewCallHook | None = None, *,
                         local: tuple[str, int], peer: str) -> None:
    """The body of a connection process (start it with ``Process.start_link(run_connection, ...)``).

    `local` is our (host, port) on the stream (Via and Contact of what we send), `peer` names the
    other end in logs.
    """
    me = self_pid()
    calls: dict[str, Pid] = {}
    reason = "closed"
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read, stream, me)
            reason = await _serve(stream, me, calls, on_new, peer, local)
            nursery.cancel_scope.cancel(reason=reason)
    finally:
        with trio.move_on_after(1.0, shield=True):
            await stream.aclose()
        for pid in set(calls.values()):
            send(pid, ConnectionLost(reason))
        log.debug("connection %s ended: %s", peer, reason, extra={"peer": peer})


async def _serve(stream: trio.abc.Stream, me: Pid, calls: dict[str, Pid], on_new: NewCallHook | None,
                 peer: str, local: tuple[str, int]) -> str:
    """The process loop; returns why the connection ended."""
    while True:
        msg = await receive()
        match msg:
            case Send(message):
                if not await _write(stream, message):
                    return "connection reset by peer"
            case _Incoming(message):
                await _route(message, me, calls, on_new, stream, peer, local)
            case Attach(call_id, pid):
                calls[call_id] = pid
                monitor(pid)
            case Down(pid=pid):
                for call_id in [c for c, p in calls.items() if p == pid]:
                    del calls[call_id]
            case _Raw(data):
                await _send_bytes(stream, data)
            case Close(why):
                log.info("closing connection to %s: %s", peer, why, extra={"peer": peer})
                return f"closed: {why}"
            case _ReaderDone(why):
                return why
            case _:
                log.warning("connection %s: unexpected message %r", peer, msg, extra={"peer": peer})


async def _route(message: Request | Response, me: Pid, calls: dict[str, Pid], on_new: NewCallHook | None,
                 stream: trio.abc.Stream, peer: str, local: tuple[str, int]) -> None:
    call_id = message.call_id
    owner = calls.get(call_id)
    if owner is not None:
        send(owner, Received(message, me))
        return
    if isinstance(message, Response):
        log.debug("%d for no call (%s) from %s dropped", message.status, call_id, peer, extra={"call_id": call_id})
        return
    if message.method == Method.INVITE and message.to.tag is None and on_new is not None:
        pid = await on_new(message, me, local)
        if pid is not None:
            calls[call_id] = pid
            monitor(pid)
        return
    status = _UNROUTED.get(str(message.method), Status.NOT_IMPLEMENTED)
    if message.method == Method.INVITE:
        status = Status.DECLINE if message.to.tag is None else Status.CALL_OR_TRANSACTION_DOES_NOT_EXIST
    if status is not None:
        await _write(stream, make_response(message, status))


# What a request for no call gets (None: nothing; absent: 501).
_UNROUTED: dict[str, Status | None] = {
    Method.ACK: None,
    Method.OPTIONS: Status.OK,
    Method.BYE: Status.CALL_OR_TRANSACTION_DOES_NOT_EXIST,
    Method.CANCEL: Status.CALL_OR_TRANSACTION_DOES_NOT_EXIST,
}


async def _write(stream: trio.abc.Stream, message: Request | Response) -> bool:
    try:
        data = Connection().send(message)
    except SipError as exc:
        log.error("cannot serialise %r: %s", message, exc)
        return True
    return await _send_bytes(stream, data)


async def _send_bytes(stream: trio.abc.Stream, data: bytes) -> bool:
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True


async def _read(stream: trio.abc.Stream, me: Pid) -> None:
    """Frame the byte stream into messages and post them to the connection process."""
    framing = Connection()
    while True:
        try:
            data = await stream.receive_some(_READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            send(me, _ReaderDone(f"connection reset: {exc or type(exc).__name__}"))
            return
        framing.receive_data(bytes(data))
        while True:
            try:
                event = framing.next_event()
            except RemoteProtocolError as exc:
                if exc.framing_lost:
                    send(me, _ReaderDone(f"bad SIP from the peer: {exc}"))
                    return
                log.warning("bad SIP message dropped: %s", exc)
                continue
            if isinstance(event, NeedData):
                break
            if isinstance(event, ConnectionClosed):
                send(me, _ReaderDone("closed by the peer"))
                return
            if isinstance(event, Ping):
                send(me, _Raw(event.pong))
                continue
            send(me, _Incoming(event))


def socket_ends(stream: trio.SocketStream) -> tuple[tuple[str, int], str]:
    """Our (host, port) on a TCP stream, and the peer as ``host:port`` (for logs)."""
    try:
        host, port = stream.socket.getsockname()[:2]
        peer_host, peer_port = stream.socket.getpeername()[:2]
    except OSError:  # the peer already went away: the reader will see it
        return ("127.0.0.1", 0), "?"
    return (str(host), int(port)), f"{peer_host}:{peer_port}"
