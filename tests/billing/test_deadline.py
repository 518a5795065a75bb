"""A database that hangs is an outage after `write_deadline`: steps are spooled, the store answers.

The database worker's thread may hang for as long as the database does; the store's task never
waits on it. These tests hang real writes (an engine hook that holds them, a second SQLite
connection holding the lock) and move virtual time past the deadline with a MockClock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from sqlalchemy import select
from sqlalchemy.orm import Session

from switchd.billing import (
    BillingStore,
    BillingStoreConfig,
    Cdr,
    CdrClose,
    CdrOpen,
    CdrQueue,
    CdrStatus,
    Disposition,
    _store_workers,
    open_cdr,
    open_engine,
    store_status,
)

from .conftest import Hang
from .factories import eventually, store_config, summary, until, until_connected

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _config(url: str, tmp_path: Path) -> BillingStoreConfig:
    return store_config(url, tmp_path, write_deadline=0.25, retry_interval=1.0, heartbeat_interval=3600.0)


def _call(queue: CdrQueue, n: int) -> int:
    """Submit call c<n>'s open and close; the close's ticket."""
    queue.submit(CdrOpen(call_id=f"c{n}", caller="4155550100", callee="+442071234567", setup_at=T0))
    return queue.submit(
        CdrClose(
            call_id=f"c{n}",
            end_at=T0 + timedelta(seconds=60),
            answer_at=T0,
            disposition=Disposition.ANSWERED,
            sip_code=200,
        )
    )


async def _durable(ticket: int, what: str) -> None:
    await until(lambda s: s.queue is not None and s.queue.durable_upto >= ticket, what)


async def test_a_hung_write_is_spooled_at_the_deadline_and_its_late_commit_plus_the_replay_is_exact(
    db_url: str,
    tmp_path: Path,
    hang: Hang,
    mock_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = CdrQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(BillingStore.start_link, _config(db_url, tmp_path), queue, name="billing")
        )
        await _durable(_call(queue, 0), "the first call's commit")
        hang.armed = True
        ticket = _call(queue, 1)
        await trio.to_thread.run_sync(hang.entered.wait, 10)  # its batch hangs in the database thread
        status = await store_status()  # the store answers while its write hangs
        assert status.connected and not queue.is_durable(ticket)

        mock_clock.jump(0.25)  # the write deadline passes: an outage
        await _durable(ticket, "spooling the hung batch")
        assert trio.current_time() == 0.25
        for n in range(2, 12):
            ticket = _call(queue, n)
        status = await until(lambda s: s.queue is not None and s.queue.durable_upto == ticket, "spooling")
        assert (status.spooling, status.spooled_ops, hang.held) == (True, 22, 1)  # no second write meanwhile
        assert status.queue is not None and status.queue.depth == 0

        with caplog.at_level(logging.INFO, logger="switchd.billing"):
            hang.armed = False
            hang.release.set()  # the hung write goes on and commits, late; then the spool is replayed
            status = await until_connected()
        assert "a billing write given up on has finished: committed" in caplog.text
        assert summary(db_url) == (12, 12, {CdrStatus.CLOSED}, {"0.012000"})  # c1 written twice: no duplicate
        await until(lambda s: not (tmp_path / "spool" / "n1.jsonl").exists(), "removing the spool")
        nursery.cancel_scope.cancel()
    assert not (tmp_path / "spool" / "n1.dead.jsonl").exists()


async def test_a_hung_write_that_fails_late_is_replayed_from_the_spool(
    tmp_path: Path, hang: Hang, mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    queue = CdrQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, _config(url, tmp_path), queue, name="billing"))
        hang.armed = True
        ticket = _call(queue, 1)
        await trio.to_thread.run_sync(hang.entered.wait, 10)
        mock_clock.jump(0.25)
        await _durable(ticket, "spooling the hung batch")
        with caplog.at_level(logging.INFO, logger="switchd.billing"):
            hang.armed, hang.fail = False, True
            hang.release.set()  # the held write fails: the store probes again after retry_interval
            await eventually(
                lambda: "given up on has finished: billing database write" in caplog.text, "the failure"
            )
        hang.fail = False
        assert (await store_status()).spooling
        mock_clock.jump(1.0)
        await until_connected()
        nursery.cancel_scope.cancel()
    assert summary(url) == (1, 1, {CdrStatus.CLOSED}, {"0.012000"})


async def test_a_locked_sqlite_database_is_an_outage_and_the_store_answers_meanwhile(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "billing.db"
    url = f"sqlite:///{path}"
    queue = CdrQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, _config(url, tmp_path), queue, name="billing"))
        await open_cdr(CdrOpen(call_id="c0", caller="1", callee="2", setup_at=T0))
        locker = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            ticket = _call(queue, 1)  # its write waits in SQLite's busy handler (5 s) in the thread
            await trio.testing.wait_all_tasks_blocked()
            assert (await store_status()).connected  # answered at once, not after the busy timeout
            mock_clock.jump(0.25)
            await _durable(ticket, "spooling behind the lock")
            for n in range(2, 6):
                ticket = _call(queue, n)
            await _durable(ticket, "spooling")
            assert trio.current_time() == 0.25  # every step durable with no virtual time passing
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        status = await until_connected()  # the waiting write goes through late, then the replay
        assert status.queue is not None and status.queue.spooled == 10
        nursery.cancel_scope.cancel()
    count, keys, statuses, _ = summary(url)
    assert (count, keys, statuses) == (6, 6, {CdrStatus.OPEN, CdrStatus.CLOSED})  # c0 was only opened


async def test_steps_spooled_while_the_replay_reads_its_last_chunk_are_replayed_not_cleared(
    tmp_path: Path, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end of the spool as a replay read it is not the end once an append lands meanwhile.

    Found by the SQLite-lock fault test: steps appended between the replay's read of the last
    chunk and the store's handling of it were removed with the replayed spool (a call with no
    CDR, another left open). Here the replay of the last chunk is held in its thread while new
    steps are spooled.
    """
    path = tmp_path / "billing.db"
    url = f"sqlite:///{path}"
    at_end = threading.Event()
    go_on = threading.Event()
    real_read = _store_workers.read_chunk  # type: ignore[attr-defined]

    def read_then_wait(*args: Any, **kwargs: Any) -> Any:
        read = real_read(*args, **kwargs)
        if read.end and read.ops:  # the replay's last chunk: hold it until the test says
            at_end.set()
            go_on.wait(10)
        return read

    monkeypatch.setattr(_store_workers, "read_chunk", read_then_wait)
    queue = CdrQueue()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, _config(url, tmp_path), queue, name="billing"))
        await open_cdr(CdrOpen(call_id="c0", caller="1", callee="2", setup_at=T0))
        locker = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            _call(queue, 1)
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(0.25)  # an outage: c1 is spooled
            await _durable(_call(queue, 2), "spooling")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        mock_clock.jump(1.0)  # the probe; the replay reaches the spool's end and is held there
        await trio.to_thread.run_sync(at_end.wait, 10)
        ticket = _call(queue, 3)  # still an outage for the store: c3 goes to the spool, after the end read
        await _durable(ticket, "spooling c3 during the replay")
        go_on.set()
        await until_connected()
        nursery.cancel_scope.cancel()
    count, keys, statuses, _ = summary(url)
    assert (count, keys, statuses) == (4, 4, {CdrStatus.OPEN, CdrStatus.CLOSED})
    engine = open_engine(url)
    try:
        with Session(engine) as session:
            closed = set(session.scalars(select(Cdr.call_id).where(Cdr.status == CdrStatus.CLOSED)))
    finally:
        engine.dispose()
    assert closed == {"c1", "c2", "c3"}
