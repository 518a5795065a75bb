"""Open CDRs left by a dead daemon are recovered at the next start, and only then."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from switchd.billing import (
    BillingStore,
    Cdr,
    CdrAnswer,
    CdrClose,
    CdrOpen,
    CdrProgress,
    CdrStatus,
    Disposition,
    GroupBy,
    HangupParty,
    NodeRun,
    answer_cdr,
    billing_child_spec,
    close_cdr,
    open_cdr,
    open_engine,
    progress_cdr,
    store_status,
    summarize,
)
from switchd.otp import ServerExited, Supervisor, call, whereis

from .factories import cdr_row, eventually, insert_cdrs, store_config, until_connected


def _rows(url: str) -> dict[str, Cdr]:
    engine = open_engine(url)
    try:
        with Session(engine) as session:
            return {c.call_id: c for c in session.scalars(select(Cdr))}
    finally:
        engine.dispose()


def test_open_cdrs_of_a_dead_run_are_closed_as_recovered_at_the_last_known_time(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    async def first_run() -> None:  # then the daemon dies: nothing closes the calls
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(BillingStore.start_link, store_config(db_url, tmp_path), name="billing"))
            callee = "+14155550123"  # 1415: 0.008/min, 1/1
            await open_cdr(CdrOpen(call_id="ringing", caller="4155550100", callee=callee, setup_at=setup))
            await open_cdr(CdrOpen(call_id="talking", caller="4155550100", callee=callee, setup_at=setup))
            await progress_cdr(CdrProgress(call_id="talking", at=setup + timedelta(seconds=2)))
            await answer_cdr(CdrAnswer(call_id="talking", at=setup + timedelta(seconds=5)))
            await open_cdr(CdrOpen(call_id="done", caller="4155550100", callee=callee, setup_at=setup))
            await close_cdr(
                CdrClose(
                    call_id="done", end_at=setup + timedelta(seconds=1), disposition=Disposition.CANCELLED
                )
            )
            await open_cdr(CdrOpen(call_id="other-node", caller="1", callee="2", setup_at=setup))
            nursery.cancel_scope.cancel()

    async def second_run() -> int:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(BillingStore.start_link, store_config(db_url, tmp_path), name="billing"))
            recovered = (await store_status()).recovered
            nursery.cancel_scope.cancel()
        return recovered

    trio.run(first_run)
    # the other node's open CDR is not ours to recover
    engine = open_engine(db_url)
    with Session(engine) as session, session.begin():
        session.scalars(select(Cdr).where(Cdr.call_id == "other-node")).one().node = "n2"
    engine.dispose()
    before = _rows(db_url)
    with caplog.at_level(logging.WARNING, logger="switchd.billing"):
        assert trio.run(second_run) == 2
    after = _rows(db_url)

    ringing, talking = after["ringing"], after["talking"]
    assert ringing.status is CdrStatus.RECOVERED and ringing.disposition is Disposition.FAILED
    assert ringing.end_at == before["ringing"].updated_at  # last known: when its open was written
    assert (ringing.hangup_cause, ringing.hangup_by, ringing.billed_seconds, ringing.rated) == (
        "recovered",
        HangupParty.SWITCH,
        0,
        True,
    )
    assert talking.status is CdrStatus.RECOVERED and talking.disposition is Disposition.ANSWERED
    assert talking.end_at == before["talking"].updated_at  # when its answer was written
    assert talking.answer_at is not None and talking.end_at is not None
    assert talking.billable_ms == (talking.end_at - talking.answer_at) // timedelta(milliseconds=1)
    assert talking.rated and talking.billed_seconds == -(-(talking.billable_ms or 0) // 1000)
    assert after["done"].status is CdrStatus.CLOSED and after["done"].updated_at == before["done"].updated_at
    assert after["other-node"].status is CdrStatus.OPEN
    assert "recovered 2 open CDR(s) of node n1" in caplog.text
    engine = open_engine(db_url)
    with Session(engine) as session:
        assert summarize(session, GroupBy.DISPOSITION) == summarize(
            session, GroupBy.DISPOSITION, use_rollups=False
        )
        assert sum(r.calls for r in summarize(session, GroupBy.DAY)) == 3  # done + the two recovered
    engine.dispose()


async def test_a_store_restarted_by_its_supervisor_leaves_calls_in_flight_open(
    db_url: str, tmp_path: Path
) -> None:
    setup = datetime.now(UTC)
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [billing_child_spec(store_config(db_url, tmp_path))])
        await open_cdr(CdrOpen(call_id="live", caller="4155550100", callee="+14155550123", setup_at=setup))
        first = whereis("billing")
        with pytest.raises(ServerExited):
            await call("billing", "not a billing request")  # the store crashes; the supervisor restarts it
        await trio.testing.wait_all_tasks_blocked()
        assert whereis("billing") not in (None, first)
        assert (await store_status()).recovered == 0
        await close_cdr(
            CdrClose(
                call_id="live",
                end_at=setup + timedelta(seconds=3),
                answer_at=setup,
                disposition=Disposition.ANSWERED,
            )
        )
        nursery.cancel_scope.cancel()
    live = _rows(db_url)["live"]
    assert (live.status, live.billable_ms, live.billed_seconds) == (CdrStatus.CLOSED, 3000, 3)


async def test_calls_of_this_run_spooled_while_the_database_was_down_at_start_are_not_recovered(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    directory = tmp_path / "db"
    url = f"sqlite:///{directory / 'billing.db'}"
    setup = datetime.now(UTC)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, store_config(url, tmp_path), name="billing"))
        assert (await store_status()).spooling  # no database yet
        await open_cdr(CdrOpen(call_id="live", caller="4155550100", callee="+14155550123", setup_at=setup))
        directory.mkdir()
        mock_clock.jump(1.0)  # the store's retry: migrate, replay the open, then recover the previous run's
        status = await until_connected()
        assert (status.spooling, status.recovered) == (False, 0)
        await close_cdr(
            CdrClose(
                call_id="live",
                end_at=setup + timedelta(seconds=2),
                answer_at=setup,
                disposition=Disposition.ANSWERED,
            )
        )
        nursery.cancel_scope.cancel()
    live = _rows(url)["live"]
    assert (live.status, live.billable_ms) == (CdrStatus.CLOSED, 2000)


def _last_beats(url: str) -> dict[str, datetime]:
    """node → the last heartbeat of its latest run."""
    engine = open_engine(url)
    try:
        with Session(engine) as session:
            runs = session.scalars(select(NodeRun).order_by(NodeRun.run_started)).all()
            return {run.node: run.last_beat for run in runs}
    finally:
        engine.dispose()


def test_a_call_up_at_a_crash_is_billed_to_the_last_heartbeat_and_keeps_its_sip_code(
    db_url: str, tmp_path: Path
) -> None:
    answer = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    config = store_config(db_url, tmp_path, heartbeat_interval=0.02)

    async def first_run() -> None:  # the call is up when the daemon dies; the store beats meanwhile
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(BillingStore.start_link, config, name="billing"))
            await open_cdr(CdrOpen(call_id="talking", caller="4155550100", callee="+14155550123",
                                   setup_at=answer - timedelta(seconds=3)))
            await answer_cdr(CdrAnswer(call_id="talking", at=answer))
            written = _rows(db_url)["talking"].updated_at
            await eventually(lambda: _last_beats(db_url).get("n1", written) > written, "a beat after the answer")
            nursery.cancel_scope.cancel()

    async def second_run() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(BillingStore.start_link, config, name="billing"))
            assert (await store_status()).recovered == 1
            nursery.cancel_scope.cancel()

    trio.run(first_run)
    before = _rows(db_url)["talking"]
    beat = _last_beats(db_url)["n1"]
    trio.run(second_run)
    talking = _rows(db_url)["talking"]
    assert (talking.status, talking.disposition, talking.sip_code) == (
        CdrStatus.RECOVERED,
        Disposition.ANSWERED,
        200,
    )
    assert talking.end_at == beat > before.updated_at  # the run's last beat, not its last write
    assert talking.billable_ms == (beat - answer) // timedelta(milliseconds=1)


async def test_a_real_close_after_recovery_replaces_the_recovered_one_and_corrects_the_rollups(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    setup = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    insert_cdrs(  # an earlier run died with this call answered (its close still in a spool, say)
        engine,
        [cdr_row(1, setup_at=setup, status=CdrStatus.OPEN, end_at=None, duration_ms=None, billable_ms=None,
                 disposition=None, billed_seconds=None, cost=None, currency=None, rated=False, rate_prefix=None,
                 sip_code=None, sip_reason=None, callee="+14155550123")],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, store_config(db_url, tmp_path), name="billing"))
        assert (await store_status()).recovered == 1
        assert _rows(db_url)["call-1"].status is CdrStatus.RECOVERED
        answered = setup + timedelta(seconds=2)  # the row's answer time
        await close_cdr(CdrClose(call_id="call-1", end_at=answered + timedelta(seconds=90),
                                 disposition=Disposition.ANSWERED, sip_code=200, hangup_cause="bye",
                                 hangup_by=HangupParty.CALLER))
        await close_cdr(CdrClose(call_id="call-1", end_at=answered + timedelta(hours=1),
                                 disposition=Disposition.ANSWERED))  # a replay of a real close: no-op
        nursery.cancel_scope.cancel()
    cdr = _rows(db_url)["call-1"]
    assert (cdr.status, cdr.hangup_cause, cdr.billable_ms, cdr.billed_seconds) == (
        CdrStatus.CLOSED, "bye", 90_000, 90)
    with Session(engine) as session:
        by_disposition = summarize(session, GroupBy.DISPOSITION)
        assert by_disposition == summarize(session, GroupBy.DISPOSITION, use_rollups=False)
        assert [(r.key, r.calls, r.billed_seconds) for r in by_disposition] == [("ANSWERED", 1, 90)]
