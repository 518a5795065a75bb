"""What the API is configured with (`ApiSettings`) and what it reads of the node (`NodeView`).

The API never imports the application: the application hands it a `NodeView`, the node-local
objects it reads (admission, connections, the CDR queue, the wire tap) and the two operations it
may start (a reload, and the count of reloads), so the API layer stays below `switchd.app`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from switchd.billing import CdrQueue
from switchd.switch import Admission, ConnectionTable, WireTap

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    """How the HTTP API listens, authenticates and limits requests.

    ``host``, ``port``: where it listens, "127.0.0.1" and 8080 (0: any free port, as tests use).
    ``token``: the Bearer token every request but GET /health must carry; None: no authentication,
    which is allowed only on a loopback address (a ValueError otherwise).
    ``chaos``: whether POST /chaos may kill processes, False.
    ``trace_calls``, ``trace_messages``: the SIP trace keeps the last `trace_calls` calls with up to
    `trace_messages` messages each, 100 and 50; 0 calls: no trace, and the connections pay nothing.
    ``max_head``: bytes of request line and headers, 16 KiB; more: 431.
    ``max_body``: bytes of a request body, 64 KiB; more: 413. ``max_deck``: the same for POST
    /rates, 10 MiB.
    ``request_timeout``: seconds from a request's first byte to its last, 10.0; later: 408 and close.
    ``idle_timeout``: seconds a keep-alive connection may wait for its next request, 30.0; then closed.
    ``write_timeout``: seconds one write to a client may block (a client that does not read), 10.0.
    ``max_connections``: connections served at once, 64; more are closed at accept.
    ``db_threads``: threads for billing queries and deck parsing, 2.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    chaos: bool = False
    trace_calls: int = 100
    trace_messages: int = 50
    max_head: int = 16 * KIB
    max_body: int = 64 * KIB
    max_deck: int = 10 * MIB
    request_timeout: float = 10.0
    idle_timeout: float = 30.0
    write_timeout: float = 10.0
    max_connections: int = 64
    db_threads: int = 2

    def __post_init__(self) -> None:
        if self.token is None and not is_loopback(self.host):
            raise ValueError(f"the API on {self.host}, not a loopback address, needs a token (api.token)")
        if self.token is not None and not self.token:
            raise ValueError("the API token must not be empty")
        for name in ("request_timeout", "idle_timeout", "write_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ApiSettings.{name} must be > 0 seconds, not {getattr(self, name)!r}")


def is_loopback(host: str) -> bool:
    """True for "localhost" and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ReloadOutcome(Protocol):
    """What a reload reports (`switchd.app.ReloadResult` is one)."""

    @property
    def ok(self) -> bool: ...
    @property
    def routes(self) -> int: ...
    @property
    def rates(self) -> int | None: ...
    @property
    def gateways(self) -> Sequence[str]: ...
    @property
    def error(self) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """The node as the API sees it; made once by the application.

    ``node``: the node's name. ``version``: switchd's version. ``root``: the registered name of
    the application's root supervisor (its start is the node's uptime), "switchd".
    ``admission``, ``connections``, ``cdrs``, ``tap``: the node-local state (read, never written,
    but for `tap.tracing`, which the trace handler switches).
    ``database_url``: the billing database the API queries (its own engine and threads).
    ``reload``: starts a reload of routes and rates and returns its outcome.
    ``reloads``: the number of reloads that succeeded so far.
    ``default_plan``, ``currency``: the plan and currency of a CSV deck posted without them.
    ``calls``: the registered name of the calls supervisor, "calls".
    """

    node: str
    version: str
    admission: Admission
    connections: ConnectionTable
    cdrs: CdrQueue
    tap: WireTap
    database_url: str
    reload: Callable[[], Awaitable[ReloadOutcome]]
    reloads: Callable[[], int]
    default_plan: str = "default"
    currency: str = "USD"
    root: str = "switchd"
    calls: str = "calls"
