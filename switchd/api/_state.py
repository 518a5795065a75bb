"""ApiState: what every process of the API shares, made once per node by `api_spec`.

It outlives restarts of the API's processes (as the node's CdrQueue outlives the billing store):
a restarted connection or listener finds the same trace, the same counts and the same registry.
The billing database is reached through `Database`, whose engine is owned by one process
(``api.db``): queries and deck parsing run in threads of its limiter, never on the node's loop,
so a slow query or a 10 MiB deck never delays a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import trio
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from switchd.billing import InvalidQuery, open_engine
from switchd.otp import receive

from ._errors import BadRequest, Unavailable
from ._metrics import CallStats, NodeMetrics
from ._settings import ApiSettings, NodeView
from ._trace import TraceBuffer

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True, eq=False)
class Database:
    """The API's own engine on the billing database, and the threads its work runs in."""

    url: str
    threads: int
    engine: Engine | None = None  # set while ``api.db`` runs
    limiter: trio.CapacityLimiter | None = None

    async def run(self, work: Callable[[Engine], T]) -> T:
        """`work(engine)` in a thread; Unavailable without the engine or on a database error,
        BadRequest for a query the billing layer refused (InvalidQuery)."""
        engine, limiter = self.engine, self.limiter
        if engine is None or limiter is None:
            raise Unavailable("the API's billing database connection is restarting")
        try:
            return await trio.to_thread.run_sync(partial(work, engine), limiter=limiter)
        except InvalidQuery as exc:
            raise BadRequest(str(exc)) from None
        except SQLAlchemyError as exc:
            log.warning("API billing query failed: %s", exc, extra={"error": type(exc).__name__})
            raise Unavailable(f"the billing database failed: {type(exc).__name__}") from None

    async def compute(self, work: Callable[[], T]) -> T:
        """CPU-bound `work()` (a deck to parse) in one of the same threads, off the node's loop."""
        limiter = self.limiter
        if limiter is None:
            raise Unavailable("the API's worker threads are restarting")
        return await trio.to_thread.run_sync(work, limiter=limiter)


async def own_database(db: Database) -> None:
    """The ``api.db`` process: opens the engine, keeps it while it runs, disposes of it when stopped."""
    engine = open_engine(db.url)
    db.engine, db.limiter = engine, trio.CapacityLimiter(db.threads)
    try:
        while True:
            log.warning("api.db: unexpected message %r", await receive())
    finally:
        db.engine = None
        engine.dispose()


@dataclass(slots=True, eq=False)
class ApiState:
    """See the module docstring."""

    settings: ApiSettings
    view: NodeView
    stats: CallStats = field(default_factory=CallStats)
    trace: TraceBuffer = field(init=False)
    metrics: NodeMetrics = field(init=False)
    db: Database = field(init=False)

    def __post_init__(self) -> None:
        self.trace = TraceBuffer(self.settings.trace_calls, self.settings.trace_messages)
        self.metrics = NodeMetrics(self.view, self.stats)
        self.db = Database(self.view.database_url, self.settings.db_threads)
