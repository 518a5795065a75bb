"""SIP over UDP: one process per listen address, owning its socket and the server transactions on it.

```
udp:<host>:<port>     UdpSocket process (PERMANENT, under "sip")
├── reader            recvfrom → size → parse_datagram → received/rport → server transactions → dispatch
├── writer            the send queue → sendto (nothing awaits a slow network but this task)
├── timers            the server transactions' deadlines: Timer G retransmissions, expiry
└── starts            one task per new call's session start, while the reader reads on (`_starts`)
```

What a datagram goes through, in order (every step costs that datagram only; nothing a peer
sends can end the process):

1. larger than ``max_message_size``: dropped unread, counted (``dropped["oversize"]``);
2. `switchd.sip.parse_datagram`: the same head parser and edge checks as TCP. A request that
   fails is answered with the status its error hints (400 …, built by `error_response` from the
   clean headers it has, counted in the node's rejections as ``sip_<status>``) — to the address
   the datagram came from, never to one its Via names; one that cannot be answered, a response
   that fails, and what is not SIP at all are dropped and counted (``bad_request``, ``bad_response``,
   ``not_sip``). A datagram of CRLFs only is a keep-alive, counted and otherwise ignored;
3. a request gets ``received``/``rport`` of its source on its top Via (`stamp_source`: every
   response to it goes back to that address) and goes through the socket's
   `ServerTransactionTable`: a copy of a request already seen gets the last answer again (or
   nothing, or is ACKed away) and goes no further — so an INVITE sent twice never starts two
   calls, a BYE whose 200 was lost gets the 200 again after its call ended;
4. what is left goes to the dispatcher with the reply path ``UdpPeer(this process, source, local)``
   (`_wire`): the same rules as TCP (`_dispatch`).

Sessions and the dispatcher answer with `deliver(path, message)`: an `Outbound` with the peer's
address. A response goes through the server transactions (which remember it and arm Timer G for
a non-2xx final to an INVITE that heard a 1xx; see `switchd.sip.InviteServerTransaction`); a
request goes to its `to` address. `UdpGateway` requests (from `_gateway_link`) are requests like
any other. Sends that fail (no route, the queue full) are dropped and counted: on UDP a lost
datagram is what retransmission is for.

Shutdown: the reader stops, then what is in the mailbox and the send queue is written, shielded
and bounded by ``shutdown_flush`` seconds (the BYEs of calls the drain ended still go out).

The process answers one request, `udp_bound(name)`: the address it is bound to.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeAlias

import trio

from switchd.otp import (
    Caller,
    ChildSpec,
    Pid,
    Process,
    ReceiveTimeout,
    Restart,
    call,
    receive,
    self_pid,
)
from switchd.sip import (
    UDP_REQUEST_LIMIT,
    Limits,
    Method,
    RemoteProtocolError,
    Request,
    Response,
    ServerTransactionTable,
    TimedOut,
    TimerConfig,
    ToTransactionUser,
    TransactionOutput,
    Transmit,
    parse_datagram,
    response_destination,
    serialize,
    stamp_source,
)

from ._connections import CarriesCall
from ._inherited import inherited_sockets
from ._sip_connection import dispatch_failed, error_response
from ._starts import DONE, NewCall, Starts
from ._tally import Tally, TallyStats, sip_cause
from ._wire import Outbound, UdpPeer, udp_socket_name

log = logging.getLogger(__name__)

UdpDispatch: TypeAlias = Callable[[Request | Response, UdpPeer, float, str], Awaitable[None]]
"""Who gets what a UDP socket reads: ``await dispatch(message, peer, received_at, source)`` (see `_dispatch`)."""

Address: TypeAlias = tuple[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpSettings:
    """How every UDP socket of a node parses, remembers and queues.

    ``max_message_size``, ``max_headers``, ``max_line_length``, ``max_vias``: the parser's limits,
    as for TCP (`ConnectionSettings`); a datagram over ``max_message_size`` is dropped unread.
    ``timers``: the RFC 3261 timers of its server transactions, TimerConfig().
    ``max_transactions``: server transactions kept per socket (the oldest evicted beyond), 10_000.
    ``send_queue_size``: datagrams waiting to be sent before more are dropped, 1_000.
    ``read_size``: bytes asked of each read, 65_536 (more than any UDP datagram).
    ``receive_buffer``: the socket's kernel receive buffer (SO_RCVBUF), 4 MiB, capped by the kernel at
        ``net.core.rmem_max``: what a burst may queue while the node is busy before the kernel drops it.
    ``shutdown_flush``: seconds the socket may spend sending what is queued when stopped, 1.0.
    """

    max_message_size: int = 65_535
    max_headers: int = 100
    max_line_length: int = 8_192
    max_vias: int = 70
    timers: TimerConfig = field(default_factory=TimerConfig)
    max_transactions: int = 10_000
    send_queue_size: int = 1_000
    read_size: int = 65_536
    receive_buffer: int = 4 * 1024 * 1024
    shutdown_flush: float = 1.0

    @property
    def limits(self) -> Limits:
        """The parser limits."""
        return Limits(self.max_message_size, self.max_headers, self.max_line_length, self.max_vias)


@dataclass(frozen=True, slots=True)
class UdpStats:
    """What the node's UDP sockets did so far (for `switchd status` and the metrics)."""

    sockets: int  # UDP sockets running
    received: int  # datagrams read
    sent: int  # datagrams written
    keepalives: int  # CRLF-only datagrams (ignored)
    absorbed: int  # retransmitted requests (and ACKs to non-2xx) answered from the transactions
    transactions: int  # server transactions held now
    evicted: int  # server transactions dropped early to stay within max_transactions
    large_requests: int  # requests sent over UDP although larger than RFC 3261 §18.1.1's 1300 bytes
    dropped: TallyStats  # datagrams dropped, by cause: oversize, not_sip, bad_request, bad_response,
    #                      send_failed, send_queue_full, no_destination


