"""The SIP TCP listener: accepts connections and starts one SipConnection process for each.

A plain process registered as "listener". It binds before it reports started, so a port already
in use fails the start of the tree with the OS error, not later. Each accepted stream is first
checked against the node's `ConnectionTable` (per-address and global limits: over the first it is
closed at once; at the second an idle connection is shed to make room, see `_connections`), then
handed to a TEMPORARY child of the ``connections`` DynamicSupervisor (found by name at every
accept, so a restarted one is simply used again); the child, not the listener, owns it from then
on, and a connection's end or crash touches nothing else.

Out of file descriptors (EMFILE, ENFILE; also ENOMEM, ENOBUFS): ``accept`` fails while the
connection waits in the kernel's backlog. The listener sheds the connection idle longest (one
carrying no call) and pauses before the next accept, the pause doubling from 10 ms up to 1 s
while accepts keep failing with nothing to shed, and back to 10 ms after an accept succeeds.
It logs one WARNING when such an episode starts, and one INFO line at the first accept after
`EPISODE_QUIET` seconds without a failure, with the failures and sheds of the whole episode —
not a line per failed accept (one every 100 ms used to be logged). Under a flood, failures and
successful accepts alternate (each shed frees the descriptor the next accept takes): that is
one episode, not one per accept.

The listener answers one request, `listening_on()`: the addresses it is bound to (the real port
when the configuration said port 0, as tests do).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from functools import partial

import trio

from switchd.otp import Caller, ChildSpec, Pid, Process, Restart, call, receive, self_pid, start_child

from ._connections import ConnectionTable
from ._inherited import inherited_sockets
from ._sip_connection import ConnectionSettings, Dispatch, SipConnection, peer_host, peer_of

log = logging.getLogger(__name__)

NAME = "listener"

# accept() errors that mean "out of resources right now", not "this listener is broken".
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
PAUSE_MIN = 0.010
"""Seconds the listener waits after an accept failed for want of resources, at first."""
PAUSE_MAX = 1.0
"""The longest such wait: the pause doubles while accepts fail with nothing left to shed."""
EPISODE_QUIET = 5.0
"""Seconds without a failed accept after which the next accept ends the episode (and logs it)."""


@dataclass(frozen=True, slots=True)
class _Where:
    pass


class Listener:
    """The SIP listener process (see the module docstring)."""

    @staticmethod
    async def start_link(host: str, port: int, settings: ConnectionSettings, dispatch: Dispatch, *,
                         connections: str = "connections", table: ConnectionTable | None = None,
                         name: str = NAME, task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind `host`:`port`, report started, then accept until shut down.

        `table` is the node's ConnectionTable (limits and shedding); without one, a table with
        the automatic limit. Raises OSError (e.g. address in use) before ``started`` when the
        address cannot be bound.
        """
        handed = inherited_sockets("tcp", host, port)  # a worker's: its parent bound them (see _inherited)
        listeners = ([trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in handed] if handed
                     else await trio.open_tcp_listeners(port, host=host))
        try:
            await Process.start_link(_serve, listeners, settings, dispatch, connections, ConnectionTable() if table is None else table,
                                     name=name, task_status=task_status)
        finally:
            for listener in listeners:
                await trio.aclose_forcefully(listener)


def listener_spec(host: str, port: int, settings: ConnectionSettings, dispatch: Dispatch, *,
                  connections: str = "connections", table: ConnectionTable | None = None) -> ChildSpec:
    """The child spec of the listener: id and name "listener", PERMANENT."""
    return ChildSpec(id=NAME, start=partial(Listener.start_link, host, port, settings, dispatch,
                                            connections=connections, table=table),
                     restart=Restart.PERMANENT, shutdown=1.0)


async def listening_on(listener: Pid | str = NAME, *, timeout: float = 5.0) -> list[tuple[str, int]]:
    """The (host, port) pairs the listener is bound to."""
    where: list[tuple[str, int]] = await call(listener, _Where(), timeout=timeout)
    return where


