"""Column types that keep money exact and times in UTC on both SQLite and PostgreSQL.

* `Money` is NUMERIC(20, 6) on PostgreSQL. SQLite has no exact decimal type (NUMERIC affinity
  turns '0.1' into a binary float), so there it is stored as a 64-bit count of millionths: sums in
  SQL stay exact integers and come back as `Decimal` (range ±9,223,372,036,854.775807, against
  ±99,999,999,999,999.999999 on PostgreSQL). Either way Python sees `Decimal` with six
  places, and a value with more places is refused rather than silently rounded.
* `UtcDateTime` is TIMESTAMP WITH TIME ZONE on PostgreSQL and ISO-8601 text in UTC on SQLite (it
  sorts and compares as time does). Only timezone-aware datetimes are accepted; they are stored
  in UTC truncated to the millisecond and always come back aware, in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

MICRO = Decimal("0.000001")
_SCALE = 6


def to_money(value: Decimal | int | str) -> Decimal:
    """`value` as a Decimal with exactly six places; ValueError if it has more or is not finite."""
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"money value {value!r} is not a finite number")
    exact = amount.quantize(MICRO)
    if exact != amount:
        raise ValueError(f"money value {value!r} has more than {_SCALE} decimal places")
    return exact


def to_utc_ms(value: datetime) -> datetime:
    """`value` in UTC, truncated to whole milliseconds; ValueError for a naive datetime."""
    if value.tzinfo is UTC and value.microsecond % 1000 == 0:
        return value  # the common case: already UTC to the millisecond
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()!r}: billing times must be timezone-aware")
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


class Money(TypeDecorator[Decimal]):
    """An amount of money: exact Decimal with six places (see the module docstring)."""

    impl = Numeric(20, _SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, _SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> object:
        if value is None:
            return None
        exact = to_money(value)
        if dialect.name == "sqlite":
            micros = int(exact.scaleb(_SCALE))
            if not -(2**63) <= micros < 2**63:
                raise ValueError(f"money value {value} is beyond SQLite's range (±9.2e12)")
            return micros
        return exact

    def process_result_value(self, value: object, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-_SCALE).quantize(MICRO)  # type: ignore[call-overload]
        return Decimal(value).quantize(MICRO)  # type: ignore[arg-type]


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time, aware and in UTC, millisecond precision (see the module docstring)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = to_utc_ms(value)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
