"""The blocking side of the BillingStore: applying batches of ops in one transaction each.

Everything here runs in the store's database worker (one thread at a time, by the worker's
CapacityLimiter(1)); nothing here touches trio. A batch is applied in executemany statements, in
lifecycle order — opens, progress, answers, closes (with their rollup upserts), heartbeats —
inside ONE transaction:

* open:      INSERT … ON CONFLICT (key) DO NOTHING      a replayed open finds its row and stops
* progress:  UPDATE … SET progress_at = COALESCE(progress_at, :at) … WHERE key = :key AND <updatable>
* answer:    UPDATE … SET answer_at = COALESCE(answer_at, :at) …    WHERE key = :key AND <updatable>
* close:     UPDATE … SET end_at, disposition, rating …             WHERE key = :key AND <updatable>
* heartbeat: INSERT INTO node_runs … ON CONFLICT DO UPDATE SET last_beat … WHERE it moves forward

(<updatable>: status IN ('open', 'recovered').)

Each is idempotent: applying an op twice (a spool replay, a late commit of a write the store gave
up on) changes nothing the second time, and a CDR is never inserted twice thanks to the unique
key. Closing rates the call with the deck held in memory; what rating needs of the open CDR
(callee, setup, answer, plan) is cached from its open, or read back in one SELECT per batch
(after a restart, in a replay). A close counts into the rollups only if it takes effect: on an
open CDR, or on one closed as recovered, whose counts are taken back first (a real close replaces
recovery's guess); on a CDR closed for real it is a replay and changes nothing.

A failure is either an outage (the database cannot be used now: StoreUnavailable, retried) or a
refusal of the data (a constraint, a value out of range or that cannot be encoded): then
`apply_isolating` halves the batch until the op at fault stands alone, Rejected, and commits the
rest.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Engine, Table, bindparam, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from ._db import upgrade
from ._decks import load_decks, store_deck
from ._errors import BillingError, StoreUnavailable, UnknownCdr
from ._models import Cdr, CdrStatus, Disposition, HangupParty, NodeRun
from ._ops import HEARTBEAT_FIELDS, LEG_FIELDS, OPEN_FIELDS, Op, OpKind
from ._rating import RateDeck, rate_call
from ._rollups import (
    KEY_COLUMNS,
    ROLLUPS,
    SUM_COLUMNS,
    RollupKey,
    Totals,
    add_close,
    delta_rows,
    upsert_statement,
)
from ._types import Money, UtcDateTime, to_money, to_utc_ms

log = logging.getLogger(__name__)

_TABLE = cast(Table, Cdr.__table__)
_RUNS = cast(Table, NodeRun.__table__)
_MS = timedelta(milliseconds=1)
_SELECT_CHUNK = 500


class _Known(NamedTuple):
    """What closing needs to know about an open CDR (a tuple: one is made per CDR opened)."""

    callee: str | None
    setup_at: datetime
    answer_at: datetime | None
    rate_plan: str
    account: str | None


def _param(name: str) -> Any:
    # parameter names must differ from column names in an executemany UPDATE
    return bindparam(f"p_{name}", type_=_TABLE.c[name].type)


def _keep_or_set(name: str) -> Any:
    """SET column = COALESCE(:new, column): a None in the op leaves the stored value."""
    return func.coalesce(_param(name), _TABLE.c[name])


def _first_wins(name: str) -> Any:
    """SET column = COALESCE(column, :new): the first value written stays."""
    return func.coalesce(_TABLE.c[name], _param(name))


# Progress, answer and close apply to an open CDR and to one closed as recovered (the node died
# with the call up): the real step replaces what recovery guessed. A CDR closed for real is final,
# so replaying a step changes nothing. Constants are SQL text, not parameters: the batch rows
# carry only p_* values.
_UPDATABLE: list[Any] = [
    literal_column(f"'{status.value}'") for status in (CdrStatus.OPEN, CdrStatus.RECOVERED)
]


def _update(values: dict[str, Any]) -> Any:
    return (
        _TABLE.update()
        .where(_TABLE.c.key == bindparam("p_key"), _TABLE.c.status.in_(_UPDATABLE))
        .values(**values)
    )


_PROGRESS = _update(
    {
        "progress_at": _first_wins("progress_at"),
        **{n: _keep_or_set(n) for n in LEG_FIELDS},
        "updated_at": _param("updated_at"),
    }
)
_ANSWER = _update(
    {
        "answer_at": _first_wins("answer_at"),
        "a_to_tag": _keep_or_set("a_to_tag"),
        **{n: _keep_or_set(n) for n in LEG_FIELDS},
        "updated_at": _param("updated_at"),
    }
)
_RATED_FIELDS = (
    "duration_ms",
    "billable_ms",
    "rated",
    "rate_prefix",
    "rate_per_minute",
    "rate_connect_fee",
    "rate_first_increment",
    "rate_next_increment",
    "billed_seconds",
    "cost",
    "currency",
)
_CLOSE = _update(
    {
        **{
            n: _param(n)
            for n in (
                "end_at",
                "disposition",
                "sip_code",
                "sip_reason",
                "hangup_cause",
                "hangup_by",
                "reinvites",
                "hold_ms",
                "status",
                "updated_at",
                *_RATED_FIELDS,
            )
        },
        "answer_at": _first_wins("answer_at"),
        **{n: _keep_or_set(n) for n in LEG_FIELDS},
    }
)


def _utc_ms(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc_ms(value)


# The text of recent times: a batch's ops share their `now` (created_at, updated_at), and calls
# set up or ended in the same millisecond share theirs; a lookup costs a tenth of isoformat.
_TIME_TEXT: dict[datetime, str] = {}
_TIME_TEXT_SIZE = 4096


def _sqlite_time(value: datetime | None) -> str | None:
    """'YYYY-MM-DD hh:mm:ss.ffffff' in UTC, as SQLAlchemy's SQLite DATETIME stores it."""
    if value is None:
        return None
    text = _TIME_TEXT.get(value)  # equal datetimes are the same instant: the same UTC text
    if text is None:
        utc = to_utc_ms(value) if value.tzinfo is not UTC or value.microsecond % 1000 else value
        text = utc.isoformat(" ", "microseconds")[:26]  # without the "+00:00"
        if len(_TIME_TEXT) >= _TIME_TEXT_SIZE:
            _TIME_TEXT.clear()
        _TIME_TEXT[value] = text
    return text


