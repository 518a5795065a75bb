"""Reading CDRs: filtered listing with keyset pagination, lookup by Call-ID, and summaries.

Plain functions over a SQLAlchemy Session, used by the CLI and the HTTP API. Listing is ordered
by (setup_at, id), the columns of `ix_cdrs_setup_at_id` — oldest first, or newest first (the same
index read backwards); a page ends with an opaque cursor, and the next page starts strictly after
it in that order, so rows inserted meanwhile never shift or repeat a page (unlike OFFSET).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Label, Select, SQLColumnExpression, and_, case, func, or_, select
from sqlalchemy.orm import Session

from ._errors import InvalidQuery
from ._models import Cdr, CdrStatus, Disposition
from ._rollups import ROLLUPS, day_expression, day_text, rollup_rows, whole_days
from ._types import to_utc_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class CdrFilter:
    """Which CDRs a listing, summary or export covers; every given field must match (AND)."""

    since: datetime | None = None  # setup_at ≥ since
    until: datetime | None = None  # setup_at < until
    caller_prefix: str | None = None  # normalised caller starts with it ('+44' or '44')
    callee_prefix: str | None = None  # normalised callee starts with it
    account: str | None = None
    disposition: Disposition | None = None
    status: CdrStatus | None = None
    node: str | None = None
    gateway: str | None = None  # the gateway of the attempt (as the routes name it)
    call_id: str | None = None  # the A-leg Call-ID: every attempt and node of one call


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a page ended: the (setup_at, id) of its last CDR. `encode()` makes it a URL-safe token."""

    setup_at: datetime
    id: int

    def encode(self) -> str:
        raw = f"{self.setup_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """The cursor in `token`; InvalidQuery if it is not one `encode()` made."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            when, ident = raw.split("|")
            return cls(to_utc_ms(datetime.fromisoformat(when)), int(ident))
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise InvalidQuery(f"page cursor {token!r} is not valid") from exc


@dataclass(frozen=True, slots=True)
class CdrPage:
    """One page of a listing; `next` is None on the last page."""

    cdrs: Sequence[Cdr]
    next: PageCursor | None


def _number_prefix(name: str, prefix: str) -> str:
    digits = prefix.removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidQuery(f"{name} {prefix!r} is not a number prefix (digits, optionally after '+')")
    return "+" + digits


def conditions(where: CdrFilter) -> list[ColumnElement[bool]]:
    """The SQL conditions of `where` (InvalidQuery for a malformed prefix)."""
    found: list[ColumnElement[bool]] = []
    if where.since is not None:
        found.append(Cdr.setup_at >= where.since)
    if where.until is not None:
        found.append(Cdr.setup_at < where.until)
    if where.caller_prefix is not None:
        found.append(
            Cdr.caller.startswith(_number_prefix("caller_prefix", where.caller_prefix), autoescape=True)
        )
    if where.callee_prefix is not None:
        found.append(
            Cdr.callee.startswith(_number_prefix("callee_prefix", where.callee_prefix), autoescape=True)
        )
    if where.account is not None:
        found.append(Cdr.account == where.account)
    if where.disposition is not None:
        found.append(Cdr.disposition == where.disposition)
    if where.status is not None:
        found.append(Cdr.status == where.status)
    if where.node is not None:
        found.append(Cdr.node == where.node)
    if where.gateway is not None:
        found.append(Cdr.gateway == where.gateway)
    if where.call_id is not None:
        found.append(Cdr.call_id == where.call_id)
    return found


def order(*, newest: bool = False) -> tuple[ColumnElement[Any], ...]:
    """ORDER BY of a listing or export: (setup_at, id), ascending or (`newest`) descending."""
    return (Cdr.setup_at.desc(), Cdr.id.desc()) if newest else (Cdr.setup_at.asc(), Cdr.id.asc())


def list_cdrs(
    session: Session,
    where: CdrFilter = CdrFilter(),
    *,
    limit: int = 100,
    after: PageCursor | None = None,
    newest: bool = False,
) -> CdrPage:
    """Up to `limit` CDRs matching `where`, oldest setup first (`newest`: newest first), starting
    after the cursor `after` (which must come from a listing in the same order)."""
    if not 1 <= limit <= 10_000:
        raise InvalidQuery(f"limit {limit} is not between 1 and 10000")
    query = select(Cdr).where(*conditions(where))
    if after is not None and newest:
        query = query.where(
            or_(Cdr.setup_at < after.setup_at, and_(Cdr.setup_at == after.setup_at, Cdr.id < after.id))
        )
    elif after is not None:
        query = query.where(
            or_(Cdr.setup_at > after.setup_at, and_(Cdr.setup_at == after.setup_at, Cdr.id > after.id))
        )
    rows = list(session.scalars(query.order_by(*order(newest=newest)).limit(limit + 1)))
    if len(rows) <= limit:
        return CdrPage(rows, None)
    last = rows[limit - 1]
    return CdrPage(rows[:limit], PageCursor(last.setup_at, last.id))


def cdrs_for_call(session: Session, call_id: str) -> list[Cdr]:
    """Every CDR of A-leg Call-ID `call_id` (one per attempt and node), in attempt order."""
    query = select(Cdr).where(Cdr.call_id == call_id).order_by(Cdr.setup_at, Cdr.attempt, Cdr.id)
    return list(session.scalars(query))


