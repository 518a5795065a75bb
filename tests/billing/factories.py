"""Test data: store configurations, and CDR rows written straight into a migrated database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from switchd.billing import (
    BillingStoreConfig,
    Cdr,
    CdrStatus,
    Disposition,
    GroupBy,
    StoreStatus,
    cdr_key,
    open_engine,
    rebuild_rollups,
    store_status,
    summarize,
)

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def store_config(url: str, tmp_path: Path, **options: Any) -> BillingStoreConfig:
    """A store on `url` as node n1, spooling under `tmp_path`, with the sample deck; `options` override.

    The write deadline is 5 s, not 0.25 s: on a busy test machine a slow commit must not turn
    into an outage in tests that are not about the deadline (those set it themselves).
    """
    defaults: dict[str, Any] = {
        "url": url,
        "node": "n1",
        "spool_dir": tmp_path / "spool",
        "rate_deck": CONFIG_DIR / "rates.csv",
        "write_deadline": 5.0,
    }
    return BillingStoreConfig(**{**defaults, **options})


def cdr_row(n: int, **fields: Any) -> dict[str, Any]:
    """A closed, answered, rated CDR #n (60 s, 1 min billed at 0.01), overridden by `fields`."""
    setup = fields.pop("setup_at", T0 + timedelta(seconds=n))
    row: dict[str, Any] = {
        "key": cdr_key("n1", f"call-{n}", 1),
        "node": "n1",
        "call_id": f"call-{n}",
        "attempt": 1,
        "account": "acme",
        "caller_raw": "4155550100",
        "caller": "+14155550100",
        "callee_raw": "011442071234567",
        "callee": "+442071234567",
        "b_attempts": 1,
        "setup_at": setup,
        "answer_at": setup + timedelta(seconds=2),
        "end_at": setup + timedelta(seconds=62),
        "duration_ms": 62_000,
        "billable_ms": 60_000,
        "disposition": Disposition.ANSWERED,
        "sip_code": 200,
        "sip_reason": "OK",
        "rate_plan": "default",
        "rated": True,
        "rate_prefix": "44",
        "rate_per_minute": Decimal("0.010000"),
        "rate_connect_fee": Decimal(0),
        "rate_first_increment": 60,
        "rate_next_increment": 60,
        "billed_seconds": 60,
        "cost": Decimal("0.010000"),
        "currency": "USD",
        "status": CdrStatus.CLOSED,
        "created_at": setup,
        "updated_at": setup,
    }
    row.update(fields)
    return row


def insert_cdrs(engine: Engine, rows: Iterable[dict[str, Any]]) -> None:
    """Insert `rows` in one transaction (executemany) and rebuild the rollups, as after an import."""
    with Session(engine) as session, session.begin():
        session.execute(insert(Cdr), list(rows))
        rebuild_rollups(session)


async def eventually(check: Callable[[], bool], what: str, *, timeout: float = 10.0) -> None:
    """Wait until `check()` holds, testing it every 2 ms of real time; fails after `timeout` s.

    The store's work runs in its worker threads, so waiting for it is waiting on real time,
    whatever clock the test runs on; the bound turns a hang into a failure naming `what`.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s")
        await trio.to_thread.run_sync(time.sleep, 0.002)


async def until(check: Callable[[StoreStatus], bool], what: str, *, timeout: float = 10.0) -> StoreStatus:
    """Ask the store "billing" until `check(status)` holds (see `eventually`); that status."""
    deadline = time.monotonic() + timeout
    while True:
        status = await store_status()
        if check(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"billing store: {what} did not happen within {timeout:g}s: {status}")
        await trio.to_thread.run_sync(time.sleep, 0.002)


async def until_connected(*, timeout: float = 10.0) -> StoreStatus:
    """Wait until the store "billing" writes to the database again (its spool replayed)."""
    return await until(lambda status: status.connected, "reconnecting", timeout=timeout)


def summary(url: str) -> tuple[int, int, set[CdrStatus], set[str]]:
    """(CDRs, distinct keys, statuses, costs as text) of the database; checks its rollups too."""
    engine = open_engine(url)
    try:
        with Session(engine) as session:
            count = session.scalar(select(func.count()).select_from(Cdr)) or 0
            keys = session.scalar(select(func.count(func.distinct(Cdr.key)))) or 0
            statuses = set(session.scalars(select(Cdr.status).distinct()))
            costs = {str(c) for c in session.scalars(select(Cdr.cost).distinct())}
            # the rollups the store kept through outages and replays agree with the CDRs themselves
            assert summarize(session, GroupBy.DAY) == summarize(session, GroupBy.DAY, use_rollups=False)
    finally:
        engine.dispose()
    return count, keys, statuses, costs
