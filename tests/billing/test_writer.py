"""The writer's batch path encodes every value exactly as the CDR column types would.

The batch statements bypass SQLAlchemy's per-row parameter processing (see `_Statement`), so the
writer's own encoders must give the database the very values the types give it: otherwise a CDR
written by a batch and one written through the ORM would store different text or numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Dialect, Table, create_engine

from switchd.billing import Cdr, CdrStatus, Disposition, HangupParty
from switchd.billing._writer import _encoder

_TABLE = cast(Table, Cdr.__table__)
# engines that never connect: only their dialects are used
_DIALECTS = {
    name: create_engine(url).dialect
    for name, url in (("sqlite", "sqlite://"), ("postgresql", "postgresql+psycopg://"))
}

aware_times = st.builds(
    lambda naive, minutes: naive.replace(
        tzinfo=UTC if minutes == 0 else timezone(timedelta(minutes=minutes))
    ),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
exact_money = st.decimals(
    min_value=-(10**12), max_value=10**12, places=6, allow_nan=False, allow_infinity=False
)


def _both(column: str, dialect_name: str) -> tuple[Callable[[Any], object], Callable[[Any], object]]:
    """(the writer's encoder, the column type's own bind processor) of `column` for a dialect."""
    dialect: Dialect = _DIALECTS[dialect_name]
    kind = _TABLE.c[column].type
    processor = kind.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)
    encoder = _encoder(_TABLE, column, dialect_name)
    assert encoder is not None, column
    return encoder, processor


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("column", ["setup_at", "end_at", "updated_at"])
@given(value=aware_times)
def test_a_time_is_encoded_as_the_utc_datetime_type_would_encode_it(
    column: str, dialect: str, value: datetime
) -> None:
    encoder, processor = _both(column, dialect)
    assert encoder(value) == processor(value)
    assert encoder(value) == processor(value)  # again: the SQLite encoder remembers recent times
    same_instant = value.astimezone(timezone(timedelta(hours=5)))  # equal, and so one cache entry
    assert encoder(same_instant) == processor(same_instant) == processor(value)
    assert encoder(None) is None


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@given(value=exact_money)
def test_money_is_encoded_as_the_money_type_would_encode_it(dialect: str, value: Decimal) -> None:
    encoder, processor = _both("cost", dialect)
    encoded = encoder(value)
    assert encoded == processor(value)
    assert type(encoded) is type(processor(value))
    assert encoder(None) is None


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("value", [Decimal("0.0000001"), Decimal("NaN"), Decimal("Infinity")])
def test_money_the_money_type_refuses_is_refused_by_the_writer_too(dialect: str, value: Decimal) -> None:
    encoder, processor = _both("cost", dialect)
    with pytest.raises(ValueError, match="money value"):
        processor(value)
    with pytest.raises(ValueError, match="money value"):
        encoder(value)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    ("column", "members"),
    [("status", list(CdrStatus)), ("disposition", list(Disposition)), ("hangup_by", list(HangupParty))],
)
def test_an_enum_is_encoded_as_its_column_would_encode_it(
    column: str, members: list[Any], dialect: str
) -> None:
    encoder, processor = _both(column, dialect)
    for member in members:
        assert encoder(member) == processor(member) == member.value