class UdpCounters:
    """The counts of every UDP socket of a node: made once by the application, like `ConnectionTable`.

    ``rejections``: the node's rejection tally, where the error answers sent at the edge count
    (``sip_400`` …); a private one by default.
    """

    __slots__ = ("_retired", "dropped", "keepalives", "large_requests", "received", "rejections", "sent", "tables")

    def __init__(self, *, rejections: Tally | None = None) -> None:
        self.rejections = rejections or Tally("refused", log)
        self.dropped = Tally("UDP datagrams dropped", log)
        self.received = 0
        self.sent = 0
        self.keepalives = 0
        self.large_requests = 0
        self.tables: dict[Pid, ServerTransactionTable] = {}  # the live sockets' transactions
        self._retired = (0, 0)  # absorbed and evicted by the tables of sockets that exited

    def register(self, pid: Pid, table: ServerTransactionTable) -> None:
        """The socket process `pid` runs with `table`: its counts are the node's now."""
        self.tables[pid] = table

    def unregister(self, pid: Pid) -> None:
        """The socket process `pid` exited: its transactions are gone, its counts stay."""
        table = self.tables.pop(pid, None)
        if table is not None:
            absorbed, evicted = self._retired
            self._retired = (absorbed + table.absorbed, evicted + table.evicted)

    def statistics(self) -> UdpStats:
        """The counts so far (the transactions held are those of the sockets running now)."""
        tables = list(self.tables.values())
        absorbed, evicted = self._retired
        return UdpStats(len(tables), self.received, self.sent, self.keepalives,
                        absorbed + sum(t.absorbed for t in tables), sum(len(t) for t in tables),
                        evicted + sum(t.evicted for t in tables), self.large_requests, self.dropped.statistics())


@dataclass(frozen=True, slots=True)
class _Where:
    pass


