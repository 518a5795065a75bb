"""The BillingStore's two workers: the database and the spool, each in threads of its own.

The store's task never waits on a disk or a database: it hands a job to a worker and goes on, and
the worker sends the result back to the store's mailbox as one of the messages below. Only the
store's task changes the store's state; a worker owns what it touches in its thread (the
database worker: the engine and the Writer with its decks and cache; the spool worker: the spool
file's appending side and the dead-letter file) and gets everything else in the job.

* Database jobs (`DbWorker`) run one at a time, in order, in ONE long-lived thread of the worker's
  own, fed by a queue (the store starts a job only when the last one has reported back, or at its
  exit). No trio task, no thread hand-off and no connection checkout per batch: at a switch's
  normal rate a batch holds a step or two, and that per-batch overhead used to cost more than
  the write. The Writer keeps one connection for the thread's life (replaced after an outage).
  A job the store gave up on (its write deadline passed) keeps the thread until the database
  answers; the store learns the answer from its late message. When the store exits the thread
  is told to stop after the job in hand, closing the database then (a supervisor's shutdown
  cancels the store's worker tasks before its terminate has written what is queued: that only
  tells the thread to end once idle for LINGER seconds, and terminate's close ends it at once);
  the store does not wait for
  a job that hangs: a database that hangs for ever must not hang the node's shutdown with it, and
  the thread only touches objects the dead store owned (it is a daemon thread).
* Spool jobs (`SpoolWorker`) keep their order: one task takes them from a FIFO channel and runs
  each in a thread under the worker's own limiter (appends, then dead letters, then a clear can
  never overtake one another). Local disk I/O is not abandoned.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trio

from switchd.otp import Caller, Pid, send

from ._dead_letter import DeadLetter, DeadRecord
from ._errors import BillingError, StoreUnavailable
from ._ops import Op
from ._rating import RateDeck
from ._spool import Spool, read_chunk
from ._writer import Outcome, Rejected, Writer

log = logging.getLogger(__name__)


# -- what the workers report ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Written:
    """The database write of batch `seq` finished: per-op outcomes, or the outage that stopped it."""

    seq: int
    outcomes: list[Outcome] | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Probed:
    """The database answered (migrated, decks loaded: `plans`), or `error` says why it did not."""

    plans: tuple[str, ...] = ()
    deck_stored: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Replayed:
    """A chunk of the spool was applied: the offset after it, whether that was the end."""

    offset: int
    end: bool = False
    ops: int = 0
    bad_lines: int = 0
    rejected: tuple[DeadRecord, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Recovered:
    """The previous run's open CDRs were closed as recovered (`count`), or `error`."""

    count: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RatesSet:
    """A deck replacement asked by `caller` finished: the tariff count or the error."""

    caller: Caller
    result: int | BillingError
    plans: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Spooled:
    """The spool worker wrote batch `seq` (`seq` None: dead letters of a replay).

    `refused` are ops the spool could not encode, written to the dead-letter file instead.
    """

    seq: int | None
    refused: tuple[DeadRecord, ...] = ()
    error: str | None = None


WorkerResult = Written | Probed | Replayed | Recovered | RatesSet | Spooled


def is_worker_result(msg: object) -> bool:
    return isinstance(msg, Written | Probed | Replayed | Recovered | RatesSet | Spooled)


# -- the database worker ----------------------------------------------------------------------


# What the database thread takes: a job and what to do with its result (called in trio's thread),
# None: close the database and end, or _LINGER: end once no job came for LINGER seconds.
_LINGER = "linger"
_DbJob = tuple[Callable[[], WorkerResult], Callable[[WorkerResult | BaseException], None]] | None | str

LINGER = 10.0
"""How long the thread outlives its store's task when only the nursery's cancellation told it to stop:
the store's terminate (bounded by its child spec's shutdown, 10 s) still writes what is queued
through it, and then closes it for good."""


