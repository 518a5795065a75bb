"""SimGateway: simulated phones and gateways on TCP, as a supervision tree.

    <name>                  Supervisor (rest_for_one)
    ├── <name>.calls        DynamicSupervisor: one callee process per INVITE (temporary)
    ├── <name>.connections  DynamicSupervisor: one process per accepted TCP connection (temporary)
    └── <name>.listener     Process: accepts connections, starts their processes

rest_for_one: a crashed calls supervisor takes the connections and the listener with it (they
hold its name), a crashed connection or call ends only itself. Responses go back on the
connection the INVITE came in on; the behaviour is chosen by the dialled user's longest prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import trio

from switchd.otp import (
    ChildSpec,
    DynamicSupervisor,
    MaxChildren,
    Pid,
    Process,
    Strategy,
    Supervisor,
    SupervisorFlags,
    send,
    start_child,
)
from switchd.sip import Request, Status, TimerConfig, make_response, parse_name_addr

from ._address import HostPort, format_address, parse_address
from ._behaviour import Behaviours
from ._callee import run_callee
from ._connection import NewCallHook, Send, run_connection, socket_ends
from ._errors import SimTransportError

log = logging.getLogger(__name__)

DEFAULT_TIMERS = TimerConfig()


@dataclass(frozen=True, slots=True)
class SimGateway:
    """A running simulator: its root supervisor, registered `name`, and the addresses it listens on."""

    name: str
    pid: Pid
    addresses: tuple[HostPort, ...]
    behaviours: Behaviours
    timers: TimerConfig

    async def serve_stream(self, stream: trio.abc.Stream, *, local: HostPort = ("127.0.0.1", 5060),
                           peer: str = "stream") -> Pid:
        """Serve SIP on an already connected `stream` (e.g. a memory stream in a test); returns the pid
        of its connection process. `local` is what the callee puts in its Contact."""
        hook = _hook(self.name, self.behaviours, self.timers)
        spec = ChildSpec(id="connection", start=partial(Process.start_link, partial(run_connection, local=local, peer=peer),
                                                        stream, hook))
        return await start_child(f"{self.name}.connections", spec)


def _hook(name: str, behaviours: Behaviours, timers: TimerConfig) -> NewCallHook:
    return partial(_new_call, calls=f"{name}.calls", behaviours=behaviours, timers=timers)


async def start_sim(
    nursery: trio.Nursery,
    listen: Sequence[str | HostPort],
    behaviours: Behaviours,
    *,
    name: str = "sim",
    timers: TimerConfig = DEFAULT_TIMERS,
    max_calls: int | None = None,
) -> SimGateway:
    """Listen on every address of `listen` (port 0: any free port) and start the simulator tree there.

    Returns once it accepts connections. `name` registers the tree (``name``, ``name.calls`` ...), so
    two simulators in one program need two names. Raises AddressError for a malformed address and
    SimTransportError when an address cannot be listened on.
    """
    listeners: list[trio.SocketListener] = []
    try:
        for item in listen:
            host, port = parse_address(item) if isinstance(item, str) else item
            try:
                listeners.extend(await trio.open_tcp_listeners(port, host=host))
            except OSError as exc:
                raise SimTransportError(
                    f"cannot listen on {format_address((host, port))}: {exc.strerror or exc}"
                ) from exc
    except BaseException:
        for listener in listeners:
            await listener.aclose()
        raise
    addresses = tuple(_bound(listener) for listener in listeners)
    calls, connections = f"{name}.calls", f"{name}.connections"
    children = [
        ChildSpec(id="calls", start=partial(DynamicSupervisor.start_link, max_children=max_calls, name=calls),
                  shutdown=10.0),
        ChildSpec(id="connections", start=partial(DynamicSupervisor.start_link, name=connections), shutdown=10.0),
    ]
    if listeners:  # none: only streams handed to serve_stream (tests over memory streams)
        children.append(ChildSpec(id="listener", start=partial(Process.start_link, _accept, listeners, connections,
                                                               _hook(name, behaviours, timers),
                                                               name=f"{name}.listener")))
    pid: Pid = await nursery.start(
        partial(Supervisor.start_link, children, SupervisorFlags(Strategy.REST_FOR_ONE), name=name)
    )
    if addresses:
        log.info("simulator %s listening on %s", name, ", ".join(format_address(a) for a in addresses),
                 extra={"sim": name})
    return SimGateway(name, pid, addresses, behaviours, timers)


def _bound(listener: trio.SocketListener) -> HostPort:
    host, port = listener.socket.getsockname()[:2]
    return str(host), int(port)


async def _accept(listeners: list[trio.SocketListener], connections: str,
                  on_new: NewCallHook) -> None:
    """The listener process: accept on every listener, one connection process per connection."""
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_on, listener, connections, on_new)


async def _accept_on(listener: trio.SocketListener, connections: str, on_new: NewCallHook) -> None:
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # EMFILE and friends: back off, as trio.serve_listeners does
                log.error("accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            local, peer = socket_ends(stream)
            spec = ChildSpec(id="connection", start=partial(Process.start_link,
                                                            partial(run_connection, local=local, peer=peer),
                                                            stream, on_new))
            await start_child(connections, spec)


async def _new_call(invite: Request, conn: Pid, local: HostPort, *, calls: str, behaviours: Behaviours,
                    timers: TimerConfig) -> Pid | None:
    """A new INVITE on connection `conn`: start its callee process under `calls`."""
    user = invite.uri.user or invite.to.uri.user or ""
    behaviour = behaviours.for_number(user)
    contact = parse_name_addr(f"<sip:{user or 'sim'}@{format_address(local)};transport=tcp>")
    spec = ChildSpec(id=f"call {invite.call_id}",
                     start=partial(Process.start_link, run_callee, invite, conn, behaviour, contact, timers))
    try:
        return await start_child(calls, spec)
    except MaxChildren:
        log.warning("simulator at max_calls: 503 to %s", invite.call_id, extra={"call_id": invite.call_id})
        send(conn, Send(make_response(invite, Status.SERVICE_UNAVAILABLE, headers=[("Retry-After", "1")])))
        return None
