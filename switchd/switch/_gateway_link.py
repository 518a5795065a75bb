"""GatewayLink: one process per gateway, holding one persistent outbound TCP connection to it.

A request whose top Via says UDP (a B-leg to a gateway with ``transport = "udp"``) does not use
the connection: it goes to the node's UDP socket process (``LinkSettings.udp_socket``) with the
gateway's address, resolved once, and the gateway answers to that socket (our Via). Nothing is
kept per request: on UDP the session's transactions retransmit, and a gateway that never answers
is Timer B's (no connection to lose, so no `GatewayFailed` but for a name that does not resolve
or a socket that is not running). A gateway on UDP still gets a TCP connection, opened on use,
for the requests RFC 3261 §18.1.1 sends over TCP (larger than the path MTU allows).

Registered as ``gateway_name(gateway.name)``. Sessions send it ``ToGateway(request, reply_to)``;
the first one opens the connection (bounded by ``connect_timeout``), later ones reuse it, and a
message after the connection dropped opens a new one — connections are opened on use only, never
probed (SIPp's callee must not see OPTIONS). What the gateway sends back (responses, and requests
in the callee's dialog such as its BYE) is dispatched like inbound messages, with this process as
the `conn`: a session answers the callee's BYE with ``Outbound(response)`` to it.

Failure reporting (`GatewayFailed`), the contract with the sessions:

* the connection cannot be opened (refused, unreachable, timeout) → the sender of that message;
* the connection drops (reset, EOF, framing lost, write failed, peer too slow) → every session
  that sent a message on that connection and is still alive, once per B-leg Call-ID it used.
  A session that already finished that B-leg ignores it.

After a failed connect, messages that arrive within ``holddown`` seconds fail at once without a
new attempt, so a burst of calls to a dead gateway costs one connect, not one each.

A link to a configured gateway lives as long as the tree. A link to a registered phone's contact
(started on demand by the registrar, under ``contacts``) is given ``idle_exit``: once no session
uses it (over TCP or UDP: it monitors the sessions that sent through it) and no message came for
that long, it closes its connection and exits ``"normal"``, so phones called once do not each keep
a process and a descriptor for ever.

Shut down by its supervisor, the link writes what is in its mailbox and queued before it closes
the connection (`StreamIO.shutdown`, bounded by ``ConnectionSettings.shutdown_flush``): the BYEs
that sessions ended by the drain queued just before the tree stopped still reach the gateway.
No new connection is opened at that point: a message that would need one fails (`GatewayFailed`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import partial

import trio

from switchd.otp import (
    ChildSpec,
    Down,
    MonitorRef,
    NoProcess,
    Pid,
    Process,
    ReceiveTimeout,
    Restart,
    demonitor,
    monitor,
    receive,
    self_pid,
    send,
    set_inline_handler,
)
from switchd.sip import Request, Response

from ._connections import CarriesCall
from ._routing import Gateway
from ._sip_connection import ConnectionSettings, Dispatch, StreamIO
from ._wire import GatewayFailed, Outbound, ToGateway, gateway_name

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSettings:
    """How a GatewayLink connects.

    ``connect_timeout``: seconds a TCP connect (or the name lookup of a UDP gateway) may take before the
        gateway counts as unreachable, 5.0.
    ``holddown``: seconds after a failed connect during which messages fail without a new attempt, 0.5.
    ``idle_exit``: seconds without users and without messages after which the link exits "normal";
    ``math.inf`` (gateways): never.
    ``udp_socket``: the registered name of the UDP socket process UDP requests go out through; None:
        the node has none (a UDP request then fails with GatewayFailed).
    """

    connect_timeout: float = 5.0
    holddown: float = 0.5
    idle_exit: float = math.inf
    udp_socket: str | None = None


DEFAULT_LINK_SETTINGS = LinkSettings()


@dataclass(frozen=True, slots=True)
class _Dropped:
    """Internal: the connection of generation `generation` ended with `reason`."""

    generation: int
    reason: str


@dataclass(slots=True)
class _User:
    """A session that sent on the current connection: its monitor and the B-leg Call-IDs it used."""

    ref: MonitorRef
    call_ids: set[str] = field(default_factory=set)


class GatewayLink:
    """The connection process of one gateway (see the module docstring)."""

    @staticmethod
    async def start_link(gateway: Gateway, conn_settings: ConnectionSettings, dispatch: Dispatch,
                         link_settings: LinkSettings = DEFAULT_LINK_SETTINGS, *,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the link registered as ``gateway_name(gateway.name)``; started at once, unconnected."""
        await Process.start_link(_Link(gateway, conn_settings, dispatch, link_settings).run,
                                 name=gateway_name(gateway.name), task_status=task_status)


