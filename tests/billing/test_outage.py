"""A database outage loses no CDR and duplicates none: spool, replay, exact counts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from switchd.billing import (
    BillingStore,
    BillingStoreConfig,
    Cdr,
    CdrClose,
    CdrOpen,
    CdrStatus,
    Disposition,
    GroupBy,
    close_cdr,
    open_cdr,
    open_engine,
    store_status,
    summarize,
)
from switchd.otp import stop

from .conftest import PgCluster
from .factories import store_config

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
class Breaker:
    """Makes every SQL statement of every engine fail while `broken` (a database that errors)."""

    def __init__(self) -> None:
        self.broken = False

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.broken:
            raise OperationalError(statement, None, Exception("server closed the connection (injected)"))


@pytest.fixture
def breaker() -> Iterator[Breaker]:
    breaker = Breaker()
    event.listen(Engine, "before_cursor_execute", breaker)
    yield breaker
    event.remove(Engine, "before_cursor_execute", breaker)


def _config(url: str, tmp_path: Path) -> BillingStoreConfig:
    return store_config(url, tmp_path, retry_interval=1.0)


def _open(n: int) -> CdrOpen:
    return CdrOpen(call_id=f"c{n}", caller="4155550100", callee="+442071234567", setup_at=T0)


def _close(n: int) -> CdrClose:
    return CdrClose(
        call_id=f"c{n}",
        end_at=T0 + timedelta(seconds=60),
        answer_at=T0,
        disposition=Disposition.ANSWERED,
        sip_code=200,
    )


async def _call(n: int) -> None:
    await open_cdr(_open(n))
    await close_cdr(_close(n))


async def _calls(numbers: range) -> None:
    async with trio.open_nursery() as nursery:
        for n in numbers:
            nursery.start_soon(_call, n)


def _summary(url: str) -> tuple[int, int, set[CdrStatus], set[str]]:
    """(CDRs, distinct keys, statuses, costs as text) of the database."""
    engine = open_engine(url)
    try:
        with Session(engine) as session:
            count = session.scalar(select(func.count()).select_from(Cdr)) or 0
            keys = session.scalar(select(func.count(func.distinct(Cdr.key)))) or 0
            statuses = set(session.scalars(select(Cdr.status).distinct()))
            costs = {str(c) for c in session.scalars(select(Cdr.cost).distinct())}
            # the rollups the store kept through outage and replays agree with the CDRs themselves
            assert summarize(session, GroupBy.DAY) == summarize(session, GroupBy.DAY, use_rollups=False)
    finally:
        engine.dispose()
    return count, keys, statuses, costs


async def _retry_due(clock: trio.testing.MockClock) -> None:
    """Let the store's retry timer (1 s) fire and its reconnect start, in virtual time."""
    clock.jump(1.0)
    await trio.testing.wait_all_tasks_blocked()


async def test_a_failing_database_spools_and_replays_every_cdr_exactly_once(
    db_url: str, tmp_path: Path, breaker: Breaker, mock_clock: trio.testing.MockClock
) -> None:
    config = _config(db_url, tmp_path)
    spool = config.spool_dir / "n1.jsonl"
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        await _calls(range(10))  # before the outage
        for n in range(10, 20):
            await open_cdr(_open(n))  # opened before, closed during the outage
        breaker.broken = True
        async with trio.open_nursery() as calls:
            calls.start_soon(_calls, range(20, 30))  # entirely during the outage
            for n in range(10, 20):
                calls.start_soon(close_cdr, _close(n))
        status = await store_status()
        assert (status.spooling, status.connected, status.spooled_ops) == (True, False, 30)
        saved = spool.read_bytes()

        await _retry_due(mock_clock)  # still broken: the retry fails, the store keeps spooling
        assert (await store_status()).spooling
        breaker.broken = False
        await _retry_due(mock_clock)
        status = await store_status()
        assert (status.spooling, status.connected, status.spooled_ops) == (False, True, 0)
        assert not spool.exists()
        assert _summary(db_url) == (30, 30, {CdrStatus.CLOSED}, {"0.012000"})

        # a crash between the replay's commit and the spool's removal replays it again: harmless
        await stop(pid)
        spool.write_bytes(saved)
        await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        assert _summary(db_url) == (30, 30, {CdrStatus.CLOSED}, {"0.012000"})
        assert not spool.exists()
        await _calls(range(30, 35))  # and the store writes to the database again
        assert _summary(db_url)[:2] == (35, 35)
        nursery.cancel_scope.cancel()


async def test_a_database_unreachable_at_start_is_spooled_until_it_appears(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    directory = tmp_path / "not-yet"
    url = f"sqlite:///{directory / 'billing.db'}"
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, _config(url, tmp_path), name="billing"))
        assert (await store_status()).spooling
        await _calls(range(5))
        directory.mkdir()
        await _retry_due(mock_clock)
        status = await store_status()
        assert (status.connected, status.spooling, status.plans) == (True, False, ("default",))
        assert _summary(url) == (5, 5, {CdrStatus.CLOSED}, {"0.012000"})
        nursery.cancel_scope.cancel()


@pytest.mark.integration
async def test_stopping_postgresql_mid_run_loses_and_duplicates_nothing(
    pg_cluster: PgCluster, pg_url: str, tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    db_url, cluster = pg_url, pg_cluster
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, _config(db_url, tmp_path), name="billing"))
        await _calls(range(10))
        for n in range(10, 15):
            await open_cdr(_open(n))
        await trio.to_thread.run_sync(cluster.stop)
        try:
            await _calls(range(15, 25))
            for n in range(10, 15):
                await close_cdr(_close(n))
            assert (await store_status()).spooled_ops == 25
        finally:
            await trio.to_thread.run_sync(cluster.start)
        await _retry_due(mock_clock)
        assert not (await store_status()).spooling
        assert _summary(db_url) == (25, 25, {CdrStatus.CLOSED}, {"0.012000"})
        nursery.cancel_scope.cancel()


async def _until_replayed(chunks: int) -> None:
    """Ask the store until its replay is over: each answer comes after at most one more chunk."""
    for _ in range(chunks + 1):
        if not (await store_status()).spooling:
            return
    raise AssertionError(f"spool not replayed after {chunks} chunks")


async def test_a_long_spool_drains_chunk_by_chunk_while_calls_go_on_and_replays_stay_exact(
    db_url: str, tmp_path: Path, breaker: Breaker, mock_clock: trio.testing.MockClock
) -> None:
    # chunks of 2 ops: the replay takes several turns of the store, and a call's open and close
    # land in different transactions of it
    config = replace(_config(db_url, tmp_path), max_batch=2)
    spool = config.spool_dir / "n1.jsonl"
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        await open_cdr(_open(0))
        breaker.broken = True
        await close_cdr(_close(0))
        for n in range(1, 4):
            await _call(n)
        saved = spool.read_bytes()
        breaker.broken = False
        await _retry_due(mock_clock)  # the replay starts: one chunk, then one per turn
        await _call(4)  # answered meanwhile: spooled behind the replay, not kept waiting for it
        await _until_replayed(chunks=8)
        assert _summary(db_url) == (5, 5, {CdrStatus.CLOSED}, {"0.012000"})  # rollups checked inside
        assert not spool.exists()

        await stop(pid)
        spool.write_bytes(saved)  # as if the daemon died before removing the replayed spool
        await nursery.start(partial(BillingStore.start_link, config, name="billing"))  # replays it all
        assert _summary(db_url) == (5, 5, {CdrStatus.CLOSED}, {"0.012000"})
        nursery.cancel_scope.cancel()