def _sqlite_money(value: Decimal | None) -> int | None:
    """Millionths, as Money stores them on SQLite; ValueError beyond six places (see to_money)."""
    if value is None:
        return None
    if value.__class__ is Decimal and value.is_finite():
        micros = value.scaleb(6)
        whole = int(micros)
        if whole == micros:  # the common case: already exact to the millionth
            return whole
    return int(to_money(value).scaleb(6))


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else to_money(value)


def _enum_value(value: Enum | None) -> object:
    return None if value is None else value._value_  # `.value` is a slower descriptor


def _encoder(table: Table, column: str, dialect: str) -> Callable[[Any], object] | None:
    """How the batch path encodes `column` for `dialect`, exactly as the column type would."""
    kind = table.c[column].type
    if isinstance(kind, UtcDateTime):
        return _sqlite_time if dialect == "sqlite" else _utc_ms
    if isinstance(kind, Money):
        return _sqlite_money if dialect == "sqlite" else _money
    if getattr(kind, "enum_class", None) is not None:
        return _enum_value
    return None


class _Statement:
    """A statement compiled once for the engine's dialect, run as a driver-level executemany.

    The batch path encodes values itself (exactly as Money, UtcDateTime and the enums would) and
    hands the driver ready rows: SQLAlchemy's per-row parameter processing would otherwise cost
    more than the database. Reads keep going through the ORM types.
    """

    def __init__(
        self, statement: Any, engine: Engine, names: Sequence[str] | None = None, table: Table = _TABLE
    ) -> None:
        compiled = statement.compile(dialect=engine.dialect, column_keys=list(names) if names else None)
        self.sql = str(compiled)
        positional = bool(compiled.positional)
        params = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
        dialect = engine.dialect.name
        # One generated function per statement builds a driver row from an op's dict, like
        # namedtuple and dataclasses generate theirs: a generic loop costs twice as much.
        encoders = {f"e{i}": _encoder(table, p.removeprefix("p_"), dialect) for i, p in enumerate(params)}
        # a row is a dict of column names; update parameters are those names with "p_" in front
        keys = [p.removeprefix("p_") for p in params]
        items = [
            f"row[{k!r}]" if encoders[f"e{i}"] is None else f"e{i}(row[{k!r}])" for i, k in enumerate(keys)
        ]
        body = (
            f"({', '.join(items)},)"
            if positional
            else "{" + ", ".join(f"{p!r}: {item}" for p, item in zip(params, items, strict=True)) + "}"
        )
        namespace: dict[str, Any] = {k: v for k, v in encoders.items() if v is not None}
        exec(f"def build(row):\n    return {body}\n", namespace)  # noqa: S102 (names and reprs only)
        self._build: Callable[[dict[str, Any]], Any] = namespace["build"]

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Execute for every row; returns the number of rows the database changed."""
        build = self._build
        return conn.exec_driver_sql(self.sql, [build(row) for row in rows]).rowcount


@dataclass(frozen=True, slots=True)
class Rejected:
    """The outcome of an op the database (or its encoding) refused: it goes to the dead-letter file."""

    reason: str


Outcome = BillingError | Rejected | None  # per op: written, UnknownCdr, or refused


class _Refused(Exception):
    """A batch failed for a reason about its data, not the database: some op in it is poison."""


class _Prior(NamedTuple):
    """What a CDR closed as recovered counted into the rollups (taken back by its real close)."""

    disposition: Disposition
    rate_prefix: str | None
    currency: str | None
    billable_ms: int | None
    billed_seconds: int | None
    cost: Decimal | None


def is_outage(exc: BaseException) -> bool:
    """True if `exc` says the database cannot be reached or used now (retry later, spool meanwhile).

    Anything else an apply raises is about the data (a constraint, a value out of range, text that
    cannot be encoded): retrying cannot help, so the op at fault is found and quarantined. A
    missing table on PostgreSQL (SQLSTATE 42P01/42703, a ProgrammingError) is an outage: the
    next probe migrates.
    """
    if isinstance(exc, StoreUnavailable | OperationalError | InterfaceError | InternalError):
        return True
    if isinstance(exc, DisconnectionError | PoolTimeout | OSError):
        return True
    if isinstance(exc, ProgrammingError):
        return getattr(exc.orig, "sqlstate", None) in _SCHEMA_MISSING
    return False


_SCHEMA_MISSING = {"42P01", "42703"}


def _heartbeat_statement(dialect: str) -> Any:
    """INSERT the run's row, or move its last beat forward (never back: a late replay is a no-op)."""
    insert_ = sqlite.insert if dialect == "sqlite" else postgresql.insert
    statement = insert_(_RUNS)
    return statement.on_conflict_do_update(
        index_elements=["node", "run_started"],
        set_={
            "host": statement.excluded.host,
            "pid": statement.excluded.pid,
            "last_beat": statement.excluded.last_beat,
        },
        where=statement.excluded.last_beat > _RUNS.c.last_beat,
    )


