"""Billing benchmark: CDR open+close pairs/s through the BillingStore, and a 1M-CDR summary.

    python bench/billing_bench.py [--pairs N] [--callers N] [--cdrs N]

SQLite file in a temp dir, WAL, synchronous=FULL (the store's settings, see switchd.billing._db). Figures:

1. group commit: `--callers` concurrent call tasks each doing open_cdr then close_cdr (answered,
   rated) through one BillingStore, `--pairs` pairs in all; pairs/s.
   Same-run baseline: the same store with max_batch=1, i.e. one transaction per write.
   Queue intake: the same pairs submitted to the store's CdrQueue as a call session does (the
   open without waiting, then the close, waiting until it is durable, as before a BYE's 200).
2. summary: `--cdrs` CDRs bulk-inserted (executemany in batches of 50,000) and their rollups
   rebuilt (setup, timed but not against the target), then `summarize` over all of them by day,
   account, destination and disposition; each must answer in < 1 s. Same-run baseline: the same
   summary by day computed by scanning the CDRs (`use_rollups=False`).

Each store runs with the collector tuned as in the daemon (see `_settle_gc`). A figure whose run
spooled steps says so: a write outlived `write_deadline` (on a loaded machine, a slow fsync or a
descheduled process) and those steps took the outage path (spool, then replay), not group commit.

Prints each figure, its baseline and the ratio; records nothing itself (docs/performance.md).
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

import trio
from sqlalchemy.orm import Session

from switchd import collector
from switchd.billing import (
    BillingStore,
    BillingStoreConfig,
    CdrClose,
    CdrOpen,
    CdrQueue,
    Disposition,
    GroupBy,
    close_cdr,
    open_cdr,
    open_engine,
    rebuild_rollups,
    store_status,
    summarize,
    upgrade,
)
from switchd.otp import stop

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _settle_gc() -> None:
    """Tune the collector as the daemon does once its tree is up: `switchd.collector.settle` itself.

    With CPython's defaults the collector walked the steps in flight (1,000 callers' requests,
    entries, ops and their dicts) several times each before they died by refcount, and every
    full collection walked SQLAlchemy's and Alembic's objects too: 40-55 us of CPU a pair here.
    """
    collector.release()  # an earlier run of this process settled it around its own objects
    collector.settle()


def _steps(call_id: str) -> tuple[CdrOpen, CdrClose]:
    """The open and the close of one answered, rated 61 s call."""
    opened = CdrOpen(
        call_id=call_id, caller="4155550100", callee="011442071234567", setup_at=T0, account="bench"
    )
    closed = CdrClose(
        call_id=call_id,
        end_at=T0 + timedelta(seconds=61),
        answer_at=T0,
        disposition=Disposition.ANSWERED,
        sip_code=200,
    )
    return opened, closed


async def _pairs(config: BillingStoreConfig, pairs: int, callers: int) -> tuple[float, float, float, int, int]:
    """Open+close `pairs` calls from `callers` concurrent tasks.

    Returns (seconds, CPU seconds of the process, CPU seconds of the event-loop thread, batches,
    steps spooled): the process's CPU beyond the event loop's is the writer thread's (trio's idle
    worker threads cost nothing). Steps are spooled when a write outlived `write_deadline` (on a
    loaded machine, a slow fsync): they cost a JSON line, an fsync and a replay each.
    """
    per_caller, extra = divmod(pairs, callers)

    async def caller(index: int, count: int) -> None:
        for n in range(count):
            call_id = f"bench-{index}-{n}"
            opened, closed = _steps(call_id)
            await open_cdr(opened, timeout=60.0)
            await close_cdr(closed, timeout=60.0)

    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        _settle_gc()
        before = (await store_status()).batches
        start, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
        async with trio.open_nursery() as calls:
            for index in range(callers):
                calls.start_soon(caller, index, per_caller + (1 if index < extra else 0))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        loop_cpu = time.thread_time() - loop_cpu
        status = await store_status()
        await stop(pid)
    return elapsed, cpu, loop_cpu, status.batches - before, status.spooled_ops


async def _queue_pairs(config: BillingStoreConfig, pairs: int, callers: int) -> tuple[float, int]:
    """Submit `pairs` open+close pairs to a CdrQueue from `callers` tasks; seconds until all durable
    and the steps spooled."""
    per_caller, extra = divmod(pairs, callers)
    queue = CdrQueue()

    async def caller(index: int, count: int) -> None:
        for n in range(count):
            call_id = f"queue-{index}-{n}"
            opened, closed = _steps(call_id)
            queue.submit(opened)
            ticket = queue.submit(closed)
            if not await queue.wait_durable(ticket, 60.0):
                raise RuntimeError(f"close of {call_id} not durable within 60 s")

    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(BillingStore.start_link, config, queue, name="billing"))
        _settle_gc()
        start = time.perf_counter()
        async with trio.open_nursery() as calls:
            for index in range(callers):
                calls.start_soon(caller, index, per_caller + (1 if index < extra else 0))
        elapsed = time.perf_counter() - start
        await stop(pid)
    return elapsed, queue.statistics().spooled


def _spooled(steps: int) -> str:
    """What a figure's run spooled, when it did: those steps took the outage path, not group commit."""
    return f"; {steps:,} steps spooled: a write outlived the write deadline" if steps else ""