class UdpSocket:
    """The process of one UDP listen address (see the module docstring)."""

    @staticmethod
    async def start_link(host: str, port: int, settings: UdpSettings, dispatch: UdpDispatch, *,
                         counters: UdpCounters | None = None, name: str | None = None,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind `host`:`port`, report started, then serve until shut down.

        Registered as `name` (default ``udp_socket_name("host:port")``, an IPv6 host in brackets).
        Raises OSError (the address in use, not ours) before ``started`` when it cannot be bound.
        """
        handed = inherited_sockets("udp", host, port)  # a worker's: its parent bound it (see _inherited)
        family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
        sock = trio.socket.from_stdlib_socket(handed[0]) if handed else trio.socket.socket(family, trio.socket.SOCK_DGRAM)
        try:
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, settings.receive_buffer)
            if not handed:
                await sock.bind((host, port))
            bound = sock.getsockname()
            local = _hostport(str(bound[0]), int(bound[1]))
            await Process.start_link(_serve, sock, local, settings, dispatch, counters or UdpCounters(),
                                     name=name or udp_socket_name(_hostport(host, port)), task_status=task_status)
        finally:
            sock.close()


def udp_socket_spec(host: str, port: int, settings: UdpSettings, dispatch: UdpDispatch, *,
                    counters: UdpCounters | None = None) -> ChildSpec:
    """The child spec of the socket for `host`:`port`: id and name ``udp_socket_name("host:port")``, PERMANENT.

    The address is written as the configuration writes it: an IPv6 host in brackets (``[::1]:5060``).
    """
    name = udp_socket_name(_hostport(host, port))
    return ChildSpec(id=name, start=partial(UdpSocket.start_link, host, port, settings, dispatch, counters=counters,
                                            name=name),
                     restart=Restart.PERMANENT, shutdown=settings.shutdown_flush + 1.0)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def udp_bound(socket: Pid | str, *, timeout: float = 5.0) -> str:
    """The ``host:port`` the UDP socket process `socket` is bound to (the real port after port 0)."""
    where: str = await call(socket, _Where(), timeout=timeout)
    return where


async def _serve(sock: trio.socket.SocketType, local: str, settings: UdpSettings, dispatch: UdpDispatch,
                 counters: UdpCounters) -> None:
    endpoint = _Endpoint(sock, self_pid(), local, settings, dispatch, counters)
    counters.register(endpoint.pid, endpoint.table)
    log.info("SIP listening on %s (UDP)", local, extra={"listen": local, "pid": str(endpoint.pid)})
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(endpoint.write_loop)
            nursery.start_soon(endpoint.timer_loop)
            nursery.start_soon(endpoint.read_loop, Starts(nursery, endpoint.label))
            try:
                while True:
                    endpoint.handle(await receive())
            except trio.Cancelled:  # shut down: send what is owed, then go on cancelled
                await endpoint.shutdown()
                raise
    finally:
        counters.unregister(endpoint.pid)


class _Endpoint:
    """The state the three tasks and the mailbox loop of one socket process share."""

    def __init__(self, sock: trio.socket.SocketType, pid: Pid, local: str, settings: UdpSettings,
                 dispatch: UdpDispatch, counters: UdpCounters) -> None:
        self.sock = sock
        self.pid = pid
        self.local = local
        self.label = f"udp {local}"
        self.settings = settings
        self.limits = settings.limits
        self.dispatch = dispatch
        self.counters = counters
        self.table = ServerTransactionTable(timers=settings.timers, max_transactions=settings.max_transactions)
        self._send, self._receive = trio.open_memory_channel[tuple[bytes, Address]](settings.send_queue_size)
        self._wake = trio.Event()  # set when the table may have an earlier deadline than the timer waits for
        self._waiting_for = math.inf

    # -- the mailbox: what sessions, the dispatcher and gateway links send ------------------------

    def handle(self, msg: object) -> None:
        kind = type(msg)
        if kind is Outbound:
            assert isinstance(msg, Outbound)
            self.send_message(msg.message, msg.to)
        elif kind is CarriesCall:
            pass  # a call on a UDP peer: nothing to keep open, nothing to time out
        elif isinstance(msg, Caller) and isinstance(msg.request, _Where):
            msg.reply(self.local)
        else:
            log.warning("%s: unexpected message %r", self.label, msg, extra={"peer": self.label})

    def send_message(self, message: Request | Response, to: Address | None) -> None:
        """Write `message`: a response through its server transaction, a request to `to`."""
        if isinstance(message, Response):
            self._perform(self.table.send_response(message, trio.current_time()), to)
            return
        if to is None:
            self.counters.dropped.note("no_destination", "%s: %s request without an address dropped", self.label,
                                       message.method, extra={"call_id": message.call_id})
            return
        data = serialize(message)
        if len(data) > UDP_REQUEST_LIMIT:
            self.counters.large_requests += 1  # the sender chose UDP anyway (a peer that takes nothing else)
        self._queue(data, to)

    def _perform(self, outputs: list[TransactionOutput], to: Address | None) -> None:
        for out in outputs:
            if type(out) is Transmit:
                assert isinstance(out, Transmit)
                self._send_response(out.message, to)
            elif type(out) is TimedOut:
                assert isinstance(out, TimedOut)
                log.debug("%s: no ACK for a final response within Timer H", self.label)
        self._rearm()

    def _send_response(self, message: Request | Response, to: Address | None) -> None:
        assert isinstance(message, Response)
        self._queue(serialize(message), to or response_destination(message))

    def _queue(self, data: bytes, to: Address) -> None:
        try:
            self._send.send_nowait((data, to))
        except trio.WouldBlock:
            self.counters.dropped.note("send_queue_full", "%s: send queue full (%d datagrams), dropping",
                                       self.label, self.settings.send_queue_size, extra={"peer": self.label})

    def _rearm(self) -> None:
        deadline = self.table.next_deadline
        if deadline is not None and deadline < self._waiting_for:
            self._wake.set()

    # -- the three tasks ---------------------------------------------------------------------------

    async def write_loop(self) -> None:
        async for data, to in self._receive:
            await self._sendto(data, to)

    async def _sendto(self, data: bytes, to: Address) -> None:
        try:
            await self.sock.sendto(data, to)
        except OSError as exc:  # no route, a bad address, a full buffer: a lost datagram, as UDP has them
            self.counters.dropped.note("send_failed", "%s: cannot send to %s:%d: %s", self.label, to[0], to[1],
                                       exc.strerror or exc, extra={"peer": self.label})
            return
        self.counters.sent += 1

    async def timer_loop(self) -> None:
        while True:
            deadline = self.table.next_deadline
            self._waiting_for = math.inf if deadline is None else deadline
            with trio.move_on_at(self._waiting_for):
                await self._wake.wait()
            self._wake = trio.Event()
            self._perform(self.table.handle_timeout(trio.current_time()), None)

    async def read_loop(self, starts: Starts) -> None:
        size = self.settings.read_size
        while True:
            try:
                data, source = await self.sock.recvfrom(size)
            except (ConnectionResetError, ConnectionRefusedError):
                continue  # an ICMP error for an earlier send (Linux reports some on UDP sockets)
            except OSError as exc:
                self.counters.dropped.note("recv_failed", "%s: receive failed: %s", self.label, exc.strerror or exc,
                                           extra={"peer": self.label})
                await trio.sleep(0.01)  # a persistent error must not spin
                continue
            try:
                await self.datagram(data, (str(source[0]), int(source[1])), starts)
            except Exception as exc:  # noqa: BLE001 - a bug costs its datagram; the socket carries every UDP call
                self.counters.dropped.note("internal_error", "%s: a datagram from %s failed: %r", self.label,
                                           source[0], exc, extra={"peer": self.label}, exc_info=exc)

    # -- one datagram ---------------------------------------------------------------------------

    async def datagram(self, data: bytes, source: Address, starts: Starts) -> None:
        """Everything one datagram from `source` goes through (the module docstring's steps).

        A new call's session start runs in a task of `starts` (`_starts`): the socket reads on.
        """
        counters = self.counters
        counters.received += 1
        if len(data) > self.limits.max_message_size:
            counters.dropped.note("oversize", "%s: a datagram of %d bytes from %s, over max_message_size=%d, dropped",
                                  self.label, len(data), source[0], self.limits.max_message_size,
                                  extra={"peer": self.label, "source": source[0]})
            return
        now = trio.current_time()
        try:
            message = parse_datagram(data, self.limits)
        except RemoteProtocolError as exc:
            self._bad_input(exc, source)
            return
        if message is None:
            counters.keepalives += 1
            return
        if isinstance(message, Request):
            stamp_source(message, source[0], source[1])
            outputs = self.table.receive(message, now)
            self._perform(outputs, source)
            if not any(type(out) is ToTransactionUser for out in outputs):
                return  # a copy: absorbed
        peer = UdpPeer(self.pid, source, self.local)
        try:
            if starts.running:  # a message of a Call-ID whose session starts waits for it
                await starts.settle(message.call_id)
            pending = self.dispatch(message, peer, now, source[0])
            if type(pending) is NewCall:
                assert isinstance(pending, NewCall)
                await starts.spawn(pending)
            elif pending is not DONE:
                await pending
        except Exception as exc:  # noqa: BLE001 - a bug costs its message, not the socket
            self._dispatch_failed(message, source, exc)

    def _bad_input(self, exc: RemoteProtocolError, source: Address) -> None:
        """Answer a bad request to its source when it can be answered; count the rest."""
        partial = exc.partial
        if isinstance(partial, Request) and partial.method != Method.ACK:  # §17: an ACK gets no answer
            response = error_response(partial, exc.status_hint, exc.reason)
            if response is not None:
                self._queue(serialize(response), source)
                self.counters.rejections.note(sip_cause(exc.status_hint), "%s: %s from %s (answered %d)",
                                              self.label, exc, source[0], exc.status_hint,
                                              extra={"peer": self.label, "source": source[0]})
                return
        cause = "not_sip" if partial is None else "bad_response" if isinstance(partial, Response) else "bad_request"
        self.counters.dropped.note(cause, "%s: %s from %s (dropped)", self.label, exc, source[0],
                                   extra={"peer": self.label, "source": source[0]})

    def _dispatch_failed(self, message: Request | Response, source: Address, exc: Exception) -> None:
        """A bug in the dispatch of one message: logged once, a request answered 500; the socket goes on."""
        response = dispatch_failed(self.label, message, exc)
        if response is not None:
            self._perform(self.table.send_response(response, trio.current_time()), source)

    # -- shutdown ---------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Send what the mailbox and the queue hold, shielded and bounded by ``shutdown_flush``."""
        with trio.move_on_after(self.settings.shutdown_flush, shield=True):
            while True:
                try:
                    self.handle(await receive(timeout=0))
                except ReceiveTimeout:
                    break
            while True:
                try:
                    data, to = self._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                await self._sendto(data, to)
