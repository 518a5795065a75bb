"""BillingStore: the GenServer that makes CDR steps durable, without ever waiting on the database.

Strategy:
* Intake is a CdrQueue (made by the application, outliving any one store). A session submits a
  step and goes on; the queue wakes the store, which takes every waiting step, turns each into
  an op and writes them in batches of up to `max_batch`, one batch in flight at a time. Steps
  arriving meanwhile wait in the queue and form the next batch (group commit). A step leaves the
  queue, in FIFO order, once durable: committed, fsync'd in the spool, or quarantined in the
  dead-letter file; its `notify` pid then gets CdrDurable. The call API (`open_cdr` …) submits
  through `handle_call` and is answered at that moment.
* The store's task only decides; a database worker and a spool worker do the blocking work in
  threads and report back as messages (_store_workers). Only this task changes its `State`
  (_store_state); the outage mode's probe, replay and recovery live in _store_db.
* Two modes. DB: batches go to the database worker, each with a `write_deadline` timer
  (send_after). A batch that fails for an outage, or has not finished by its deadline, makes it
  OUTAGE: that batch and every later one go to the spool (order kept) and are acknowledged from
  there. A hung write keeps its thread; its late result is only news of the database (ops are
  idempotent, so a late commit plus the replay of the same ops is harmless). In OUTAGE one probe
  at a time, every `retry_interval` (or at once when a late write succeeds), migrates, loads the
  decks and replays the spool chunk by chunk; when the replay has reached the end with no append
  under way (new batches wait for the last chunk), the store recovers the previous run's CDRs if
  due, removes the spool and goes back to DB.
* Poison: a step that cannot become an op, or an op the database refuses for its data (found by
  halving the batch in the worker), is quarantined to the dead-letter file and the rest are
  committed. Steps a crashed store had handed to a worker are suspects for the next one (see
  CdrQueue): each is written alone, and one in flight at a second crash is quarantined unwritten.
* If neither the database nor the spool can take a batch, its steps go back to the queue and are
  retried every `retry_interval` (logged CRITICAL once); no step is ever dropped.
* A heartbeat op goes through the same pipeline every `heartbeat_interval`; recovery ends a
  crashed run's open CDRs at that run's last beat (docs/billing.md has the bound).
* Recovery: the first time a store connects in a run of the daemon it closes this node's open
  CDRs left by earlier runs as `recovered`. A store restarted by its supervisor in the same run
  does not: those CDRs belong to calls still in flight.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import trio

from switchd.otp import (
    Caller,
    ChildSpec,
    ExitReason,
    GenServer,
    NoReply,
    Pid,
    ReceiveTimeout,
    Reply,
    cancel_timer,
    receive,
    self_pid,
    send_after,
)

from ._client import NAME, BillingStoreConfig, ReloadRates, SetRates, StoreStatus, _Status
from ._db import open_engine
from ._dead_letter import DeadLetter, DeadRecord, printable
from ._decks import read_deck_file
from ._errors import CdrQuarantined, StoreUnavailable, UnknownCdr
from ._ops import heartbeat_op, op_for
from ._queue import CdrQueue, Wake
from ._requests import CdrAnswer, CdrClose, CdrOpen, CdrProgress
from ._spool import Spool
from ._store_db import (
    next_rates,
    on_probed,
    on_recovered,
    on_replayed,
    outage,
    request_rates,
    schedule_probe,
    start_probe,
    start_replay,
)
from ._store_state import (
    Batch,
    Beat,
    Busy,
    Deadline,
    Item,
    Mode,
    Probe,
    State,
    call_id_of,
    recovered_this_run,
    refused,
    run_started,
    written,
)
from ._store_workers import (
    DbWorker,
    Probed,
    RatesSet,
    Recovered,
    Replayed,
    Spooled,
    SpoolWorker,
    WorkerResult,
    Written,
    is_worker_result,
)
from ._writer import Writer

log = logging.getLogger(__name__)

_HOST = socket.gethostname()

# How long a store waits at start for the database (migrate, replay, recover) before it serves
# from the spool, when no step is waiting for it (else: its write deadline).
_START_WAIT = 30.0


_WRITES = (CdrOpen, CdrProgress, CdrAnswer, CdrClose)


class BillingStore(GenServer[State]):
    """The CDR store of one node (see the module docstring for its pipeline and its modes)."""

    @classmethod
    async def start_link(
        cls, *args: Any, name: str | None = None, task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run a store: ``nursery.start(partial(BillingStore.start_link, config, queue, name="billing"))``.

        `queue` (a CdrQueue, optional) is the application's: it outlives this store. Its worker
        tasks run in a nursery of the store's own task, so they live and die with it. A failed
        start or a crash raises the store's own exception, unwrapped, as any GenServer's.
        """
        config, queue = args[0], args[1] if len(args) > 1 else None
        try:
            async with trio.open_nursery() as nursery:
                try:
                    await super().start_link(config, queue, nursery, name=name, task_status=task_status)
                finally:
                    nursery.cancel_scope.cancel()  # the workers go with the store
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:  # the store's exit; the workers were only cancelled
                raise group.exceptions[0] from None
            raise

    async def init(self, config: BillingStoreConfig, queue: CdrQueue | None, nursery: trio.Nursery) -> State:
        """Start the workers, take over the queue, connect (bounded), then serve.

        A bad deck file fails the start (RateDeckError). An unreachable database does not: the
        store serves from the spool and keeps trying. While no step waits in the queue, the store
        waits up to 30 s for the database (migrate, spool replay, recovery) before it is ready; a
        store restarted with steps waiting for it waits at most `write_deadline`.
        """
        deck = config.deck
        if deck is None and config.rate_deck is not None:
            deck = await trio.to_thread.run_sync(
                partial(
                    read_deck_file, config.rate_deck, plan=config.default_plan, currency=config.deck_currency
                )
            )
        me = self_pid()
        spool = Spool(config.spool_dir / f"{config.node}.jsonl")
        await trio.to_thread.run_sync(spool.repair)
        spool_worker = SpoolWorker(spool, DeadLetter(config.spool_dir / f"{config.node}.dead.jsonl"), me)
        nursery.start_soon(spool_worker.run)
        started = run_started()
        state = State(
            config,
            queue if queue is not None else CdrQueue(),
            queue is None,
            DbWorker(Writer(open_engine(config.url)), spool.path, nursery, me),
            spool_worker,
            started,
            batch_limit=config.max_batch,
            deck_to_store=deck,
            recover_due=config.recover and (config.url, config.node) not in recovered_this_run(),
        )
        state.queue._attach(me)
        self._intake(state)
        wait = config.write_deadline if state.pending else _START_WAIT
        self._on_beat(state)
        start_probe(state)
        with trio.move_on_after(wait):
            while state.starting:
                self._on_result(await receive(match=is_worker_result), state)  # type: ignore[arg-type]
        state.starting = False
        self._pump(state)
        return state

    async def handle_call(
        self, request: object, caller: Caller, state: State
    ) -> Reply[State] | NoReply[State]:
        if isinstance(request, _WRITES):
            if state.stuck is not None:  # queued for the retry; the caller is told now, as the others
                state.queue._submit(request, None, None)
                return Reply(StoreUnavailable(state.stuck), state)
            state.queue._submit(request, None, caller)
            return NoReply(state)
        match request:
            case ReloadRates(path, plan, currency):
                read = partial(
                    read_deck_file,
                    path,
                    plan=plan or state.config.default_plan,
                    currency=currency or state.config.deck_currency,
                )
                return request_rates(state, caller, read)
            case SetRates(deck):
                return request_rates(state, caller, lambda: deck)
            case _Status():
                return Reply(self._status(state), state)
        raise ValueError(f"billing: unknown request {request!r}")

    async def handle_info(self, msg: object, state: State) -> NoReply[State]:
        match msg:
            case Wake():
                self._intake(state)
            case Deadline(seq):
                batch = state.batch
                if batch is not None and batch.seq == seq and not batch.to_spool and batch.outcomes is None:
                    batch.deadline = None
                    outage(state, f"a write took longer than {state.config.write_deadline:g}s")
                    self._to_spool(state, batch)
            case Busy():
                state.busy = None
                if state.mode is Mode.DB and state.db_busy and state.pending:
                    outage(state, f"the database was busy for longer than {state.config.write_deadline:g}s")
            case Probe():
                state.probe = None
                if state.stuck is not None:  # the retry of steps neither database nor spool took
                    state.stuck = None
                    self._intake(state)
                if state.mode is Mode.OUTAGE:
                    start_probe(state)
            case Beat():
                self._on_beat(state)
            case _ if is_worker_result(msg):
                self._on_result(msg, state)  # type: ignore[arg-type]
                return NoReply(state)
            case _:
                log.warning("billing store: unexpected message %r", msg)
        self._pump(state)
        return NoReply(state)

    async def terminate(self, reason: ExitReason, state: State) -> None:
        """Make what is still queued durable (database or spool), then close the database.

        After a crash, with the application's queue, nothing is written here: the queue keeps
        the steps for the next store, which treats those in flight as suspects. Otherwise: the
        write in flight gets up to `write_deadline` to answer, the spool worker's queued jobs run
        here, and what is left is written here, to the database if it is connected and idle,
        else to the spool (terminate runs in the store's task, shielded and bounded by the
        child's shutdown time, so it works even when the workers were cancelled with the store).
        """
        deadline = state.batch.deadline if state.batch is not None else None
        for timer in (state.probe, state.busy, state.beat, deadline):
            if timer is not None:
                cancel_timer(timer)
        if isinstance(reason, BaseException) and not state.own_queue:
            await state.db.close()
            return
        state.stopping = True
        batch = state.batch
        if batch is not None and not batch.to_spool:
            with trio.move_on_after(state.config.write_deadline):
                while state.batch is batch:
                    self._on_result(await receive(match=is_worker_result), state)  # type: ignore[arg-type]
        inline = await state.spool.finish()
        while True:  # what the spool worker reported before it stopped, then what ran here
            try:
                msg = await receive(0, match=is_worker_result)
            except ReceiveTimeout:
                break
            self._on_result(msg, state)  # type: ignore[arg-type]
        for result in inline:
            self._on_result(result, state)
        self._intake(state)
        items = [*(state.batch.items if state.batch is not None else ()), *state.pending]
        items = [item for item in items if item.entry is not None]  # heartbeats: not when stopping
        state.batch, state.pending = None, deque()
        if items:
            await self._write_at_exit(state, items)
        await state.db.close()

    def format_status(self, state: State) -> str:
        if state.mode is Mode.OUTAGE:
            return f"spooling ({state.spooled_ops} steps waiting)"
        return f"connected, {state.written_ops} steps in {state.batches} batches"

    # -- intake and dispatch ----------------------------------------------------------------------

    def _intake(self, state: State) -> None:
        """Take every waiting step from the queue and turn it into an op (or a quarantine)."""
        cfg = state.config
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # to_utc_ms, inlined
        pending = state.pending
        for entry in state.queue._take():
            if entry.crashes >= 2:
                reason = f"in flight at {entry.crashes} crashes of the billing store; not retried"
                pending.append(Item(entry, None, DeadRecord(reason, step=entry.step)))
                continue
            try:
                op = op_for(
                    entry.step, node=cfg.node, default_plan=cfg.default_plan, numbering=cfg.numbering, now=now
                )
            except Exception as exc:  # noqa: BLE001 - data-dependent (not valid Unicode …): poison
                reason = f"cannot become a CDR write: {type(exc).__name__}: {exc}"
                pending.append(Item(entry, None, DeadRecord(reason, step=entry.step)))
                continue
            pending.append(Item(entry, op, suspect=entry.crashes > 0))

    def _pump(self, state: State) -> None:
        """Dispatch the next batch if nothing is in flight and its destination can take it."""
        if state.batch is not None or not state.pending or state.starting or state.stuck or state.stopping:
            return
        if state.mode is Mode.DB and state.db_busy:
            if state.busy is None:  # a long deck reload must not hold writes past the deadline
                state.busy = send_after(self_pid(), Busy(), state.config.write_deadline)
            return
        if state.mode is Mode.OUTAGE and state.draining:
            return  # the replay's last chunk first
        items = self._next_items(state)
        state.seq += 1
        batch = Batch(state.seq, items, to_spool=state.mode is Mode.OUTAGE)
        state.batch = batch
        ops = [item.op for item in items if item.op is not None and item.dead is None]
        if batch.to_spool or not ops:
            batch.to_spool = True
            self._send_to_spool(state, batch)
            return
        if state.busy is not None:
            cancel_timer(state.busy)
            state.busy = None
        state.db_busy = True
        state.db.start(partial(state.db.write, batch.seq, ops))
        batch.sent_at = trio.current_time()
        batch.deadline = send_after(self_pid(), Deadline(batch.seq), state.config.write_deadline)

    def _next_items(self, state: State) -> list[Item]:
        """Up to max_batch items in order; a suspect goes alone."""
        pending = state.pending
        items = [pending.popleft()]
        if not items[0].suspect:
            limit = state.batch_limit if state.mode is Mode.DB else state.config.max_batch
            while pending and len(items) < limit and not pending[0].suspect:
                items.append(pending.popleft())
        for item in items:
            if item.entry is not None:
                item.entry.dispatched = True
        return items

    def _to_spool(self, state: State, batch: Batch) -> None:
        """Send a batch the database did not take to the spool instead."""
        if batch.deadline is not None:
            cancel_timer(batch.deadline)
            batch.deadline = None
        batch.to_spool = True
        self._send_to_spool(state, batch)

    def _send_to_spool(self, state: State, batch: Batch) -> None:
        """Spool the batch's ops (unless the database has them: only its dead letters then)."""
        written = batch.outcomes is not None
        ops = [] if written else [i.op for i in batch.items if i.op is not None and i.dead is None]
        dead = [i.dead for i in batch.items if i.dead is not None]
        state.spool.start(partial(state.spool.write, batch.seq, ops, dead))

    # -- results from the workers -----------------------------------------------------------------

    def _on_result(self, msg: WorkerResult, state: State) -> None:
        match msg:
            case Written():
                self._on_written(state, msg)
            case Spooled():
                self._on_spooled(state, msg)
            case Probed():
                on_probed(state, msg)
            case Replayed():
                on_replayed(state, msg)
            case Recovered():
                on_recovered(state, msg)
            case RatesSet(caller, result, plans):
                state.db_busy = False
                state.plans = plans
                caller.reply(result)
                next_rates(state)
        self._pump(state)

    def _on_written(self, state: State, msg: Written) -> None:
        state.db_busy = False
        batch = state.batch
        if batch is None or batch.seq != msg.seq or batch.to_spool:
            # the late answer of a write the store gave up on: only news of the database
            log.info("a billing write given up on has finished: %s", msg.error or "committed")
            if state.mode is Mode.OUTAGE:
                if msg.error is None:
                    start_probe(state)
                else:
                    schedule_probe(state)
            next_rates(state)
            return
        if batch.deadline is not None:
            cancel_timer(batch.deadline)
            batch.deadline = None
        if msg.outcomes is None:
            outage(state, msg.error or "write failed")
            self._to_spool(state, batch)
            return
        next_rates(state)
        self._adapt(state, len(msg.outcomes), trio.current_time() - batch.sent_at)
        written(batch, msg.outcomes)
        if any(item.dead is not None for item in batch.items):
            self._send_to_spool(state, batch)  # the dead letters, then the batch is durable
            return
        self._done(state, batch)

    def _adapt(self, state: State, size: int, elapsed: float) -> None:
        """Keep a batch at a quarter to half of the write deadline (halve when slower, grow by a
        quarter when faster and full), so that a busy machine's slow commit is not an outage."""
        deadline = state.config.write_deadline
        if elapsed > deadline / 2:
            state.batch_limit = max(1, min(state.batch_limit, size) // 2)
        elif elapsed < deadline / 4 and size >= state.batch_limit:
            state.batch_limit = min(
                state.config.max_batch, state.batch_limit + max(1, state.batch_limit // 4)
            )

    def _on_spooled(self, state: State, msg: Spooled) -> None:
        batch = state.batch
        if msg.seq is None or batch is None or batch.seq != msg.seq:
            return  # dead letters of a replay, or a clear
        if msg.error is not None:
            self._stuck(state, msg.error)
            return
        refused(batch, msg.refused)
        self._done(state, batch)
        if state.draining:
            start_replay(state)

    def _done(self, state: State, batch: Batch) -> None:
        """The batch is durable: settle its steps in the queue and answer their callers."""
        state.batch = None
        if state.stuck_logged:
            state.stuck_logged = False
            log.warning("CDR steps are durable again")
        spooled = batch.to_spool and batch.outcomes is None
        outcomes = batch.outcomes or [None] * len(batch.items)
        steps = quarantined = 0
        for item, outcome in zip(batch.items, outcomes, strict=True):
            if item.dead is not None:
                quarantined += item.entry is not None
                answer: object = CdrQuarantined(f"CDR step quarantined: {printable(item.dead.reason)}")
            elif isinstance(outcome, UnknownCdr):
                state.unknown_closes += 1
                log.error(
                    "CDR close not written: %s", outcome, extra={"call_id": printable(call_id_of(item))}
                )
                answer = outcome
            else:
                answer = None
            if item.entry is not None:
                steps += 1
                if item.entry.reply_to is not None:
                    item.entry.reply_to.reply(answer)
        state.quarantined += quarantined
        if spooled:
            state.spooled_ops += steps - quarantined
        elif steps:
            state.written_ops += steps - quarantined
            state.batches += 1
        state.queue._settle(steps, spooled=(steps - quarantined) if spooled else 0, quarantined=quarantined)

    def _stuck(self, state: State, error: str) -> None:
        """Neither the database nor the spool took the batch: its steps go back to the queue."""
        if not state.stuck_logged:
            state.stuck_logged = True
            log.critical(
                "CDR steps can be written neither to the database nor to the spool; they wait in "
                "the queue and are retried every %gs: %s",
                state.config.retry_interval,
                error,
                extra={"spool": str(state.spool.spool.path)},
            )
        for item in [*(state.batch.items if state.batch is not None else ()), *state.pending]:
            if item.entry is not None and item.entry.reply_to is not None:
                item.entry.reply_to.reply(StoreUnavailable(error))  # told once; the step stays queued
                item.entry.reply_to = None
        state.batch = None
        state.pending.clear()  # taken again, in order, with the ones given back
        state.queue._give_back()
        state.stuck = error
        state.draining = False
        schedule_probe(state)

    # -- heartbeat, rates, status ----------------------------------------------------------------

    def _on_beat(self, state: State) -> None:
        cfg = state.config
        beat = heartbeat_op(cfg.node, state.run_started, _HOST, os.getpid(), datetime.now(UTC))
        state.pending.append(Item(None, beat))
        state.beat = send_after(self_pid(), Beat(), cfg.heartbeat_interval)

    def _status(self, state: State) -> StoreStatus:
        return StoreStatus(
            connected=state.mode is Mode.DB,
            spooling=state.mode is Mode.OUTAGE,
            spooled_ops=state.spooled_ops,
            written_ops=state.written_ops,
            batches=state.batches,
            recovered=state.recovered,
            plans=state.plans,
            quarantined=state.quarantined,
            unknown_closes=state.unknown_closes,
            queue=state.queue.statistics(),
            db_errors=state.db_errors,
        )

    # -- exit ---------------------------------------------------------------------------------------

    async def _write_at_exit(self, state: State, items: list[Item]) -> None:
        """terminate: write `items` in the calling task (the workers may be cancelled already).

        To the database if it is connected and idle, within the write deadline; else (or on any
        failure) to the spool. What neither takes is lost with the process, and logged.
        """
        batch = Batch(0, items, to_spool=True)
        ops = [i.op for i in items if i.op is not None and i.dead is None]
        if state.mode is Mode.DB and not state.db_busy and ops:
            with trio.move_on_after(state.config.write_deadline):
                result = await state.db.run_inline(partial(state.db.write, 0, ops))
                assert isinstance(result, Written)
                if result.outcomes is not None:
                    batch.to_spool = False
                    written(batch, result.outcomes)
        if batch.to_spool or any(i.dead is not None for i in items):
            spool_ops = ops if batch.to_spool else []
            dead = [i.dead for i in items if i.dead is not None]
            spooled = await state.spool.run_inline(partial(state.spool.write, 0, spool_ops, dead))
            assert isinstance(spooled, Spooled)
            refused(batch, spooled.refused)
            if spooled.error is not None:
                log.critical(
                    "billing store stopping: %d CDR step(s) written neither to the database nor to the "
                    "spool: %s",
                    sum(1 for i in items if i.entry is not None),
                    spooled.error,
                )
                return
        state.batch = batch
        self._done(state, batch)


def billing_child_spec(
    config: BillingStoreConfig | Callable[[], BillingStoreConfig],
    *,
    queue: CdrQueue | None = None,
    name: str = NAME,
    shutdown: float = 10.0,
) -> ChildSpec:
    """The supervisor child spec of a BillingStore registered as `name` (id "billing").

    Pass the application's `queue` so steps survive a restart of the store; without one each
    store makes its own (the call API still works, but a crash loses what was queued). `config`
    may be a function, called at every (re)start: a node hands one that returns its last
    accepted deck, so a restarted store neither reads a file broken since nor stores an old deck.
    """
    if isinstance(config, BillingStoreConfig):
        return ChildSpec(
            id="billing", start=partial(BillingStore.start_link, config, queue, name=name), shutdown=shutdown
        )
    return ChildSpec(id="billing", start=partial(_start_with, config, queue, name), shutdown=shutdown)


async def _start_with(
    config: Callable[[], BillingStoreConfig],
    queue: CdrQueue | None,
    name: str,
    task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED,
) -> None:
    await BillingStore.start_link(config(), queue, name=name, task_status=task_status)
