"""The SIP TCP listener: accepts connections and starts one SipConnection process for each.

A plain process registered as "listener". It binds before it reports started, so a port already
in use fails the start of the tree with the OS error, not later. Each accepted stream is handed to
a TEMPORARY child of the ``connections`` DynamicSupervisor (found by name at every accept, so a
restarted one is simply used again); the child, not the listener, owns it from then on, and a
connection's end or crash touches nothing else.

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

from ._sip_connection import ConnectionSettings, Dispatch, SipConnection, peer_of

log = logging.getLogger(__name__)

NAME = "listener"

# accept() errors that mean "out of resources right now", not "this listener is broken": trio's own
# serve_listeners waits this long and tries again (the other connections keep running meanwhile).
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_RESOURCE_PAUSE = 0.100


@dataclass(frozen=True, slots=True)
class _Where:
    pass


class Listener:
    """The SIP listener process (see the module docstring)."""

    @staticmethod
    async def start_link(host: str, port: int, settings: ConnectionSettings, dispatch: Dispatch, *,
                         connections: str = "connections", name: str = NAME,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind `host`:`port`, report started, then accept until shut down.

        Raises OSError (e.g. address in use) before ``started`` when the address cannot be bound.
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        try:
            await Process.start_link(_serve, listeners, settings, dispatch, connections, name=name,
                                     task_status=task_status)
        finally:
            for listener in listeners:
                await trio.aclose_forcefully(listener)


def listener_spec(host: str, port: int, settings: ConnectionSettings, dispatch: Dispatch, *,
                  connections: str = "connections") -> ChildSpec:
    """The child spec of the listener: id and name "listener", PERMANENT."""
    return ChildSpec(id=NAME, start=partial(Listener.start_link, host, port, settings, dispatch,
                                            connections=connections),
                     restart=Restart.PERMANENT, shutdown=1.0)


async def listening_on(listener: Pid | str = NAME, *, timeout: float = 5.0) -> list[tuple[str, int]]:
    """The (host, port) pairs the listener is bound to."""
    where: list[tuple[str, int]] = await call(listener, _Where(), timeout=timeout)
    return where


def _bound(listener: trio.SocketListener) -> tuple[str, int]:
    host, port = listener.socket.getsockname()[:2]
    return str(host), int(port)


async def _serve(listeners: list[trio.SocketListener], settings: ConnectionSettings, dispatch: Dispatch,
                 connections: str) -> None:
    where = [_bound(listener) for listener in listeners]
    log.info("SIP listening on %s (TCP)", ", ".join(f"{h}:{p}" for h, p in where),
             extra={"listen": [f"{h}:{p}" for h, p in where], "pid": str(self_pid())})
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, listener, settings, dispatch, connections)
        while True:
            msg = await receive()
            if isinstance(msg, Caller) and isinstance(msg.request, _Where):
                msg.reply(list(where))
            else:
                log.warning("listener: unexpected message %r", msg)


async def _accept_loop(listener: trio.SocketListener, settings: ConnectionSettings, dispatch: Dispatch,
                       connections: str) -> None:
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno not in _RESOURCE_ERRORS:
                raise
            log.error("listener: accept failed (%s); pausing %gs", exc, _RESOURCE_PAUSE)
            await trio.sleep(_RESOURCE_PAUSE)
            continue
        peer = peer_of(stream)
        spec = ChildSpec(id=f"sip {peer}", start=partial(SipConnection.start_link, stream, settings, dispatch),
                         restart=Restart.TEMPORARY, shutdown=1.0)
        try:
            await start_child(connections, spec)
        except Exception as exc:  # noqa: BLE001 - "connections" restarting (NoProcess), at a limit, or the
            # connection's start failed: refuse this one connection, keep accepting
            log.error("listener: cannot start a connection process for %s: %r", peer, exc, extra={"peer": peer})
            await trio.aclose_forcefully(stream)
