"""The BillingStore's state and the records it keeps in it (its one owner is the store's task).

`State` is the store's GenServer state; `Item` is a step (or the heartbeat) on its way, `Batch`
the one batch in flight. The timer messages are what the store sends itself with send_after. The
run variables tell a daemon run's first store from one its supervisor restarted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

import trio

from switchd.otp import Caller, TimerRef

from ._client import BillingStoreConfig
from ._dead_letter import DeadRecord
from ._ops import Op
from ._queue import CdrQueue, Entry
from ._rating import RateDeck
from ._store_workers import DbWorker, SpoolWorker
from ._types import to_utc_ms
from ._writer import Outcome, Rejected

# (database URL, node) pairs whose open CDRs this run of the daemon has recovered already.
_RECOVERED: trio.lowlevel.RunVar[set[tuple[str, str]]] = trio.lowlevel.RunVar("switchd_billing_recovered")
# When the first BillingStore of this run of the daemon started: CDRs created before it are
# earlier runs'; those created since are calls of this run (even if the database was down at
# start and recovery only runs once it is back). It also names this run's heartbeat row.
_RUN_STARTED: trio.lowlevel.RunVar[datetime] = trio.lowlevel.RunVar("switchd_billing_run_started")


class Mode(Enum):
    DB = "db"  # batches go to the database
    OUTAGE = "outage"  # batches go to the spool; a probe and replay bring the database back


@dataclass(frozen=True, slots=True)
class Deadline:
    seq: int


@dataclass(frozen=True, slots=True)
class Busy:
    pass


@dataclass(frozen=True, slots=True)
class Probe:
    pass


@dataclass(frozen=True, slots=True)
class Beat:
    pass


@dataclass(slots=True)
class Item:
    """A step (or the heartbeat, without an entry) on its way: its op, or why it has none."""

    entry: Entry | None
    op: Op | None
    dead: DeadRecord | None = None  # set: quarantine it without writing it
    suspect: bool = False  # in flight when a store crashed: write it alone


@dataclass(slots=True)
class Batch:
    seq: int
    items: list[Item]
    to_spool: bool  # handed to the spool worker (else to the database worker)
    deadline: TimerRef | None = None
    sent_at: float = 0.0  # trio time it went to the database
    outcomes: list[Outcome] | None = None  # the database's, while the dead letters are written


@dataclass(slots=True)
class State:
    config: BillingStoreConfig
    queue: CdrQueue
    own_queue: bool  # made by this store (no application queue): it dies with the store
    db: DbWorker
    spool: SpoolWorker
    run_started: datetime
    mode: Mode = Mode.OUTAGE  # until the first probe has connected
    starting: bool = True  # init is waiting for the first connect: hold the writes
    pending: deque[Item] = field(default_factory=deque)
    batch: Batch | None = None  # the one batch in flight
    seq: int = 0
    batch_limit: int = 1  # ops per database batch, adapted to stay well inside the deadline
    db_busy: bool = False  # a database job has not reported back (it may hang)
    deck_to_store: RateDeck | None = None
    recover_due: bool = False
    replay_offset: int = 0
    replay_bad_lines: int = 0
    draining: bool = False  # the replay reached the end once: no more spool writes, then the last chunk
    stuck: str | None = None  # why neither database nor spool took the last batch: wait for the retry
    stuck_logged: bool = False  # that was logged (once, until a batch is durable again)
    stopping: bool = False  # terminate: dispatch nothing more
    probe: TimerRef | None = None
    busy: TimerRef | None = None
    beat: TimerRef | None = None
    rate_requests: deque[tuple[Caller, Callable[[], RateDeck]]] = field(default_factory=deque)
    plans: tuple[str, ...] = ()
    spooled_ops: int = 0
    replayed_ops: int = 0
    written_ops: int = 0
    batches: int = 0
    recovered: int = 0
    quarantined: int = 0
    unknown_closes: int = 0
    db_errors: int = 0  # database writes, probes, replays that failed or overran (outages and their retries)


def written(batch: Batch, outcomes: list[Outcome]) -> None:
    """Spread the database's per-op outcomes over the batch's items; a Rejected op's item gets
    its dead letter (written before the batch counts as durable)."""
    ops = iter(outcomes)
    batch.outcomes = []
    for item in batch.items:
        outcome = next(ops) if item.op is not None and item.dead is None else None
        if isinstance(outcome, Rejected):
            step = item.entry.step if item.entry is not None else None
            item.dead = DeadRecord(f"refused by the database: {outcome.reason}", item.op, step)
        batch.outcomes.append(outcome)


def refused(batch: Batch, records: tuple[DeadRecord, ...]) -> None:
    """Mark the items whose ops the spool could not encode (they went to the dead letters)."""
    for record in records:
        for item in batch.items:
            if item.op is record.op:
                item.dead = record


def call_id_of(item: Item) -> str | None:
    return item.entry.step.call_id if item.entry is not None else None


def run_started() -> datetime:
    try:
        return _RUN_STARTED.get()
    except LookupError:
        started = to_utc_ms(datetime.now(UTC))
        _RUN_STARTED.set(started)
        return started


def recovered_this_run() -> set[tuple[str, str]]:
    try:
        return _RECOVERED.get()
    except LookupError:
        done: set[tuple[str, str]] = set()
        _RECOVERED.set(done)
        return done