class GroupBy(StrEnum):
    """What a summary groups by."""

    DAY = "day"  # UTC day of setup, 'YYYY-MM-DD'
    ACCOUNT = "account"
    DESTINATION = "destination"  # the matched rate prefix; None: unrated
    DISPOSITION = "disposition"  # None: still open
    GATEWAY = "gateway"  # None: no gateway was tried (no route); the rollups do not keep it: a scan


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """Totals of one group (and currency) of CDRs."""

    key: str | None
    currency: str | None  # None: unrated CDRs
    calls: int
    answered: int
    billable_seconds: Decimal  # answer → end, summed, ms precision
    billed_seconds: int
    cost: Decimal

    @property
    def asr(self) -> float:
        """Answer-seizure ratio: answered / calls, 0.0 … 1.0."""
        return self.answered / self.calls if self.calls else 0.0

    @property
    def acd(self) -> float:
        """Average call duration of answered calls, in seconds."""
        return float(self.billable_seconds) / self.answered if self.answered else 0.0

    @property
    def billed_minutes(self) -> Decimal:
        return Decimal(self.billed_seconds) / 60


def _group_key(session: Session, by: GroupBy) -> SQLColumnExpression[Any]:
    match by:
        case GroupBy.DAY:
            return day_expression(session.get_bind().dialect.name)
        case GroupBy.ACCOUNT:
            return Cdr.account
        case GroupBy.DESTINATION:
            return Cdr.rate_prefix
        case GroupBy.DISPOSITION:
            return Cdr.disposition
        case GroupBy.GATEWAY:
            return Cdr.gateway


def _finished(where: CdrFilter) -> list[ColumnElement[bool]]:
    # a summary covers finished calls unless the filter asks for a status
    return [*conditions(where), *([Cdr.status != CdrStatus.OPEN] if where.status is None else [])]


def summary_query(
    session: Session, by: GroupBy, where: CdrFilter = CdrFilter()
) -> Select[Any, str | None, int, int, int, int | None, Decimal | None]:
    """The aggregate SELECT over the CDRs behind `summarize` (exposed for EXPLAIN and the bench)."""
    key: Label[Any] = _group_key(session, by).label("key")
    answered = Cdr.disposition == Disposition.ANSWERED
    return (
        select(
            key,
            Cdr.currency,
            func.count(),
            func.sum(case((answered, 1), else_=0)),
            func.sum(case((answered, Cdr.billable_ms), else_=0)),
            func.sum(Cdr.billed_seconds),
            func.sum(Cdr.cost),
        )
        .where(*_finished(where))
        .group_by(key, Cdr.currency)
        .order_by(key, Cdr.currency)
    )


def rollups_answer(where: CdrFilter, by: GroupBy = GroupBy.DAY) -> bool:
    """True if the rollups can answer a summary grouped `by` under `where` (see _rollups)."""
    return (
        by is not GroupBy.GATEWAY
        and where.gateway is None
        and where.call_id is None
        and where.caller_prefix is None
        and where.callee_prefix is None
        and where.node is None
        and where.status is None
        and whole_days(where.since, where.until)
    )


def _from_rollups(session: Session, by: GroupBy, where: CdrFilter) -> Any:
    group = {
        GroupBy.DAY: ROLLUPS.c.day,
        GroupBy.ACCOUNT: func.nullif(ROLLUPS.c.account, ""),
        GroupBy.DESTINATION: func.nullif(ROLLUPS.c.rate_prefix, ""),
        GroupBy.DISPOSITION: ROLLUPS.c.disposition,
    }[by]
    found = []
    if where.since is not None:
        found.append(ROLLUPS.c.day >= day_text(where.since))
    if where.until is not None:
        found.append(ROLLUPS.c.day < day_text(where.until))
    if where.account is not None:
        found.append(ROLLUPS.c.account == where.account)
    if where.disposition is not None:
        found.append(ROLLUPS.c.disposition == where.disposition.value)
    return rollup_rows(session, group, found)


def summarize(
    session: Session, by: GroupBy, where: CdrFilter = CdrFilter(), *, use_rollups: bool = True
) -> list[SummaryRow]:
    """Calls, answered, ASR, ACD, billed minutes and cost of the finished CDRs in `where`, grouped `by`.

    Open CDRs count only when `where.status` asks for them. Filters on whole UTC days, account
    and disposition are answered from the rollups (milliseconds over any number of CDRs); other
    filters, the grouping by gateway, or `use_rollups=False`, scan the CDRs. Both give the same
    numbers.
    """
    if use_rollups and rollups_answer(where, by):
        result = _from_rollups(session, by, where)
    else:
        result = session.execute(summary_query(session, by, where))
    rows = []
    for key, currency, calls, answered, billable_ms, billed, cost in result:
        rows.append(
            SummaryRow(
                key=None if key is None else str(key),
                currency=currency or None,
                calls=int(calls),
                answered=int(answered or 0),
                billable_seconds=Decimal(int(billable_ms or 0)).scaleb(-3),
                billed_seconds=int(billed or 0),
                cost=cost if cost is not None else Decimal("0.000000"),
            )
        )
    # one order on every backend (they sort NULL differently): by key, then currency, None first
    return sorted(
        rows, key=lambda r: (r.key is not None, r.key or "", r.currency is not None, r.currency or "")
    )