class Writer:
    """Applies ops to one database; holds the decks and the open-CDR cache. One thread at a time."""

    def __init__(self, engine: Engine, decks: dict[str, RateDeck] | None = None) -> None:
        self.engine = engine
        self.decks: dict[str, RateDeck] = dict(decks or {})
        self._known: dict[str, _Known] = {}
        # The batches' connection, kept between batches: a checkout per batch cost a pool round,
        # a pre-ping query and a rollback at check-in. Given back after an outage (it may be broken).
        self._conn: Connection | None = None
        dialect = engine.dialect.name
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        self._open = _Statement(
            insert(_TABLE).on_conflict_do_nothing(index_elements=["key"]), engine, OPEN_FIELDS
        )
        self._progress = _Statement(_PROGRESS, engine)
        self._answer = _Statement(_ANSWER, engine)
        self._close = _Statement(_CLOSE, engine)
        self._rollup = _Statement(upsert_statement(dialect), engine, [*KEY_COLUMNS, *SUM_COLUMNS], ROLLUPS)
        self._beat = _Statement(_heartbeat_statement(dialect), engine, HEARTBEAT_FIELDS[1:], _RUNS)

    # -- batches ------------------------------------------------------------------------------

    def apply_isolating(self, ops: Sequence[Op]) -> list[Outcome]:
        """Apply `ops`; an op the database refuses is found (by halving) and Rejected alone.

        The rest are committed, each half in its own transaction, in order. Raises
        StoreUnavailable when the database fails (what was committed before is harmless to
        write again: every op is idempotent).
        """
        try:
            return self.apply(ops)
        except _Refused as exc:
            if len(ops) == 1:
                return [Rejected(str(exc))]
        middle = len(ops) // 2
        return self.apply_isolating(ops[:middle]) + self.apply_isolating(ops[middle:])

    def apply(self, ops: Sequence[Op]) -> list[Outcome]:
        """Apply `ops` in one transaction; per op None, or the error that op alone met.

        Raises StoreUnavailable (nothing committed) when the database fails, _Refused when the
        batch holds an op the database (or its encoding) refuses.
        """
        try:
            return self._apply(ops)
        except Exception as exc:
            if is_outage(exc):
                self._drop_connection()
                if isinstance(exc, StoreUnavailable):
                    raise
                raise StoreUnavailable(f"billing database write of {len(ops)} op(s) failed: {exc}") from exc
            raise _Refused(f"{type(exc).__name__}: {exc}") from exc

    def _apply(self, ops: Sequence[Op]) -> list[Outcome]:
        outcomes: list[Outcome] = [None] * len(ops)
        answered: dict[str, datetime] = {}  # first answer time of each key in this batch
        for op in ops:
            if op.kind is OpKind.ANSWER:
                answered.setdefault(op.key, op.values["answer_at"])
        closed: set[str] = set()
        conn = self._conn
        if conn is None:
            conn = self._conn = self.engine.connect()
        with conn.begin():
            opens = [op.values for op in ops if op.kind is OpKind.OPEN]
            # The cache may only hold CDRs known to be open: if any open met an existing row
            # (a replay, or a repeated open of a call already closed), cache none of them and
            # let their closes read the rows.
            fresh = bool(opens) and self._open.run(conn, opens) == len(opens)
            progress = [op.values for op in ops if op.kind is OpKind.PROGRESS]
            if progress:
                self._progress.run(conn, progress)
            answers = [op.values for op in ops if op.kind is OpKind.ANSWER]
            if answers:
                self._answer.run(conn, answers)
            closes = [(i, op) for i, op in enumerate(ops) if op.kind is OpKind.CLOSE]
            if closes:
                self._close_all(conn, closes, answered, outcomes, closed)
            beats = [op.values for op in ops if op.kind is OpKind.HEARTBEAT]
            if beats:
                self._beat.run(conn, beats)
        # committed: only now may the cache believe it
        for op in ops if fresh else ():
            if op.kind is OpKind.OPEN:
                v = op.values
                self._known[op.key] = _Known(v["callee"], v["setup_at"], None, v["rate_plan"], v["account"])
        for key, at in answered.items():
            if (k := self._known.get(key)) is not None and k.answer_at is None:
                self._known[key] = k._replace(answer_at=at)
        for key in closed:
            self._known.pop(key, None)
        return outcomes

    def _close_all(
        self,
        conn: Connection,
        closes: list[tuple[int, Op]],
        answered: dict[str, datetime],
        outcomes: list[Outcome],
        closed: set[str],
    ) -> None:
        """Rate and write the batch's closes, and count those that take effect into the rollups.

        A close takes effect on an open CDR, and on one closed as recovered, whose rollup counts
        are taken back first; on a CDR closed for real it is a replay and changes nothing.
        """
        known, finished, prior = self._lookup(conn, [op.key for _, op in closes], answered)
        rows = []
        deltas: dict[RollupKey, Totals] = {}
        for i, op in closes:
            info = known.get(op.key)
            if info is None:
                outcomes[i] = UnknownCdr(f"close of CDR {op.key[:12]}… which was never opened")
                continue
            row = self._closed(op.values, info)
            if op.key not in finished and op.key not in closed:  # takes effect: count it once
                rows.append(row)
                guessed = prior.get(op.key)
                if guessed is not None:
                    add_close(
                        deltas, setup_at=info.setup_at, account=info.account, sign=-1, **guessed._asdict()
                    )
                add_close(
                    deltas,
                    setup_at=info.setup_at,
                    account=info.account,
                    disposition=row["disposition"],
                    rate_prefix=row["rate_prefix"],
                    currency=row["currency"],
                    billable_ms=row["billable_ms"],
                    billed_seconds=row["billed_seconds"],
                    cost=row["cost"],
                )
            closed.add(op.key)
        if rows:
            self._close.run(conn, rows)
            self._rollup.run(conn, delta_rows(deltas))

    def _lookup(
        self, conn: Any, keys: list[str], answered: dict[str, datetime]
    ) -> tuple[dict[str, _Known], set[str], dict[str, _Prior]]:
        """What closing needs of each key, which keys are closed for real (a replay), and what
        the ones closed as recovered counted into the rollups.

        From the cache of committed, still open CDRs, else from the row. Cached entries get this
        batch's answers (already written above, first one wins); rows read inside the
        transaction already show them.
        """
        finished: set[str] = set()
        prior: dict[str, _Prior] = {}
        known: dict[str, _Known] = {}
        missing = []
        for key in keys:
            cached = self._known.get(key)
            if cached is None:
                missing.append(key)
            elif cached.answer_at is None and key in answered:
                known[key] = cached._replace(answer_at=answered[key])
            else:
                known[key] = cached
        t = _TABLE
        columns = (t.c.key, t.c.callee, t.c.setup_at, t.c.answer_at, t.c.rate_plan, t.c.account, t.c.status)
        counted = (
            t.c.disposition,
            t.c.rate_prefix,
            t.c.currency,
            t.c.billable_ms,
            t.c.billed_seconds,
            t.c.cost,
        )
        for start in range(0, len(missing), _SELECT_CHUNK):
            chunk = missing[start : start + _SELECT_CHUNK]
            for key, callee, setup_at, answer_at, plan, account, status, *rollup in conn.execute(
                select(*columns, *counted).where(t.c.key.in_(chunk))
            ):
                known[key] = _Known(callee, setup_at, answer_at, plan, account)
                if status is CdrStatus.CLOSED:
                    finished.add(key)
                elif status is CdrStatus.RECOVERED:
                    prior[key] = _Prior(*rollup)
        return known, finished, prior

    def _closed(self, values: dict[str, Any], info: _Known) -> dict[str, Any]:
        """The close parameters of one CDR, rated (the op's values and the rating's columns).

        Billable time runs from answer to end only for disposition ANSWERED: any other
        disposition bills 0 s even when an answer time is recorded (an answer the caller never
        confirmed with its ACK is FAILED; docs/billing.md, Rating).
        """
        end_at: datetime = values["end_at"]
        answer_at = info.answer_at or values["answer_at"]
        row = dict(values)
        row["answer_at"] = answer_at
        row["duration_ms"] = max(0, (end_at - info.setup_at) // _MS)
        billable = (
            None
            if answer_at is None or values["disposition"] is not Disposition.ANSWERED
            else max(0, (end_at - answer_at) // _MS)
        )
        row["billable_ms"] = billable
        deck = self.decks.get(info.rate_plan)
        rating = (
            None
            if deck is None
            else rate_call(deck, info.callee, setup_at=info.setup_at, billable_ms=billable)
        )
        if rating is None:
            row.update(
                rated=False,
                rate_prefix=None,
                rate_per_minute=None,
                rate_connect_fee=None,
                rate_first_increment=None,
                rate_next_increment=None,
                billed_seconds=None,
                cost=None,
                currency=None,
            )
        else:
            t = rating.tariff
            row.update(
                rated=True,
                rate_prefix=t.prefix,
                rate_per_minute=t.price_per_minute,
                rate_connect_fee=t.connect_fee,
                rate_first_increment=t.first_increment,
                rate_next_increment=t.next_increment,
                billed_seconds=rating.billed_seconds,
                cost=rating.cost,
                currency=t.currency,
            )
        return row

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # back to the pool, whose pre-ping replaces it if it is broken
            except SQLAlchemyError as exc:
                log.debug("closing a failed billing connection: %s", exc)

    def close(self) -> None:
        """Close the batches' connection and every pooled one (the database thread's last job)."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()
        finally:
            self.engine.dispose()

    # -- start-up: decks and recovery ------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to head (MigrationError if it cannot be)."""
        upgrade(self.engine)

    def load_decks(self) -> tuple[str, ...]:
        """Read every plan's deck from the database into memory; returns the plan names."""
        try:
            with Session(self.engine) as session:
                self.decks = load_decks(session)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot read rate decks: {exc}") from exc
        return tuple(sorted(self.decks))

    def replace_deck(self, deck: RateDeck, now: datetime) -> int:
        """Store `deck` in one transaction, then rate with it; returns its tariff count.

        A plan another writer inserted meanwhile (the workers of one node all store the configured
        deck at start) fails the insert on its unique name: the store is tried once more, and then
        replaces that plan as it replaces any stored one.
        """
        for attempt in (1, 2):
            try:
                with Session(self.engine) as session, session.begin():
                    count = store_deck(session, deck, now=now)
                break
            except IntegrityError as exc:
                if attempt == 2:
                    raise StoreUnavailable(f"cannot store rate plan {deck.plan!r}: {exc}") from exc
            except SQLAlchemyError as exc:
                raise StoreUnavailable(f"cannot store rate plan {deck.plan!r}: {exc}") from exc
        self.decks[deck.plan] = deck
        return count

    def recover(self, node: str, before: datetime, now: datetime, batch: int) -> list[Op]:
        """Close the open CDRs of `node` created `before` this run started, as recovered.

        (The rule and its bound are in docs/billing.md.) CDRs created since belong to calls of
        this run, still in flight. A CDR ends at the last heartbeat of the run that opened it,
        and never before the last time the store knew the call was alive (the latest of setup,
        progress, answer and the CDR's last update). Returns the close ops applied.
        """
        t, r = _TABLE, _RUNS
        query = select(
            t.c.key, t.c.setup_at, t.c.progress_at, t.c.answer_at, t.c.updated_at, t.c.created_at
        ).where(t.c.node == node, t.c.status == CdrStatus.OPEN, t.c.created_at < before)
        runs_query = (
            select(r.c.run_started, r.c.last_beat)
            .where(r.c.node == node, r.c.run_started < before)
            .order_by(r.c.run_started)
        )
        try:
            with self.engine.connect() as conn:
                rows = list(conn.execute(query))
                runs = list(conn.execute(runs_query)) if rows else []
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot read open CDRs of node {node!r}: {exc}") from exc
        starts = [started for started, _ in runs]
        ops = []
        for key, setup_at, progress_at, answer_at, updated_at, created_at in rows:
            end = max(x for x in (setup_at, progress_at, answer_at, updated_at) if x is not None)
            run = bisect_right(starts, created_at) - 1  # the run that opened it
            if run >= 0:
                end = max(end, runs[run][1])
            answered = answer_at is not None
            ops.append(
                Op(
                    OpKind.CLOSE,
                    {
                        "key": key,
                        "end_at": end,
                        "answer_at": None,
                        "disposition": Disposition.ANSWERED if answered else Disposition.FAILED,
                        "sip_code": 200 if answered else None,
                        "sip_reason": None,
                        "hangup_cause": "recovered",
                        "hangup_by": HangupParty.SWITCH,
                        **dict.fromkeys(LEG_FIELDS),
                        "reinvites": None,
                        "hold_ms": None,
                        "status": CdrStatus.RECOVERED,
                        "updated_at": now,
                    },
                )
            )
        for start in range(0, len(ops), batch):
            self.apply(ops[start : start + batch])
        return ops
