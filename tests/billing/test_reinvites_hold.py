"""The CDR's re-INVITE count and hold time: stored on close, never billed, unknown where nobody knew them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from switchd.billing import (
    BillingStoreConfig,
    Cdr,
    CdrAnswer,
    CdrClose,
    CdrOpen,
    CdrStatus,
    Disposition,
    NumberingPlan,
    answer_cdr,
    close_cdr,
    open_cdr,
    open_engine,
)
from switchd.billing._ops import decode_op, encode_op, op_for
from switchd.billing._writer import Writer

T0 = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


def _cdrs(engine: Engine) -> dict[str, Cdr]:
    with Session(engine) as session:
        return {cdr.call_id: cdr for cdr in session.scalars(select(Cdr))}


def _close(call_id: str, **fields: int) -> CdrClose:
    return CdrClose(call_id=call_id, end_at=T0 + timedelta(seconds=66.2), disposition=Disposition.ANSWERED,
                    sip_code=200, **fields)  # type: ignore[arg-type]


async def test_a_close_stores_the_reinvites_and_hold_time_and_the_call_is_billed_as_without_them(
        store: BillingStoreConfig, db_url: str) -> None:
    for call_id, reinvites, hold_ms in (("held", 2, 20_000), ("plain", 0, 0)):
        await open_cdr(CdrOpen(call_id=call_id, caller="4155550100", callee="+447700900123", setup_at=T0))
        await answer_cdr(CdrAnswer(call_id=call_id, at=T0 + timedelta(seconds=5)))
        await close_cdr(_close(call_id, reinvites=reinvites, hold_ms=hold_ms))
    engine = open_engine(db_url)
    try:
        cdrs = _cdrs(engine)
    finally:
        engine.dispose()
    held, plain = cdrs["held"], cdrs["plain"]
    assert (held.reinvites, held.hold_ms, plain.reinvites, plain.hold_ms) == (2, 20_000, 0, 0)
    assert (held.billable_ms, held.billed_seconds, held.cost) == (plain.billable_ms, plain.billed_seconds, plain.cost)
    assert held.billable_ms == 61_200


def test_a_close_spooled_before_the_columns_existed_is_written_with_them_unknown(engine: Engine) -> None:
    ops = [op_for(step, node="n1", default_plan="default", numbering=NumberingPlan(), now=T0)
           for step in (CdrOpen(call_id="old", caller="4155550100", callee="4155550123", setup_at=T0),
                        _close("old", reinvites=1, hold_ms=5))]
    line = json.loads(encode_op(ops[1]))
    del line["v"]["reinvites"], line["v"]["hold_ms"]  # as an older switchd wrote it
    old_close = decode_op(json.dumps(line))
    assert (old_close.values["reinvites"], old_close.values["hold_ms"]) == (None, None)
    assert decode_op(encode_op(ops[1])) == ops[1]
    assert Writer(engine).apply([ops[0], old_close]) == [None, None]
    cdr = _cdrs(engine)["old"]
    assert (cdr.status, cdr.reinvites, cdr.hold_ms) == (CdrStatus.CLOSED, None, None)


@pytest.mark.parametrize("field", ["reinvites", "hold_ms"])
def test_a_close_refuses_a_negative_count(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        _close("c", **{field: -1})
