"""The BillingStore: durable opens, group commit, rating at close, idempotency, rate reloads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from switchd.billing import (
    BillingStore,
    BillingStoreConfig,
    Cdr,
    CdrAnswer,
    CdrClose,
    CdrOpen,
    CdrProgress,
    CdrStatus,
    Disposition,
    GroupBy,
    HangupParty,
    RateDeck,
    RateDeckError,
    Tariff,
    UnknownCdr,
    answer_cdr,
    close_cdr,
    disposition_for,
    open_cdr,
    open_engine,
    progress_cdr,
    reload_rates,
    set_rates,
    store_status,
    summarize,
)

from .factories import store_config

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Engine:
    return open_engine(db_url)


def _cdrs(db: Engine) -> list[Cdr]:
    with Session(db) as session:
        return list(session.scalars(select(Cdr).order_by(Cdr.id)))


def _opened(call_id: str, callee: str = "011442071234567", **fields: object) -> CdrOpen:
    values: dict[str, object] = {
        "call_id": call_id,
        "caller": "sip:4155550100@a.example",
        "callee": callee,
        "setup_at": T0,
        "account": "acme",
        "a_from_tag": "f1",
    }
    return CdrOpen(**{**values, **fields})  # type: ignore[arg-type]


async def test_an_open_cdr_is_committed_before_open_cdr_returns(
    store: BillingStoreConfig, db: Engine
) -> None:
    await open_cdr(_opened("c1"))
    [cdr] = _cdrs(db)  # read through another connection: committed
    assert (cdr.call_id, cdr.status, cdr.node, cdr.account) == ("c1", CdrStatus.OPEN, "n1", "acme")
    assert (cdr.caller_raw, cdr.caller) == ("sip:4155550100@a.example", "+14155550100")
    assert (cdr.callee_raw, cdr.callee) == ("011442071234567", "+442071234567")
    assert cdr.setup_at == T0 and cdr.end_at is None and cdr.rated is False


async def test_a_full_call_is_closed_and_rated_with_every_step_recorded(
    store: BillingStoreConfig, db: Engine
) -> None:
    await open_cdr(_opened("c1", callee="+447700900123"))
    await progress_cdr(
        CdrProgress(
            call_id="c1",
            at=T0 + timedelta(seconds=1),
            b_call_id="b1",
            gateway="gw1",
            route_id="uk",
            route_prefix="44",
            b_attempts=1,
        )
    )
    await answer_cdr(CdrAnswer(call_id="c1", at=T0 + timedelta(seconds=5), a_to_tag="t1"))
    await close_cdr(
        CdrClose(
            call_id="c1",
            end_at=T0 + timedelta(seconds=66.2),
            disposition=Disposition.ANSWERED,
            sip_code=200,
            sip_reason="OK",
            hangup_cause="bye",
            hangup_by=HangupParty.CALLEE,
        )
    )
    [cdr] = _cdrs(db)
    assert cdr.status is CdrStatus.CLOSED and cdr.disposition is Disposition.ANSWERED
    assert (cdr.b_call_id, cdr.gateway, cdr.route_id, cdr.route_prefix, cdr.b_attempts) == (
        "b1",
        "gw1",
        "uk",
        "44",
        1,
    )
    assert (cdr.a_to_tag, cdr.hangup_by, cdr.sip_code) == ("t1", HangupParty.CALLEE, 200)
    assert (cdr.progress_at, cdr.answer_at) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=5))
    assert (cdr.duration_ms, cdr.billable_ms) == (66_200, 61_200)
    # the docs' worked example: 447, 0.15/min, connect fee 0.01, 30/6 → 66 s, 0.175000
    assert (cdr.rated, cdr.rate_plan, cdr.rate_prefix) == (True, "default", "447")
    assert (cdr.rate_per_minute, cdr.rate_connect_fee) == (Decimal("0.15"), Decimal("0.01"))
    assert (cdr.rate_first_increment, cdr.rate_next_increment) == (30, 6)
    assert (cdr.billed_seconds, cdr.cost, cdr.currency) == (66, Decimal("0.175000"), "USD")


async def test_an_unanswered_call_costs_nothing_and_an_unknown_destination_is_written_unrated(
    store: BillingStoreConfig, db: Engine
) -> None:
    await open_cdr(_opened("busy", callee="+442071234567"))
    await close_cdr(
        CdrClose(
            call_id="busy", end_at=T0 + timedelta(seconds=3), disposition=disposition_for(486), sip_code=486
        )
    )
    await open_cdr(_opened("nowhere", callee="+8613800138000"))
    await answer_cdr(CdrAnswer(call_id="nowhere", at=T0))
    await close_cdr(
        CdrClose(call_id="nowhere", end_at=T0 + timedelta(seconds=30), disposition=Disposition.ANSWERED)
    )
    busy, nowhere = _cdrs(db)
    assert (busy.disposition, busy.rated, busy.billed_seconds, busy.cost, busy.billable_ms) == (
        Disposition.BUSY,
        True,
        0,
        Decimal(0),
        None,
    )
    assert (nowhere.status, nowhere.rated, nowhere.cost, nowhere.billable_ms) == (
        CdrStatus.CLOSED,
        False,
        None,
        30_000,
    )


async def test_writes_arriving_together_are_committed_in_one_transaction(
    store: BillingStoreConfig, db: Engine
) -> None:
    before = (await store_status()).batches
    async with trio.open_nursery() as nursery:
        for n in range(200):
            nursery.start_soon(open_cdr, _opened(f"c{n}"))
    status = await store_status()
    assert len(_cdrs(db)) == 200
    assert status.batches - before <= 2  # the first open may go alone, the rest wait for it together
    assert status.written_ops >= 200


async def test_the_store_keeps_taking_calls_while_a_batch_is_being_committed(
    store: BillingStoreConfig, db: Engine
) -> None:
    entered, release = threading.Event(), threading.Event()

    def hold(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO cdrs") and not release.is_set():
            entered.set()
            release.wait(10)

    event.listen(Engine, "before_cursor_execute", hold)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_cdr, _opened("c1"))
            await trio.to_thread.run_sync(entered.wait)  # c1's transaction hangs in the writer
            assert (await store_status()).written_ops == 0  # answered meanwhile
            nursery.start_soon(open_cdr, _opened("c2"))  # taken into the next batch
            await trio.testing.wait_all_tasks_blocked()
            assert _cdrs(db) == []
            release.set()
    finally:
        event.remove(Engine, "before_cursor_execute", hold)
    assert [c.call_id for c in _cdrs(db)] == ["c1", "c2"]
    assert (await store_status()).batches == 2


async def test_a_replayed_open_or_close_changes_nothing(store: BillingStoreConfig, db: Engine) -> None:
    await open_cdr(_opened("c1"))
    await open_cdr(_opened("c1", account="someone-else"))  # same node, Call-ID, attempt: same key
    close = CdrClose(call_id="c1", end_at=T0 + timedelta(seconds=9), disposition=Disposition.NO_ANSWER)
    await close_cdr(close)
    await close_cdr(
        CdrClose(call_id="c1", end_at=T0 + timedelta(hours=9), disposition=Disposition.ANSWERED, answer_at=T0)
    )
    [cdr] = _cdrs(db)
    assert (cdr.account, cdr.disposition, cdr.end_at, cdr.answer_at) == (
        "acme",
        Disposition.NO_ANSWER,
        T0 + timedelta(seconds=9),
        None,
    )
    # a repeated open after the close, then a repeated close: still one call in the summaries
    await open_cdr(_opened("c1"))
    await close_cdr(close)
    with Session(db) as session:
        assert [(r.key, r.calls) for r in summarize(session, GroupBy.DISPOSITION)] == [("NO_ANSWER", 1)]


async def test_a_second_attempt_of_a_call_is_a_cdr_of_its_own(store: BillingStoreConfig, db: Engine) -> None:
    await open_cdr(_opened("c1"))
    await open_cdr(_opened("c1", attempt=2))
    assert [c.attempt for c in _cdrs(db)] == [1, 2]


async def test_closing_a_call_that_was_never_opened_fails_only_that_close(
    store: BillingStoreConfig, db: Engine
) -> None:
    async def open_and_close() -> None:
        await open_cdr(_opened("real"))
        await close_cdr(CdrClose(call_id="real", end_at=T0, disposition=Disposition.CANCELLED))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(open_and_close)
        with pytest.raises(UnknownCdr, match="never opened"):
            await close_cdr(CdrClose(call_id="ghost", end_at=T0, disposition=Disposition.FAILED))
    [cdr] = _cdrs(db)
    assert (cdr.call_id, cdr.status) == ("real", CdrStatus.CLOSED)


async def test_reloading_rates_reprices_the_next_close_and_a_bad_deck_changes_nothing(
    store: BillingStoreConfig, db: Engine, tmp_path: Path
) -> None:
    deck = tmp_path / "new.csv"
    deck.write_text("prefix,price_per_minute,first_increment,next_increment\n44,1.20,1,1\n")
    assert await reload_rates(deck) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("prefix,price_per_minute\n44,0.01\n45,lots\n")
    with pytest.raises(RateDeckError, match=r"bad.csv:3"):
        await reload_rates(bad)
    await open_cdr(_opened("c1", callee="+442071234567"))
    await close_cdr(
        CdrClose(
            call_id="c1", end_at=T0 + timedelta(seconds=10), answer_at=T0, disposition=Disposition.ANSWERED
        )
    )
    [cdr] = _cdrs(db)
    assert (cdr.rate_prefix, cdr.billed_seconds, cdr.cost) == ("44", 10, Decimal("0.200000"))


async def test_set_rates_adds_a_plan_that_calls_can_name(store: BillingStoreConfig, db: Engine) -> None:
    gold = RateDeck("gold", (Tariff(prefix="44", price_per_minute=Decimal("0.60")),))
    assert await set_rates(gold) == 1
    assert (await store_status()).plans == ("default", "gold")
    await open_cdr(_opened("c1", rate_plan="gold"))
    await close_cdr(
        CdrClose(
            call_id="c1", end_at=T0 + timedelta(seconds=30), answer_at=T0, disposition=Disposition.ANSWERED
        )
    )
    [cdr] = _cdrs(db)
    assert (cdr.rate_plan, cdr.cost) == ("gold", Decimal("0.600000"))


async def test_a_bad_configured_deck_fails_the_start(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<rate-plan><rate prefix='1'/></rate-plan>")
    async with trio.open_nursery() as nursery:
        with pytest.raises(RateDeckError, match="missing price_per_minute"):
            await nursery.start(partial(BillingStore.start_link, store_config(db_url, tmp_path, rate_deck=bad)))


def test_requests_refuse_naive_times_and_impossible_values() -> None:
    with pytest.raises(ValueError, match="naive"):
        CdrOpen(call_id="c", caller="1", callee="2", setup_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="attempt 0"):
        CdrProgress(call_id="c", at=T0, attempt=0)
    with pytest.raises(ValueError, match="sip_code 99"):
        CdrClose(call_id="c", end_at=T0, disposition=Disposition.FAILED, sip_code=99)


@pytest.mark.parametrize(
    ("status", "disposition"),
    [
        (200, "ANSWERED"),
        (486, "BUSY"),
        (600, "BUSY"),
        (480, "NO_ANSWER"),
        (408, "NO_ANSWER"),
        (487, "CANCELLED"),
        (503, "CONGESTION"),
        (403, "REJECTED"),
        (404, "NO_ROUTE"),
        (500, "FAILED"),
    ],
)
def test_a_final_sip_status_maps_to_its_disposition(status: int, disposition: str) -> None:
    assert disposition_for(status) == Disposition(disposition)


async def test_the_store_reports_its_state(store: BillingStoreConfig, db: Engine) -> None:
    status = await store_status()
    assert (status.connected, status.spooling, status.spooled_ops, status.recovered) == (True, False, 0, 0)
    with Session(db) as session:
        assert session.scalar(select(func.count()).select_from(Cdr)) == 0


async def test_overlong_sip_values_are_cut_to_fit_and_the_call_is_still_billed(
    store: BillingStoreConfig, db: Engine
) -> None:
    call_id = "x" * 1000 + "@host"  # RFC 3261 sets no limit on a Call-ID
    caller = "sip:" + "a" * 600 + "@example.com"
    await open_cdr(_opened(call_id, caller=caller, a_from_tag="t" * 300))
    await close_cdr(
        CdrClose(
            call_id=call_id,
            end_at=T0 + timedelta(seconds=5),
            disposition=Disposition.BUSY,
            sip_reason="r" * 999,
        )
    )
    [cdr] = _cdrs(db)
    assert (len(cdr.call_id), len(cdr.caller_raw), len(cdr.a_from_tag or ""), len(cdr.sip_reason or "")) == (
        255,
        255,
        128,
        255,
    )
    assert cdr.call_id == call_id[:255] and cdr.status is CdrStatus.CLOSED and cdr.caller is None


async def test_only_an_answered_disposition_is_billed_even_when_an_answer_time_is_known(
    store: BillingStoreConfig, db: Engine
) -> None:
    gold = RateDeck("gold", (Tariff(prefix="44", price_per_minute=Decimal("0.60"), connect_fee=Decimal("0.05")),),
                    bill_unanswered=True)
    await set_rates(gold)
    for call_id, plan in (("unconfirmed", None), ("dropped", None), ("attempt-fee", "gold")):
        await open_cdr(_opened(call_id, callee="+442071234567", rate_plan=plan))
        await answer_cdr(CdrAnswer(call_id=call_id, at=T0 + timedelta(seconds=1)))  # a 200 OK went out
    # the caller never ACKed the 200; the caller's connection was lost before its ACK: FAILED
    await close_cdr(CdrClose(call_id="unconfirmed", end_at=T0 + timedelta(seconds=33),
                             disposition=Disposition.FAILED, sip_code=200))
    await close_cdr(CdrClose(call_id="dropped", end_at=T0 + timedelta(seconds=1.002),
                             disposition=Disposition.FAILED, sip_code=200))
    await close_cdr(CdrClose(call_id="attempt-fee", end_at=T0 + timedelta(seconds=33),
                             disposition=Disposition.FAILED, sip_code=200))
    rows = {c.call_id: c for c in _cdrs(db)}
    for call_id in ("unconfirmed", "dropped"):
        cdr = rows[call_id]
        assert cdr.answer_at == T0 + timedelta(seconds=1)  # recorded, but not billed
        assert (cdr.billable_ms, cdr.billed_seconds, cdr.cost) == (None, 0, Decimal(0)), call_id
    assert (rows["attempt-fee"].billed_seconds, rows["attempt-fee"].cost) == (0, Decimal("0.050000"))
    with Session(db) as session:
        [failed] = summarize(session, GroupBy.DISPOSITION)
        assert (failed.key, failed.calls, failed.answered, failed.billable_seconds) == ("FAILED", 3, 0, Decimal(0))
