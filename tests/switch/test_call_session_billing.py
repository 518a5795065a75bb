"""CallSession with the real BillingStore on SQLite: the CDR a whole call writes, rated."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
from sqlalchemy import select
from sqlalchemy.orm import Session
from trio.testing import MockClock

from switchd.billing import (
    BillingStoreConfig,
    Cdr,
    CdrStatus,
    Disposition,
    HangupParty,
    billing_child_spec,
    open_engine,
)

from ._call_harness import answer, bench, caller_hangs_up, ring_on

RATES = Path(__file__).resolve().parents[2] / "config" / "rates.csv"


@pytest.fixture
def patient_clock() -> MockClock:
    """A MockClock that jumps only after 0.5 s of real idleness.

    The BillingStore writes in a worker thread, and while it does the trio loop is idle: an autojump
    clock with no threshold would jump virtual time during every write. The jumps this test needs
    (the 30 s hold) happen when nothing runs at all.
    """
    return MockClock(autojump_threshold=0.5)


async def test_an_answered_call_writes_one_closed_cdr_billed_for_the_virtual_hold(
        patient_clock: MockClock, tmp_path: Path) -> None:
    config = BillingStoreConfig(url=f"sqlite:///{tmp_path / 'billing.db'}", node="test",
                                spool_dir=tmp_path / "spool", rate_deck=RATES)
    async with bench(billing=lambda queue: billing_child_spec(config, queue=queue)) as b:
        phone, pid = await b.call("011442071234567")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await ring_on(b, phone, "gw1")
        await answer(gw1, phone, invite)
        answered = trio.current_time()
        await trio.sleep(30.0)
        await caller_hangs_up(gw1, phone)
        assert await b.exited(pid) == "normal"
        assert trio.current_time() == answered + 30.0

    engine = open_engine(config.url)
    try:
        with Session(engine) as session:
            [cdr] = session.scalars(select(Cdr)).all()
    finally:
        engine.dispose()
    assert (cdr.call_id, cdr.status) == (phone.call_id, CdrStatus.CLOSED)
    assert cdr.disposition is Disposition.ANSWERED
    assert (cdr.callee, cdr.gateway, cdr.route_id) == ("+442071234567", "gw1", "intl")
    assert cdr.b_call_id == invite.call_id
    assert (cdr.hangup_by, cdr.sip_code, cdr.b_attempts) == (HangupParty.CALLER, 200, 1)
    assert cdr.progress_at is not None and cdr.answer_at is not None
    assert cdr.billable_ms == 30_000 and cdr.billed_seconds == 30
    assert (cdr.rate_prefix, cdr.cost) == ("4420", Decimal("0.006000"))  # 0.012/min, 30/6 increments