def _throughput(workdir: Path, pairs: int, baseline_pairs: int, callers: int) -> None:
    deck = ROOT / "config" / "rates.csv"
    grouped = BillingStoreConfig(
        url=f"sqlite:///{workdir / 'grouped.db'}",
        node="bench",
        spool_dir=workdir / "grouped-spool",
        rate_deck=deck,
    )
    single = BillingStoreConfig(
        url=f"sqlite:///{workdir / 'single.db'}",
        node="bench",
        spool_dir=workdir / "single-spool",
        rate_deck=deck,
        max_batch=1,
    )
    seconds, cpu, loop_cpu, batches, spooled = trio.run(_pairs, grouped, pairs, callers)
    rate = pairs / seconds
    base_seconds, base_cpu, _, base_batches, base_spooled = trio.run(_pairs, single, baseline_pairs, callers)
    base_rate = baseline_pairs / base_seconds
    print(
        f"group commit       : {pairs:>9,} pairs in {seconds:6.2f} s = {rate:>9,.0f} pairs/s "
        f"({pairs / cpu:,.0f} per CPU-second; {2 * pairs / max(1, batches):,.0f} writes/transaction"
        f"{_spooled(spooled)})   "
        f"target >= 20,000 pairs/s {'MET' if rate >= 20_000 else 'NOT MET'}"
    )
    print(
        f"baseline 1 tx/write: {baseline_pairs:>9,} pairs in {base_seconds:6.2f} s = {base_rate:>9,.0f} pairs/s "
        f"({baseline_pairs / base_cpu:,.0f} per CPU-second; {2 * baseline_pairs / max(1, base_batches):,.0f} "
        f"writes/transaction{_spooled(base_spooled)})"
    )
    print(f"ratio              : {rate / base_rate:.1f}x")
    print(
        f"CPU per pair       : {cpu / pairs * 1e6:.1f} us = {loop_cpu / pairs * 1e6:.1f} us event loop "
        f"(calls, ops) + {(cpu - loop_cpu) / pairs * 1e6:.1f} us writer thread (SQLite, rating, rollups); "
        f"20,000 pairs/s needs 50 us of wall time per pair"
    )
    queued = BillingStoreConfig(
        url=f"sqlite:///{workdir / 'queued.db'}",
        node="bench",
        spool_dir=workdir / "queued-spool",
        rate_deck=deck,
    )
    queue_seconds, queue_spooled = trio.run(_queue_pairs, queued, pairs, callers)
    print(
        f"queue intake       : {pairs:>9,} pairs in {queue_seconds:6.2f} s = {pairs / queue_seconds:>9,.0f} pairs/s "
        f"(submit, then wait until the close is durable{_spooled(queue_spooled)})"
    )