class DbWorker:
    """Runs the store's database jobs in its thread (see the module docstring); owns the Writer."""

    def __init__(self, writer: Writer, spool_path: Path, nursery: trio.Nursery, store: Pid) -> None:
        self._writer = writer
        self._spool_path = spool_path
        self._nursery = nursery
        self._store = store
        self._token = trio.lowlevel.current_trio_token()
        self._jobs: queue.SimpleQueue[_DbJob] = queue.SimpleQueue()
        self._in_hand = 0  # jobs queued or running, not yet reported (trio side)
        self._closed = trio.Event()  # the thread closed the database and ended
        self._stopping = False
        threading.Thread(target=self._serve, name=f"billing db {store}", daemon=True).start()
        nursery.start_soon(self._stop_with_store)

    def start(self, job: Callable[[], WorkerResult]) -> None:
        """Run `job` in the thread, after those before it; its result goes to the store's mailbox."""
        self._put(job, self._report)

    async def run_inline(self, job: Callable[[], WorkerResult]) -> WorkerResult:
        """Run `job` in the thread and return its result here (the store's terminate). Cancelling
        the wait leaves the job running; its result is then dropped."""
        done = trio.Event()
        box: list[WorkerResult | BaseException] = []

        def deliver(result: WorkerResult | BaseException) -> None:
            box.append(result)
            done.set()

        self._put(job, deliver)
        await done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    async def close(self) -> None:
        """Stop the thread once it is idle and wait until it has closed the database — unless a job
        is still in hand (it may hang): then the thread closes it after that job, unwaited."""
        self._stop()
        if self._in_hand == 0:
            await self._closed.wait()

    def _put(self, job: Callable[[], WorkerResult], deliver: Callable[[WorkerResult | BaseException], None]) -> None:
        self._in_hand += 1
        self._jobs.put((job, deliver))

    def _report(self, result: WorkerResult | BaseException) -> None:
        if isinstance(result, BaseException):  # a bug in a job: the store crashes with it, as before
            try:
                self._nursery.start_soon(_reraise, result)
            except RuntimeError:  # the store is gone already
                log.error("billing database job failed after its store exited: %r", result)
            return
        send(self._store, result)

    def _stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._jobs.put(None)

    async def _stop_with_store(self) -> None:
        """Lives in the store's nursery: however the store ends, the thread is told to stop — once
        idle for LINGER seconds. Its cancellation comes with a supervisor's shutdown of the store,
        often before the store's terminate has put its last write (the CDR steps still queued):
        that write must still run, and terminate's `close` then stops the thread at once."""
        try:
            await trio.sleep_forever()
        finally:
            self._jobs.put(_LINGER)

    def _serve(self) -> None:
        """The thread: each job in turn, its result handed to trio; at the end, close the database."""
        timeout: float | None = None
        while True:
            try:
                item = self._jobs.get(timeout=timeout)
            except queue.Empty:
                break  # told to linger, and nothing came: the store will not call again
            if item is None:
                break
            if isinstance(item, str):
                timeout = LINGER
                continue
            job, deliver = item
            try:
                result: WorkerResult | BaseException = job()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the store (see _report)
                result = exc
            self._to_trio(partial(self._delivered, deliver, result))
        try:
            self._writer.close()
        finally:
            self._to_trio(self._closed.set)

    def _delivered(self, deliver: Callable[[WorkerResult | BaseException], None], result: WorkerResult | BaseException) -> None:
        self._in_hand -= 1
        deliver(result)

    def _to_trio(self, fn: Callable[[], object]) -> None:
        try:
            self._token.run_sync_soon(fn)
        except trio.RunFinishedError:
            pass  # the node's trio run is over: nobody is left to tell

    # The job bodies: blocking, in the worker's thread; each reports instead of raising what the
    # store must handle (a bug still raises, and crashes the store).

    def write(self, seq: int, ops: Sequence[Op]) -> Written:
        try:
            return Written(seq, self._writer.apply_isolating(ops))
        except StoreUnavailable as exc:
            return Written(seq, None, str(exc))

    def probe(self, migrate: bool, deck: RateDeck | None) -> Probed:
        """Migrate (if asked), store the configured deck (if any), load every deck."""
        try:
            if migrate:
                self._writer.migrate()
            if deck is not None:
                count = self._writer.replace_deck(deck, datetime.now(UTC))
                log.info(
                    "rate plan %r stored: %d tariffs",
                    deck.plan,
                    count,
                    extra={"plan": deck.plan, "tariffs": count},
                )
            return Probed(self._writer.load_decks(), deck is not None)
        except BillingError as exc:  # StoreUnavailable, MigrationError
            return Probed(error=str(exc))

    def replay(self, offset: int, chunk: int) -> Replayed:
        """Apply the spooled ops from byte `offset` on, up to `chunk` of them (idempotent)."""
        read = read_chunk(self._spool_path, offset, chunk)
        if not read.ops:
            return Replayed(read.offset, read.end, 0, read.bad_lines)
        try:
            outcomes = self._writer.apply_isolating(read.ops)
        except StoreUnavailable as exc:
            return Replayed(offset, error=str(exc))
        rejected = []
        for op, outcome in zip(read.ops, outcomes, strict=True):
            if isinstance(outcome, Rejected):
                rejected.append(DeadRecord(f"spooled op refused by the database: {outcome.reason}", op))
            elif outcome is not None:
                log.error("spooled %s op cannot be placed: %s", op.kind, outcome, extra={"cdr_key": op.key})
        return Replayed(read.offset, read.end, len(read.ops), read.bad_lines, tuple(rejected))

    def recover(self, node: str, before: datetime, batch: int) -> Recovered:
        """Close `node`'s CDRs left open by an earlier run (see Writer.recover)."""
        try:
            ops = self._writer.recover(node, before, datetime.now(UTC), batch)
        except StoreUnavailable as exc:
            return Recovered(error=str(exc))
        for op in ops:
            log.warning(
                "CDR %s… left open by a previous run closed as recovered, end %s",
                op.key[:12],
                op.values["end_at"].isoformat(),
                extra={"cdr_key": op.key},
            )
        if ops:
            log.warning(
                "recovered %d open CDR(s) of node %s",
                len(ops),
                node,
                extra={"recovered": len(ops), "node": node},
            )
        return Recovered(len(ops))

    def set_rates(self, caller: Caller, read: Callable[[], RateDeck]) -> RatesSet:
        """Read a deck (file parsing happens here too) and make it its plan's deck."""
        try:
            deck = read()
            count = self._writer.replace_deck(deck, datetime.now(UTC))
        except BillingError as exc:  # RateDeckError or StoreUnavailable: the old deck stays
            log.error("rate deck not replaced: %s", exc)
            return RatesSet(caller, exc, tuple(sorted(self._writer.decks)))
        log.info(
            "rate plan %r replaced: %d tariffs", deck.plan, count, extra={"plan": deck.plan, "tariffs": count}
        )
        return RatesSet(caller, count, tuple(sorted(self._writer.decks)))



