"""A database outage loses no CDR and duplicates none: spool, replay, exact counts."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from switchd.billing import (
    BillingStore,
    BillingStoreConfig,
    CdrClose,
    CdrOpen,
    CdrQueue,
    CdrStatus,
    Disposition,
    close_cdr,
    open_cdr,
    store_status,
)
from switchd.otp import stop

from .conftest import PgCluster
from .factories import store_config, summary, until, until_connected

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


async def _retry_due(clock: trio.testing.MockClock) -> None:
    """Let the store's retry timer (1 s) fire and its probe start, in virtual time."""
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
        assert status.db_errors == 1  # the write that failed: one error, then the spool
        saved = spool.read_bytes()

        await _retry_due(mock_clock)  # still broken: the probe fails, the store keeps spooling
        await until(lambda s: s.db_errors == 2, "the failed probe")
        status = await store_status()  # answered while the probe ran
        assert status.queue is not None and status.queue.depth == 0
        await _call(99)  # spooled behind the others
        status = await store_status()
        assert (status.spooled_ops, status.db_errors) == (32, 2)
        breaker.broken = False
        await _retry_due(mock_clock)
        status = await until_connected()
        assert (status.spooling, status.connected, status.spooled_ops) == (False, True, 0)
        assert status.queue is not None and status.queue.spooled == 32 and status.queue.depth == 0
        await until(lambda s: not spool.exists(), "removing the replayed spool")
        assert summary(db_url) == (31, 31, {CdrStatus.CLOSED}, {"0.012000"})

        # a crash between the replay's commit and the spool's removal replays it again: harmless
        await stop(pid)
        spool.write_bytes(saved)
        await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        assert summary(db_url) == (31, 31, {CdrStatus.CLOSED}, {"0.012000"})
        await until(lambda s: not spool.exists(), "removing the replayed spool")
        await _calls(range(30, 35))  # and the store writes to the database again
        assert summary(db_url)[:2] == (36, 36)
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
        status = await until_connected()
        assert (status.connected, status.spooling, status.plans) == (True, False, ("default",))
        assert summary(url) == (5, 5, {CdrStatus.CLOSED}, {"0.012000"})
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
        await until_connected()
        assert summary(db_url) == (25, 25, {CdrStatus.CLOSED}, {"0.012000"})
        nursery.cancel_scope.cancel()


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
        await _retry_due(mock_clock)  # the replay starts: one chunk per job in the database thread
        await _call(4)  # answered meanwhile: spooled behind the replay, not kept waiting for it
        status = await until_connected()
        assert status.batches >= 5  # the 2-op chunks of the replay, each its own transaction
        assert summary(db_url) == (5, 5, {CdrStatus.CLOSED}, {"0.012000"})  # rollups checked inside
        await until(lambda s: not spool.exists(), "removing the replayed spool")

        await stop(pid)
        spool.write_bytes(saved)  # as if the daemon died before removing the replayed spool
        await nursery.start(partial(BillingStore.start_link, config, name="billing"))  # replays it all
        assert summary(db_url) == (5, 5, {CdrStatus.CLOSED}, {"0.012000"})
        nursery.cancel_scope.cancel()


def _postgres_pids(cluster: PgCluster) -> list[int]:
    """Our cluster's postmaster and its children (backends, checkpointer …), by /proc."""
    postmaster = cluster.pid()
    assert postmaster is not None
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == postmaster:  # fields: state, ppid, …
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.integration
async def test_a_frozen_postgresql_is_an_outage_at_the_deadline_and_everything_lands_once_after(
    pg_cluster: PgCluster, pg_url: str, tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    config = store_config(pg_url, tmp_path, write_deadline=0.25, retry_interval=1.0, heartbeat_interval=3600.0)
    queue = CdrQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, config, queue, name="billing"))
        await _calls(range(5))
        pids = _postgres_pids(pg_cluster)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)  # the server hangs: TCP stays up, nothing answers
        try:
            tickets = []
            for n in range(5, 25):
                queue.submit(_open(n))
                tickets.append(queue.submit(_close(n)))
            await trio.testing.wait_all_tasks_blocked()
            assert (await store_status()).connected  # the store answers; its write hangs
            mock_clock.jump(0.25)
            status = await until(lambda s: s.queue is not None and s.queue.durable_upto >= tickets[-1], "spool")
            assert (status.spooling, status.spooled_ops) == (True, 40)
            assert trio.current_time() == 0.25
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        await until_connected(timeout=30.0)  # the hung write finishes, then the probe and the replay
        nursery.cancel_scope.cancel()
    assert summary(pg_url) == (25, 25, {CdrStatus.CLOSED}, {"0.012000"})
