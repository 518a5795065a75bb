"""Money stays exact, times stay UTC to the millisecond, enums store their values, keys are stable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from switchd.billing import Cdr, CdrStatus, Disposition, HangupParty, cdr_key

T0 = datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC)


def _cdr(n: int, **fields: object) -> Cdr:
    values: dict[str, object] = {
        "key": cdr_key("n1", f"call-{n}", 1),
        "node": "n1",
        "call_id": f"call-{n}",
        "attempt": 1,
        "caller_raw": "sip:+15551230000@a",
        "callee_raw": "+442071234567",
        "b_attempts": 0,
        "setup_at": T0,
        "rate_plan": "default",
        "rated": False,
        "status": CdrStatus.OPEN,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return Cdr(**values)


def test_money_round_trips_exactly_and_sums_exactly(engine: Engine) -> None:
    costs = [Decimal("0.100000"), Decimal("0.200000"), Decimal("1234567890123.000001")]
    with Session(engine) as session, session.begin():
        session.add_all(_cdr(n, cost=c) for n, c in enumerate(costs))
    with Session(engine) as session:
        assert sorted(c for c in session.scalars(select(Cdr.cost)) if c is not None) == sorted(costs)
        assert session.scalar(select(func.sum(Cdr.cost))) == Decimal("1234567890123.300001")


def test_money_with_more_than_six_places_is_refused_not_rounded(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(StatementError, match="more than 6 decimal places"):
        session.add(_cdr(1, cost=Decimal("0.0000001")))
        session.flush()


def test_times_come_back_aware_in_utc_truncated_to_the_millisecond(engine: Engine) -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    with Session(engine) as session, session.begin():
        session.add(_cdr(1, setup_at=local))
    with Session(engine) as session:
        stored = session.scalars(select(Cdr.setup_at)).one()
    assert stored == T0.replace(microsecond=123000)
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)


def test_a_naive_time_is_refused(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(StatementError, match="naive datetime"):
        session.add(_cdr(1, setup_at=datetime(2026, 1, 1)))
        session.flush()


def test_enums_are_stored_as_their_values(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add(
            _cdr(
                1, disposition=Disposition.NO_ANSWER, hangup_by=HangupParty.CALLER, status=CdrStatus.RECOVERED
            )
        )
    with engine.connect() as conn:
        row = conn.execute(text("SELECT disposition, hangup_by, status FROM cdrs")).one()
    assert tuple(row) == ("NO_ANSWER", "caller", "recovered")


def test_the_idempotency_key_is_unique_per_node_call_and_attempt(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add(_cdr(1))
    with Session(engine) as session, pytest.raises(Exception, match="(?i)unique|duplicate"):
        session.add(_cdr(1, id=None))
        session.flush()


def test_the_idempotency_key_depends_on_node_call_id_and_attempt_only() -> None:
    key = cdr_key("n1", "abc@host", 1)
    assert key == cdr_key("n1", "abc@host", 1)
    assert (
        len({key, cdr_key("n2", "abc@host", 1), cdr_key("n1", "abc@host", 2), cdr_key("n1", "abd@host", 1)})
        == 4
    )
    # the separator keeps ("a", "b\x00c") and ("a\x00b", "c") apart
    assert cdr_key("a", "b", 1) != cdr_key("a\x00b", "", 1)