def gateway_link_spec(gateway: Gateway, conn_settings: ConnectionSettings, dispatch: Dispatch,
                      link_settings: LinkSettings = DEFAULT_LINK_SETTINGS) -> ChildSpec:
    """The child spec of `gateway`'s link: id ``gateway_name(gateway.name)``, PERMANENT."""
    return ChildSpec(id=gateway_name(gateway.name),
                     start=partial(GatewayLink.start_link, gateway, conn_settings, dispatch, link_settings),
                     restart=Restart.PERMANENT, shutdown=2.0)


class _Link:
    def __init__(self, gateway: Gateway, conn_settings: ConnectionSettings, dispatch: Dispatch,
                 settings: LinkSettings) -> None:
        self.gateway = gateway
        self.conn_settings = conn_settings
        self.dispatch = dispatch
        self.settings = settings
        self.label = f"gateway {gateway.name} ({gateway.address})"
        self.io: StreamIO | None = None
        self.generation = 0
        self.users: dict[Pid, _User] = {}
        self.failed_at: float | None = None
        self.failure = ""
        self.stopping = False  # set once shut down: no new connection then
        self.udp_address: tuple[str, int] | None = None  # the gateway's, resolved at the first UDP request
        self.udp_users: dict[Pid, MonitorRef] = {}  # sessions that sent over UDP: no idle exit while they live

    async def run(self) -> None:
        pid = self_pid()
        set_inline_handler(self._inline)
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    try:
                        msg = await receive(timeout=None if self.users or self.udp_users else self._idle_exit)
                    except ReceiveTimeout:
                        log.info("%s: unused for %gs, closing", self.label, self.settings.idle_exit,
                                 extra={"gateway": self.gateway.name})
                        return  # nothing is queued for nobody: the finally below closes the connection
                    await self._handle(msg, pid, nursery)
            except trio.Cancelled:  # shut down: terminate, then go on cancelled
                self.stopping = True
                if self.io is not None:
                    await self.io.shutdown("shutdown", partial(self._take_mailbox, pid, nursery))
                raise
            finally:
                if self.io is not None:
                    self.io.abort("gateway link exited")  # a no-op once the connection is closed

    @property
    def _idle_exit(self) -> float | None:
        return None if math.isinf(self.settings.idle_exit) else self.settings.idle_exit

    def _inline(self, msg: object) -> bool:
        """Write, in the sender's task, what needs nothing of this process but the open connection.

        That is an `Outbound`, and a `ToGateway` from a session that already sent that B-leg's
        Call-ID on this connection (its ACK, BYE ...: it is monitored and its Call-ID recorded
        already). The first message of a B-leg, a UDP one, anything while the connection is down or
        closing, and an `Outbound` while a contact's link waits out its idle exit (the mailbox
        restarts that wait) go to the mailbox (`_handle`). See `switchd.otp.set_inline_handler`.
        """
        io = self.io
        if io is None or io.closing:
            return False
        kind = type(msg)
        if kind is Outbound:
            if self._idle_exit is not None and not (self.users or self.udp_users):
                return False  # an idle contact link's mailbox: the write restarts its idle-exit wait
            assert isinstance(msg, Outbound)
            io.send_message(msg.message)
            return True
        if kind is ToGateway:
            assert isinstance(msg, ToGateway)
            user = self.users.get(msg.reply_to)
            request = msg.message
            if user is not None and request.call_id in user.call_ids and request.top_via.reliable:
                io.send_message(request)
                return True
        return False

    async def _take_mailbox(self, pid: Pid, nursery: trio.Nursery) -> None:
        """At shutdown, with the connection up: handle what is in the mailbox now, without waiting."""
        while True:
            try:
                msg = await receive(timeout=0)
            except ReceiveTimeout:
                return
            await self._handle(msg, pid, nursery)

    async def _handle(self, msg: object, pid: Pid, nursery: trio.Nursery) -> None:
        kind = type(msg)
        if kind is ToGateway:
            assert isinstance(msg, ToGateway)
            await self._to_gateway(msg, pid, nursery)
        elif kind is Outbound:
            assert isinstance(msg, Outbound)
            if self.io is not None:
                self.io.send_message(msg.message)
            else:
                log.warning("%s: not connected, %s dropped", self.label, _describe(msg.message),
                            extra={"gateway": self.gateway.name, "call_id": msg.message.headers.get("Call-ID")})
        elif kind is _Dropped:
            assert isinstance(msg, _Dropped)
            self._dropped(msg)
        elif kind is Down:
            assert isinstance(msg, Down)
            self.users.pop(msg.pid, None)
            self.udp_users.pop(msg.pid, None)
        elif kind is CarriesCall:
            pass  # a call that came in from the gateway: a link is never timed out or shed anyway
        else:
            log.warning("%s: unexpected message %r", self.label, msg, extra={"gateway": self.gateway.name})

    async def _to_gateway(self, msg: ToGateway, pid: Pid, nursery: trio.Nursery) -> None:
        call_id = msg.message.call_id
        if not msg.message.top_via.reliable:
            failure = await self._to_udp(msg.message)
            if failure is not None:
                send(msg.reply_to, GatewayFailed(self.gateway.name, call_id, failure))
            elif not math.isinf(self.settings.idle_exit) and msg.reply_to not in self.udp_users:
                self.udp_users[msg.reply_to] = monitor(msg.reply_to)  # a contact's link outlives its calls
            return
        if self.io is None:
            failure = "shutting down" if self.stopping else await self._connect(pid, nursery)
            if failure is not None:
                send(msg.reply_to, GatewayFailed(self.gateway.name, call_id, failure))
                return
        assert self.io is not None
        user = self.users.get(msg.reply_to)
        if user is None:
            user = self.users[msg.reply_to] = _User(monitor(msg.reply_to))
        user.call_ids.add(call_id)
        self.io.send_message(msg.message)

    async def _connect(self, pid: Pid, nursery: trio.Nursery) -> str | None:
        """Open the connection; returns None, or why it failed."""
        now = trio.current_time()
        if self.failed_at is not None and now - self.failed_at < self.settings.holddown:
            return f"{self.failure} (held down for {self.settings.holddown:g}s)"
        gw = self.gateway
        stream: trio.SocketStream | None = None
        with trio.move_on_after(self.settings.connect_timeout):
            try:
                stream = await trio.open_tcp_stream(gw.host, gw.port)
            except OSError as exc:
                return self._failed(f"cannot connect to {gw.address}: {exc.strerror or exc}")
        if stream is None:
            return self._failed(f"cannot connect to {gw.address}: no answer within {self.settings.connect_timeout:g}s")
        self.failed_at = None
        self.generation += 1
        io = self.io = StreamIO(stream, pid, self.conn_settings, self.dispatch, f"{self.label} {pid}")
        nursery.start_soon(self._pump, io, self.generation)
        log.info("%s: connected", self.label, extra={"gateway": gw.name})
        return None

    async def _to_udp(self, request: Request) -> str | None:
        """Hand `request` to the UDP socket for the gateway's address; None, or why it cannot go."""
        socket = self.settings.udp_socket
        if socket is None:
            return "no UDP socket (sip.listen_udp is not set)"
        if self.udp_address is None:
            now = trio.current_time()
            if self.failed_at is not None and now - self.failed_at < self.settings.holddown:
                return f"{self.failure} (held down for {self.settings.holddown:g}s)"
            resolved = await self._resolve()
            if isinstance(resolved, str):
                return self._failed(resolved)
            self.failed_at = None
            self.udp_address = resolved
        try:
            send(socket, Outbound(request, self.udp_address))
        except NoProcess:  # the socket process is restarting
            return f"UDP socket {socket} not running"
        return None

    async def _resolve(self) -> tuple[str, int] | str:
        """The gateway's (IP, port) for sendto — an IPv4 address first — or why there is none."""
        gw = self.gateway
        with trio.move_on_after(self.settings.connect_timeout):
            try:
                found = await trio.socket.getaddrinfo(gw.host, gw.port, type=trio.socket.SOCK_DGRAM)
            except OSError as exc:
                return f"cannot resolve {gw.host}: {exc.strerror or exc}"
            found.sort(key=lambda entry: entry[0] != trio.socket.AF_INET)
            for _, _, _, _, sockaddr in found:
                return str(sockaddr[0]), int(sockaddr[1])
            return f"cannot resolve {gw.host}: no address"
        return f"cannot resolve {gw.host}: no answer within {self.settings.connect_timeout:g}s"

    def _failed(self, reason: str) -> str:
        self.failed_at = trio.current_time()
        self.failure = reason
        log.warning("%s: %s", self.label, reason, extra={"gateway": self.gateway.name})
        return reason

    async def _pump(self, io: StreamIO, generation: int) -> None:
        reason = await io.run()
        send(io.owner, _Dropped(generation, reason))

    def _dropped(self, msg: _Dropped) -> None:
        if msg.generation != self.generation:
            return
        self.io = None
        users, self.users = self.users, {}
        log.warning("%s: connection lost: %s; %d session(s) told", self.label, msg.reason, len(users),
                    extra={"gateway": self.gateway.name, "reason": msg.reason})
        for session, user in users.items():
            demonitor(user.ref, flush=True)
            for call_id in user.call_ids:
                send(session, GatewayFailed(self.gateway.name, call_id, f"connection lost: {msg.reason}"))


def _describe(message: Request | Response) -> str:
    return f"{message.status} response" if isinstance(message, Response) else f"{message.method} request"