async def _reraise(exc: BaseException) -> None:
    raise exc


# -- the spool worker -------------------------------------------------------------------------


class SpoolWorker:
    """Runs the store's spool and dead-letter jobs in order (see the module docstring)."""

    def __init__(self, spool: Spool, dead: DeadLetter, store: Pid) -> None:
        self.spool = spool
        self._dead = dead
        self._store = store
        self._lost_dead_letters = 0  # quarantined replay ops the dead-letter file refused
        self.limiter = trio.CapacityLimiter(1)
        self._jobs, self._inbox = trio.open_memory_channel[Callable[[], WorkerResult]](math.inf)
        self._unfinished: deque[Callable[[], WorkerResult]] = deque()  # in order; the first may be running
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        self._finished = False

    async def run(self) -> None:
        """The worker's task: each job in turn, its result to the store."""
        try:
            with self._scope:
                async for job in self._inbox:
                    # not abandoned: a job under way finishes and reports even when cancelled
                    result = await trio.to_thread.run_sync(job, limiter=self.limiter)
                    send(self._store, result)
                    self._unfinished.popleft()
        finally:
            self._stopped.set()

    def start(self, job: Callable[[], WorkerResult]) -> None:
        """Queue `job` behind every job queued before it (dropped once the worker is finished)."""
        if self._finished:
            return
        self._unfinished.append(job)
        self._jobs.send_nowait(job)

    async def finish(self) -> list[WorkerResult]:
        """The store's terminate: stop the task, then run what it had not, in order, here.

        A job under way when the task stops has reported to the store's mailbox already.
        """
        self._finished = True
        self._scope.cancel()
        await self._stopped.wait()
        results = []
        while self._unfinished:
            results.append(await self.run_inline(self._unfinished.popleft()))
        return results

    async def run_inline(self, job: Callable[[], WorkerResult]) -> WorkerResult:
        """Run `job` in the calling task, after the job in flight (the store's terminate)."""
        return await trio.to_thread.run_sync(job, limiter=self.limiter)

    def write(self, seq: int | None, ops: Sequence[Op], dead: Sequence[DeadRecord]) -> Spooled:
        """Append `ops` to the spool and `dead` to the dead-letter file, fsync'd."""
        try:
            refused = [DeadRecord(reason, op) for op, reason in self.spool.append(ops)] if ops else []
            if dead or refused:
                self._dead.append([*dead, *refused])
        except StoreUnavailable as exc:
            if seq is None:
                self._lost_dead_letters += len(dead)
            return Spooled(seq, error=str(exc))
        return Spooled(seq, tuple(refused))

    def clear(self, bad_lines: int) -> Spooled:
        """Remove the replayed spool; keep it aside if it had bad lines or ops the dead-letter
        file refused (only the spool still holds those)."""
        lost, self._lost_dead_letters = self._lost_dead_letters, 0
        try:
            self.spool.clear(bad_lines=bad_lines + lost)
        except OSError as exc:  # it will be replayed again (idempotently) at the next start
            log.error("cannot remove the replayed spool %s: %s", self.spool.path, exc.strerror)
        return Spooled(None)
