"""The API's supervision tree, its listener, and the table of endpoints.

```
api                   Supervisor, one_for_one, 10 restarts in 10 s
├── api.db            owns the API's engine on the billing database (and its threads)   PERMANENT
├── api.handlers      keeps MetricsHandler and TraceHandler on "events"                   PERMANENT
├── api.connections   DynamicSupervisor: one HttpConnection process per client (TEMPORARY)
└── api.listener      binds before it reports started; accepts, one child per connection  PERMANENT
```

Why this shape: the children share no state but the node-local `ApiState` (made once in
`api_spec`, so it outlives every restart here), so one_for_one; a client's connection is
TEMPORARY like a SIP connection — a crash ends that client's connection only, and is never
restarted (its socket is gone). The listener is last, so the first request finds the database
and the handlers ready; at shutdown it stops accepting first. The API is the last child of the
node's root: it only reads the tree, and the tree stops it first.

Binding: before anything starts, `api_spec` refuses (ValueError) settings that would listen
beyond loopback without a token; the listener binds before it reports started, so a busy port
fails the node's start naming the address.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import trio

from switchd.otp import (
    Caller,
    ChildSpec,
    ChildType,
    DynamicSupervisor,
    MaxChildren,
    Pid,
    Process,
    Restart,
    Strategy,
    Supervisor,
    SupervisorFlags,
    call,
    receive,
    start_child,
)

from . import _billing, _calls, _node, _routing
from ._dispatch import Route, route
from ._handlers import HandlerSpec, keep_handlers
from ._http import HttpConnection
from ._metrics import MetricsHandler
from ._settings import ApiSettings, NodeView
from ._state import ApiState, own_database
from ._trace import TraceHandler, TraceSetup

log = logging.getLogger(__name__)

NAME = "api"
LISTENER = "api.listener"
CONNECTIONS = "api.connections"


def endpoints(settings: ApiSettings) -> tuple[Route, ...]:
    """Every path of the API (docs/api.md describes each)."""
    return (
        route("GET", "/health", _node.health, public=True),
        route("GET", "/status", _node.status),
        route("GET", "/tree", _node.supervision_tree),
        route("GET", "/metrics", _node.metrics),
        route("POST", "/chaos", _node.chaos),
        route("GET", "/calls", _calls.calls),
        route("GET", "/calls/{call_id}", _calls.show_call),
        route("DELETE", "/calls/{call_id}", _calls.end_call),
        route("GET", "/trace/{call_id}", _calls.trace),
        route("GET", "/cdrs", _billing.cdrs),
        route("GET", "/cdrs/{call_id}", _billing.cdrs_of_call),
        route("GET", "/billing/summary", _billing.summary),
        route("POST", "/rates", _billing.rates, max_body=settings.max_deck),
        route("GET", "/routes", _routing.routes),
        route("POST", "/routes/reload", _routing.reload),
        route("POST", "/policy", _routing.policy),
    )


def api_spec(settings: ApiSettings, view: NodeView) -> ChildSpec:
    """The child spec of the API supervisor (registered "api") for the node `view` describes."""
    state = ApiState(settings, view)
    handlers = [HandlerSpec("api.metrics", MetricsHandler, state.stats)]
    if settings.trace_calls > 0:
        handlers.append(HandlerSpec("api.trace", TraceHandler, TraceSetup(state.trace, view.tap)))
    children = [
        ChildSpec(id="api.db", start=partial(Process.start_link, own_database, state.db, name="api.db"),
                  shutdown=5.0),
        ChildSpec(id="api.handlers", start=partial(Process.start_link, keep_handlers, handlers,
                                                   view.tap.events, name="api.handlers"), shutdown=2.0),
        ChildSpec(id=CONNECTIONS, start=partial(DynamicSupervisor.start_link, max_children=settings.max_connections,
                                                name=CONNECTIONS),
                  type=ChildType.SUPERVISOR, shutdown=math.inf),
        ChildSpec(id=LISTENER, start=partial(HttpListener.start_link, state), shutdown=1.0),
    ]
    flags = SupervisorFlags(Strategy.ONE_FOR_ONE, max_restarts=10, max_seconds=10.0)
    return ChildSpec(id=NAME, start=partial(Supervisor.start_link, children, flags, name=NAME),
                     restart=Restart.PERMANENT, type=ChildType.SUPERVISOR, shutdown=math.inf)


@dataclass(frozen=True, slots=True)
class _Where:
    pass


async def api_listening_on(*, listener: str = LISTENER, timeout: float = 5.0) -> list[tuple[str, int]]:
    """The (host, port) pairs the API listens on (the real port when configured with port 0)."""
    where: list[tuple[str, int]] = await call(listener, _Where(), timeout=timeout)
    return where


class HttpListener:
    """The ``api.listener`` process: accepts clients, one ``HttpConnection`` process each."""

    @staticmethod
    async def start_link(state: ApiState, *, task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, report started, accept until shut down; OSError naming the address (e.g. in use) before started."""
        settings = state.settings
        try:
            listeners = await trio.open_tcp_listeners(settings.port, host=settings.host)
        except OSError as exc:
            raise OSError(exc.errno, f"API: cannot listen on {settings.host}:{settings.port}: "
                                     f"{exc.strerror or exc}") from exc
        try:
            await Process.start_link(_accept_all, listeners, state, endpoints(settings), name=LISTENER,
                                     task_status=task_status)
        finally:
            for listener in listeners:
                await trio.aclose_forcefully(listener)


async def _accept_all(listeners: Sequence[trio.SocketListener], state: ApiState, routes: Sequence[Route]) -> None:
    where = [_bound(listener) for listener in listeners]
    log.info("HTTP API listening on %s%s", ", ".join(f"http://{h}:{p}" for h, p in where),
             "" if state.settings.token is None else " (Bearer token required)",
             extra={"listen": [f"{h}:{p}" for h, p in where], "auth": state.settings.token is not None})
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept, listener, state, routes)
        while True:
            msg = await receive()
            if isinstance(msg, Caller) and isinstance(msg.request, _Where):
                msg.reply(list(where))
            else:
                log.warning("api.listener: unexpected message %r", msg)


def _bound(listener: trio.SocketListener) -> tuple[str, int]:
    host, port = listener.socket.getsockname()[:2]
    return str(host), int(port)


async def _accept(listener: trio.SocketListener, state: ApiState, routes: Sequence[Route]) -> None:
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:  # out of descriptors: the SIP side sheds, the API just waits a little
            log.warning("api.listener: accept failed: %s", exc.strerror or exc)
            await trio.sleep(0.1)
            continue
        spec = ChildSpec(id="http", start=partial(Process.start_link, _serve, stream, state, routes),
                         restart=Restart.TEMPORARY, shutdown=1.0)
        try:
            await start_child(CONNECTIONS, spec)
        except MaxChildren:
            log.warning("api.listener: %d clients connected already; closing a new one",
                        state.settings.max_connections)
            await trio.aclose_forcefully(stream)
        except Exception as exc:  # noqa: BLE001 - "api.connections" restarting: refuse this client, go on
            log.error("api.listener: cannot start a connection process: %r", exc)
            await trio.aclose_forcefully(stream)


async def _serve(stream: trio.abc.Stream, state: ApiState, routes: Sequence[Route]) -> None:
    await HttpConnection(stream, state, routes).serve()