def _bound(listener: trio.SocketListener) -> tuple[str, int]:
    host, port = listener.socket.getsockname()[:2]
    return str(host), int(port)


async def _serve(listeners: list[trio.SocketListener], settings: ConnectionSettings, dispatch: Dispatch,
                 connections: str, table: ConnectionTable) -> None:
    where = [_bound(listener) for listener in listeners]
    log.info("SIP listening on %s (TCP), at most %d connections", ", ".join(f"{h}:{p}" for h, p in where),
             table.max_connections,
             extra={"listen": [f"{h}:{p}" for h, p in where], "pid": str(self_pid()),
                    "max_connections": table.max_connections})
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(accept_loop, listener, settings, dispatch, connections, table)
        while True:
            msg = await receive()
            if isinstance(msg, Caller) and isinstance(msg.request, _Where):
                msg.reply(list(where))
            else:
                log.warning("listener: unexpected message %r", msg)


class _Starved:
    """One episode of accepts failing for want of resources: its pause, and what to log once."""

    __slots__ = ("failures", "last_failure", "pause", "shed", "since")

    def __init__(self) -> None:
        self.since: float | None = None  # when the episode began; None: accepting normally
        self.last_failure = 0.0
        self.failures = 0
        self.shed = 0
        self.pause = PAUSE_MIN

    def failed(self, exc: OSError, table: ConnectionTable) -> float:
        """An accept failed with `exc`: shed one idle connection; the seconds to pause."""
        now = trio.current_time()
        if self.since is None:
            self.since, self.failures, self.shed, self.pause = now, 0, 0, PAUSE_MIN
            log.warning("listener: accept failed (%s): shedding idle connections and pausing accepts "
                        "(one line per episode)", exc.strerror or exc,
                        extra={"errno": exc.errno, "open_connections": len(table)})
        self.failures += 1
        self.last_failure = now
        table.accept_failed()
        if table.shed_idle(f"accept failed: {exc.strerror or exc}"):
            self.shed += 1
            return PAUSE_MIN  # the descriptor is free once that connection has run: a short pause
        pause, self.pause = self.pause, min(PAUSE_MAX, self.pause * 2)
        return pause

    def accepted(self) -> None:
        """An accept succeeded: the next failure pauses briefly again; after a quiet spell the episode is over."""
        self.pause = PAUSE_MIN
        if self.since is None:
            return
        now = trio.current_time()
        if now - self.last_failure < EPISODE_QUIET:
            return
        seconds = self.last_failure - self.since
        log.info("listener: accepting normally again; %d accept(s) had failed over %.1fs, %d idle connection(s) "
                 "shed", self.failures, seconds, self.shed,
                 extra={"failures": self.failures, "seconds": seconds, "shed": self.shed})
        self.since = None


async def accept_loop(listener: trio.abc.Listener[trio.abc.Stream], settings: ConnectionSettings,
                      dispatch: Dispatch, connections: str, table: ConnectionTable) -> None:
    """Accept on `listener` until cancelled: admit each stream by `table`, start its SipConnection.

    Raises what ``accept`` raises other than the resource errors (see the module docstring).
    """
    starved = _Starved()
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno not in _RESOURCE_ERRORS:
                raise
            await trio.sleep(starved.failed(exc, table))
            continue
        starved.accepted()
        peer = peer_of(stream)
        if not table.admit(peer_host(stream), peer):
            await trio.aclose_forcefully(stream)
            continue
        spec = ChildSpec(id=f"sip {peer}",
                         start=partial(SipConnection.start_link, stream, settings, dispatch, table=table),
                         restart=Restart.TEMPORARY, shutdown=1.0)
        try:
            await start_child(connections, spec)
        except Exception as exc:  # noqa: BLE001 - "connections" restarting (NoProcess), at a limit, or the
            # connection's start failed: refuse this one connection, keep accepting
            log.error("listener: cannot start a connection process for %s: %r", peer, exc, extra={"peer": peer})
            await trio.aclose_forcefully(stream)