def _bulk_insert(path: Path, count: int) -> float:
    """Insert `count` closed CDRs with executemany in big batches (values pre-encoded as stored)."""
    columns = (
        "key",
        "node",
        "call_id",
        "attempt",
        "account",
        "caller_raw",
        "caller",
        "callee_raw",
        "callee",
        "b_attempts",
        "setup_at",
        "answer_at",
        "end_at",
        "duration_ms",
        "billable_ms",
        "disposition",
        "sip_code",
        "rate_plan",
        "rated",
        "rate_prefix",
        "billed_seconds",
        "cost",
        "currency",
        "status",
        "created_at",
        "updated_at",
    )
    dispositions = (
        "ANSWERED",
        "ANSWERED",
        "ANSWERED",
        "NO_ANSWER",
        "BUSY",
        "CANCELLED",
        "CONGESTION",
        "FAILED",
    )
    prefixes = ("1", "1415", "44", "4420", "447", "49")
    fmt = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME text form, UTC

    def row(n: int) -> tuple[object, ...]:
        setup = T0 + timedelta(seconds=n * 2.6)  # 1M CDRs over ~30 days
        disposition = dispositions[n % len(dispositions)]
        answered = disposition == "ANSWERED"
        talk = (n * 7919) % 600_000 if answered else None
        billed = -(-talk // 6000) * 6 if talk else 0
        cost = billed * 200 // 60  # 0.02/min in millionths
        when = setup.strftime(fmt)
        return (
            f"{n:064x}",
            "bench",
            f"call-{n}",
            1,
            f"acct-{n % 50}",
            "4155550100",
            "+14155550100",
            "442071234567",
            "+442071234567",
            1,
            when,
            when if answered else None,
            (setup + timedelta(milliseconds=(talk or 0) + 3000)).strftime(fmt),
            (talk or 0) + 3000,
            talk,
            disposition,
            200 if answered else 486,
            "default",
            1,
            prefixes[n % len(prefixes)],
            billed,
            cost,
            "USD",
            "closed",
            when,
            when,
        )

    sql = f"INSERT INTO cdrs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    start = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for first in range(0, count, 50_000):
        with conn:
            conn.executemany(sql, (row(n) for n in range(first, min(first + 50_000, count))))
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - start


def _summaries(workdir: Path, count: int) -> None:
    path = workdir / "summary.db"
    engine = open_engine(f"sqlite:///{path}")
    upgrade(engine)
    inserted = _bulk_insert(path, count)
    print(
        f"bulk insert        : {count:>9,} CDRs in {inserted:6.2f} s = {count / inserted:,.0f} CDRs/s (setup)"
    )
    with Session(engine) as session:
        start = time.perf_counter()
        with session.begin():
            groups = rebuild_rollups(session)
        print(f"rebuild rollups    : {groups:>9,} rows in {time.perf_counter() - start:6.2f} s (setup)")
        start = time.perf_counter()
        scanned = summarize(session, GroupBy.DAY, use_rollups=False)
        baseline = time.perf_counter() - start
        assert sum(r.calls for r in scanned) == count
        print(f"baseline scan by day: {baseline:6.3f} s (every CDR read)")
        for by in GroupBy:
            start = time.perf_counter()
            rows = summarize(session, by)
            elapsed = time.perf_counter() - start
            calls = sum(r.calls for r in rows)
            cost = sum((r.cost for r in rows), Decimal(0))
            assert calls == count, (by, calls)
            if by is GroupBy.DAY:
                assert rows == scanned, "rollups and scan disagree"
            print(
                f"summary by {by.value:<12}: {elapsed:6.3f} s ({len(rows):>3} groups, {calls:,} calls, cost {cost})"
                f"   target < 1 s {'MET' if elapsed < 1 else 'NOT MET'}   scan/rollups {baseline / elapsed:,.0f}x"
            )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40_000, help="open+close pairs with group commit")
    parser.add_argument(
        "--baseline-pairs", type=int, default=3_000, help="pairs at one transaction per write"
    )
    parser.add_argument("--callers", type=int, default=1_000, help="concurrent call tasks")
    parser.add_argument("--cdrs", type=int, default=1_000_000, help="CDRs for the summary")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        workdir = Path(tmp)
        _throughput(workdir, args.pairs, args.baseline_pairs, args.callers)
        _summaries(workdir, args.cdrs)


if __name__ == "__main__":
    main()
