"""The spool survives what a crash can do to it: a torn last line, a damaged line, a full disk."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from switchd.billing import (
    BillingStore,
    BillingStoreConfig,
    Cdr,
    CdrClose,
    CdrOpen,
    Disposition,
    StoreUnavailable,
    close_cdr,
    open_cdr,
    open_engine,
    store_status,
)

from .factories import until

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _config(url: str, spool_dir: Path) -> BillingStoreConfig:
    return BillingStoreConfig(url=url, node="n1", spool_dir=spool_dir, retry_interval=3600.0)


async def _run_store(config: BillingStoreConfig, calls: int, first: int = 0) -> None:
    """Start a store, place `calls` short calls (c<first>, …) through it, stop it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        for n in range(first, first + calls):
            await open_cdr(CdrOpen(call_id=f"c{n}", caller="4155550100", callee="4155550123", setup_at=T0))
            await close_cdr(
                CdrClose(call_id=f"c{n}", end_at=T0 + timedelta(seconds=1), disposition=Disposition.NO_ANSWER)
            )
        nursery.cancel_scope.cancel()


def _count(url: str) -> int:
    engine = open_engine(url)
    with Session(engine) as session:
        count = session.scalar(select(func.count()).select_from(Cdr)) or 0
    engine.dispose()
    return count


async def _spool_while_down(tmp_path: Path, calls: int) -> tuple[Path, str]:
    """Spool `calls` calls while the database directory is missing; returns (spool file, URL)."""
    missing = tmp_path / "db"
    url = f"sqlite:///{missing / 'billing.db'}"
    await _run_store(_config(url, tmp_path / "spool"), calls)
    missing.mkdir()
    return tmp_path / "spool" / "n1.jsonl", url


async def test_a_torn_last_line_is_dropped_and_the_rest_replayed(tmp_path: Path) -> None:
    spool, url = await _spool_while_down(tmp_path, 3)
    assert len([line for line in spool.read_bytes().splitlines() if b'"heartbeat"' not in line]) == 6
    with spool.open("ab") as f:
        f.write(b'{"op":"open","v":{"key":"abc')  # a crash in the middle of an append
    await _run_store(_config(url, tmp_path / "spool"), 0)
    assert _count(url) == 3
    assert not spool.exists()


async def test_a_write_after_a_torn_line_is_not_glued_to_it(tmp_path: Path) -> None:
    spool, url = await _spool_while_down(tmp_path, 2)
    with spool.open("ab") as f:
        f.write(b'{"op":"close","v":{"ke')  # the daemon died mid-append ...
    directory = tmp_path / "db"
    directory.rename(tmp_path / "db-away")  # ... and the database is still down at the next start
    await _run_store(_config(url, tmp_path / "spool"), 1, first=2)  # spools a call after the torn line
    (tmp_path / "db-away").rename(directory)
    await _run_store(_config(url, tmp_path / "spool"), 0)
    assert _count(url) == 3  # the call spooled after the torn line was not lost with it
    assert not list(spool.parent.glob("*.bad-*"))


async def test_a_damaged_line_is_skipped_reported_and_the_spool_kept_for_the_operator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool, url = await _spool_while_down(tmp_path, 3)
    lines = spool.read_bytes().splitlines(keepends=True)
    spool.write_bytes(b"".join([*lines[:2], b"not json at all\n", *lines[2:]]))
    with caplog.at_level(logging.ERROR, logger="switchd.billing"):
        await _run_store(_config(url, tmp_path / "spool"), 0)
    assert _count(url) == 3
    damaged_at = len(lines[0]) + len(lines[1])  # the third line
    assert f"{spool}: skipping a malformed line at byte {damaged_at}" in caplog.text
    assert not spool.exists()
    [kept] = spool.parent.glob("n1.jsonl.bad-*")
    assert b"not json at all" in kept.read_bytes()


async def test_when_neither_database_nor_spool_can_write_the_caller_is_told_and_the_step_waits(
    tmp_path: Path, mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "spool"
    blocker.write_text("a file where the spool directory should be")
    config = replace(_config(f"sqlite:///{tmp_path / 'missing' / 'billing.db'}", blocker), retry_interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        with caplog.at_level(logging.CRITICAL, logger="switchd.billing"):
            for n in range(3):
                with pytest.raises(StoreUnavailable, match="cannot spool"):
                    await open_cdr(CdrOpen(call_id=f"c{n}", caller="1", callee="2", setup_at=T0))
        assert len([r for r in caplog.records if r.levelno == logging.CRITICAL]) == 1  # once, not per step
        status = await store_status()
        assert status.spooling and status.queue is not None and status.queue.depth == 3  # none dropped
        blocker.unlink()  # the operator frees the spool directory: the next retry spools them
        mock_clock.jump(1.0)
        status = await until(lambda s: s.queue is not None and s.queue.durable_upto == 3, "spooling")
        assert status.spooled_ops == 3 and status.queue is not None and status.queue.depth == 0
        nursery.cancel_scope.cancel()
    assert sum(b'"open"' in line for line in (blocker / "n1.jsonl").read_bytes().splitlines()) == 3
