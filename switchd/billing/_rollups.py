"""Rollups: running totals of finished CDRs that billing summaries read instead of the CDRs.

The store adds each batch's closes to `cdr_rollups` in the transaction that closes them (an
upsert per (day, account, rate prefix, disposition, currency)), counting only closes that took
effect, so a replayed close is not counted twice. A summary whose filter the rollups can answer
(time range on whole UTC days, account, disposition) reads them; any other filter scans the CDRs.
Both give the same numbers (a test holds them to it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, case, delete, func, insert, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ._models import Cdr, CdrRollup, CdrStatus, Disposition
from ._types import to_utc_ms

ROLLUPS = cast(Table, CdrRollup.__table__)
KEY_COLUMNS = ("day", "account", "rate_prefix", "disposition", "currency")
SUM_COLUMNS = ("calls", "answered", "billable_ms", "billed_seconds", "cost")


@dataclass(slots=True)
class Totals:
    """One rollup row's sums, as the writer accumulates them for a batch."""

    calls: int = 0
    answered: int = 0
    billable_ms: int = 0
    billed_seconds: int = 0
    cost: Decimal = field(default_factory=lambda: Decimal("0.000000"))


RollupKey = tuple[str, str, str, str, str]


def add_close(
    deltas: dict[RollupKey, Totals],
    *,
    setup_at: datetime,
    account: str | None,
    rate_prefix: str | None,
    disposition: Disposition,
    currency: str | None,
    billable_ms: int | None,
    billed_seconds: int | None,
    cost: Decimal | None,
    sign: int = 1,
) -> None:
    """Count one closed CDR into `deltas` (`sign` -1: take back what it counted before)."""
    day = setup_at.date().isoformat()  # setup_at is in UTC; strftime costs seven times as much
    key = (day, account or "", rate_prefix or "", disposition._value_, currency or "")
    totals = deltas.get(key)
    if totals is None:
        totals = deltas[key] = Totals()
    totals.calls += sign
    if disposition is Disposition.ANSWERED:
        totals.answered += sign
        totals.billable_ms += sign * (billable_ms or 0)
    totals.billed_seconds += sign * (billed_seconds or 0)
    if cost is not None:
        totals.cost += sign * cost


def delta_rows(deltas: dict[RollupKey, Totals]) -> list[dict[str, Any]]:
    """`deltas` as upsert rows."""
    return [
        {
            **dict(zip(KEY_COLUMNS, key, strict=True)),
            "calls": t.calls,
            "answered": t.answered,
            "billable_ms": t.billable_ms,
            "billed_seconds": t.billed_seconds,
            "cost": t.cost,
        }
        # in key order: nodes sharing a PostgreSQL database then lock rollup rows in one order
        # and cannot deadlock each other
        for key, t in sorted(deltas.items(), key=lambda item: item[0])
    ]


def upsert_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT (key) DO UPDATE SET each sum = sum + the new one."""
    insert_ = sqlite.insert if dialect == "sqlite" else postgresql.insert
    statement = insert_(ROLLUPS)
    return statement.on_conflict_do_update(
        index_elements=list(KEY_COLUMNS),
        set_={name: ROLLUPS.c[name] + statement.excluded[name] for name in SUM_COLUMNS},
    )


def day_expression(dialect: str) -> ColumnElement[Any]:
    """The UTC day of a CDR's setup as 'YYYY-MM-DD', in SQL."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD hh:mm:ss.ffffff' in UTC
        return func.substr(Cdr.setup_at, 1, 10)
    return func.to_char(func.timezone("UTC", Cdr.setup_at), "YYYY-MM-DD")


def rebuild_rollups(session: Session) -> int:
    """Recompute `cdr_rollups` from the CDRs in the session's transaction; returns its row count.

    For after a bulk import or a manual correction of CDRs; the store keeps them up to date itself.
    """
    dialect = session.get_bind().dialect.name
    answered = Cdr.disposition == Disposition.ANSWERED
    source = (
        select(
            day_expression(dialect),
            func.coalesce(Cdr.account, ""),
            func.coalesce(Cdr.rate_prefix, ""),
            Cdr.disposition,
            func.coalesce(Cdr.currency, ""),
            func.count(),
            func.sum(case((answered, 1), else_=0)),
            func.coalesce(func.sum(case((answered, Cdr.billable_ms), else_=0)), 0),
            func.coalesce(func.sum(Cdr.billed_seconds), 0),
            func.coalesce(func.sum(Cdr.cost), literal_column("0")),
        )
        .where(Cdr.status != CdrStatus.OPEN, Cdr.disposition.is_not(None))
        .group_by(
            literal_column("1"),
            literal_column("2"),
            literal_column("3"),
            literal_column("4"),
            literal_column("5"),
        )
    )
    session.execute(delete(ROLLUPS))
    session.execute(insert(ROLLUPS).from_select([*KEY_COLUMNS, *SUM_COLUMNS], source))
    return session.scalar(select(func.count()).select_from(ROLLUPS)) or 0


def whole_days(*times: datetime | None) -> bool:
    """True if every given time is a UTC midnight, so whole rollup days cover the range exactly."""
    return all(t is None or to_utc_ms(t).time() == time(0) for t in times)


def day_text(value: datetime) -> str:
    """The UTC day of `value` as the rollups spell it."""
    return to_utc_ms(value).strftime("%Y-%m-%d")


def rollup_rows(session: Session, group: Any, conditions: Iterable[Any]) -> Any:
    """Sums of the rollups grouped by `group`, under `conditions` on the rollup columns."""
    key = group.label("key")
    return session.execute(
        select(
            key,
            ROLLUPS.c.currency,
            func.sum(ROLLUPS.c.calls),
            func.sum(ROLLUPS.c.answered),
            func.sum(ROLLUPS.c.billable_ms),
            func.sum(ROLLUPS.c.billed_seconds),
            func.sum(ROLLUPS.c.cost),
        )
        .where(*conditions)
        .group_by(key, ROLLUPS.c.currency)
        # a group whose every call was taken back (a recovered CDR closed for real) is no group
        .having(func.sum(ROLLUPS.c.calls) != 0)
        .order_by(key, ROLLUPS.c.currency)
    )
