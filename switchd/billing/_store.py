"""BillingStore: the GenServer that owns the billing database, with group commit and a spool.

Strategy:
* Every CDR write is a deferred-reply call. `handle_call` turns the request into an op, queues it
  with its Caller and, for the first op of a batch, sends itself a `_Flush`. Calls that arrive
  meanwhile queue behind it in the mailbox, so by the time `_Flush` is handled they are all in
  the batch: the batch is written in ONE transaction and every caller gets its reply only after
  the commit. The busier the switch, the bigger the batches (group commit).
* The store's writer task commits one batch at a time while the store goes on taking calls
  into the next one; `_Written` tells the store a batch is done, and it answers that batch's
  callers and dispatches the next. The writer task lives in a nursery of the store's own task.
* Blocking SQLAlchemy and file work runs in one writer thread at a time
  (`trio.to_thread.run_sync(..., limiter=CapacityLimiter(1))`), never on the trio loop.
* When the database fails, the batch (and every later one, to keep the order) goes to the spool
  file, fsync'd before the reply; the call goes on. Every `retry_interval` seconds the store
  tries again: migrate, load decks, then replay the spool idempotently one chunk per message
  (calls go on being answered, and spooled behind it), then back to the database.
* Recovery: the first time a store connects in a run of the daemon it closes this node's open
  CDRs left by the previous run as `recovered`. A store restarted by its supervisor in the same
  run does not: those CDRs belong to calls still in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import trio
from sqlalchemy import Engine

from switchd.otp import (
    Caller,
    ChildSpec,
    ExitReason,
    GenServer,
    NoReply,
    Pid,
    Reply,
    TimerRef,
    cancel_timer,
    self_pid,
    send,
    send_after,
)

from ._client import NAME, BillingStoreConfig, ReloadRates, SetRates, StoreStatus, _Status
from ._db import open_engine, upgrade
from ._decks import read_deck_file
from ._errors import BillingError, MigrationError, StoreUnavailable, UnknownCdr
from ._ops import Op, op_for
from ._rating import RateDeck
from ._requests import CdrAnswer, CdrClose, CdrOpen, CdrProgress
from ._spool import Spool
from ._types import to_utc_ms
from ._writer import Writer

log = logging.getLogger(__name__)

T = TypeVar("T")

# (database URL, node) pairs whose open CDRs this run of the daemon has recovered already.
_RECOVERED: trio.lowlevel.RunVar[set[tuple[str, str]]] = trio.lowlevel.RunVar("switchd_billing_recovered")
# When the first BillingStore of this run of the daemon started: CDRs created before it are
# the previous run's; those created since are calls of this run (even if the database was down
# at start and recovery only runs once it is back).
_RUN_STARTED: trio.lowlevel.RunVar[datetime] = trio.lowlevel.RunVar("switchd_billing_run_started")


@dataclass(frozen=True, slots=True)
class _Flush:
    pass


@dataclass(frozen=True, slots=True)
class _Retry:
    pass


@dataclass(frozen=True, slots=True)
class _Written:
    pass


@dataclass(frozen=True, slots=True)
class _Replay:
    pass


_Batch = list[tuple[Op, Caller]]


@dataclass(slots=True)
class _State:
    config: BillingStoreConfig
    engine: Engine
    writer: Writer
    spool: Spool
    limiter: trio.CapacityLimiter
    outbox: trio.MemorySendChannel[_Batch]
    deck_to_store: RateDeck | None = None
    pending: _Batch = field(default_factory=list)
    flush_queued: bool = False
    in_flight: _Batch | None = None  # the batch the writer task is committing
    in_flight_done: trio.Event = field(default_factory=trio.Event)
    in_flight_result: list[BillingError | None] | StoreUnavailable | None = None
    connected: bool = False
    spooling: bool = False
    retry: TimerRef | None = None
    spooled_ops: int = 0
    run_started: datetime = field(default_factory=lambda: datetime.now(UTC))  # see _RUN_STARTED
    replay_offset: int = 0  # bytes of the spool already replayed
    replayed_ops: int = 0  # in the replay under way
    written_ops: int = 0
    batches: int = 0
    recovered: int = 0


_WRITES = (CdrOpen, CdrProgress, CdrAnswer, CdrClose)


class BillingStore(GenServer[_State]):
    """The CDR store of one node (see the module docstring for how it batches and spools)."""

    @classmethod
    async def start_link(
        cls, *args: Any, name: str | None = None, task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run a store: ``await nursery.start(partial(BillingStore.start_link, config, name="billing"))``.

        Its writer task runs in a nursery of the store's own task, so it lives and dies with it.
        A failed start or a crash raises the store's own exception, unwrapped, as any GenServer's.
        """
        try:
            async with trio.open_nursery() as nursery:
                try:
                    await super().start_link(*args, nursery, name=name, task_status=task_status)
                finally:
                    nursery.cancel_scope.cancel()  # the writer task goes with the store
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:  # the store's exit; the writer task was only cancelled
                raise group.exceptions[0] from None
            raise

    async def init(self, config: BillingStoreConfig, nursery: trio.Nursery) -> _State:
        """Open the database, store the configured deck, replay the spool and recover.

        A bad deck file fails the start (RateDeckError). An unreachable database does not: the
        store starts spooling and keeps trying.
        """
        limiter = trio.CapacityLimiter(1)
        deck = None
        if config.rate_deck is not None:
            deck = await trio.to_thread.run_sync(
                partial(
                    read_deck_file, config.rate_deck, plan=config.default_plan, currency=config.deck_currency
                ),
                limiter=limiter,
            )
        engine = open_engine(config.url)
        outbox, inbox = trio.open_memory_channel[_Batch](1)
        state = _State(
            config,
            engine,
            Writer(engine),
            Spool(config.spool_dir / f"{config.node}.jsonl"),
            limiter,
            outbox,
            deck_to_store=deck,
            run_started=_run_started(),
        )
        await self._connect(state, whole_spool=True)
        nursery.start_soon(self._write_batches, state, inbox, self_pid())
        return state

    async def handle_call(
        self, request: object, caller: Caller, state: _State
    ) -> Reply[_State] | NoReply[_State]:
        if isinstance(request, _WRITES):
            cfg = state.config
            now = datetime.now(UTC)
            op = op_for(
                request,
                node=cfg.node,
                default_plan=cfg.default_plan,
                numbering=cfg.numbering,
                now=now.replace(microsecond=now.microsecond // 1000 * 1000),  # to_utc_ms, inlined
            )
            state.pending.append((op, caller))
            if len(state.pending) >= cfg.max_batch:
                await self._dispatch(state)
            elif not state.flush_queued:
                state.flush_queued = True
                send(self_pid(), _Flush())  # behind every call already in the mailbox
            return NoReply(state)
        match request:
            case ReloadRates(path, plan, currency):
                read = partial(
                    read_deck_file,
                    path,
                    plan=plan or state.config.default_plan,
                    currency=currency or state.config.deck_currency,
                )
                return Reply(await self._set_rates(state, read), state)
            case SetRates(deck):
                return Reply(await self._set_rates(state, lambda: deck), state)
            case _Status():
                return Reply(self._status(state), state)
        raise ValueError(f"billing: unknown request {request!r}")

    async def handle_info(self, msg: object, state: _State) -> NoReply[_State]:
        match msg:
            case _Flush():
                state.flush_queued = False
                await self._dispatch(state)
            case _Written():
                batch, state.in_flight = state.in_flight, None
                assert batch is not None and state.in_flight_result is not None
                await self._finish(state, batch, state.in_flight_result)
                await self._dispatch(state)
            case _Retry():
                state.retry = None
                await self._connect(state, whole_spool=False)
            case _Replay():
                await self._replay_next(state)
            case _:
                log.warning("billing store: unexpected message %r", msg)
        return NoReply(state)

    async def terminate(self, reason: ExitReason, state: _State) -> None:
        """Finish the batch in flight, write what is queued (database or spool), close the database."""
        if state.in_flight is not None:
            await state.in_flight_done.wait()
            batch, state.in_flight = state.in_flight, None
            assert state.in_flight_result is not None
            await self._finish(state, batch, state.in_flight_result)
        while state.pending:
            batch, state.pending = state.pending, []
            await self._finish(state, batch, await self._apply(state, batch))
        if state.retry is not None:
            cancel_timer(state.retry)
        await self._thread(state, state.engine.dispose)

    def format_status(self, state: _State) -> str:
        if state.spooling:
            return f"spooling ({state.spooled_ops} ops waiting)"
        return f"connected, {state.written_ops} ops in {state.batches} batches"

    # -- the work ---------------------------------------------------------------------------------

    async def _thread(self, state: _State, fn: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(fn, limiter=state.limiter)

    async def _apply(self, state: _State, batch: _Batch) -> list[BillingError | None] | StoreUnavailable:
        """Commit `batch` in the writer thread: per-op outcomes, or the outage that stopped it."""
        if state.spooling:
            return StoreUnavailable("spooling until the database is back")
        try:
            return await self._thread(state, partial(state.writer.apply, [op for op, _ in batch]))
        except StoreUnavailable as exc:
            return exc

    async def _write_batches(
        self, state: _State, inbox: trio.MemoryReceiveChannel[_Batch], store: Pid
    ) -> None:
        """The writer task: commit each batch the store dispatches, then tell the store.

        While it commits, the store goes on taking calls into the next batch (pipelining).
        """
        async for batch in inbox:
            state.in_flight_result = await self._apply(state, batch)
            state.in_flight_done.set()
            send(store, _Written())

    async def _dispatch(self, state: _State) -> None:
        """Hand the pending writes to the writer task (or the spool), one batch at a time."""
        if state.in_flight is not None or not state.pending:
            return  # the batch in flight dispatches the next when it is done
        if state.spooling:
            batch, state.pending = state.pending, []
            await self._spool(state, batch)
            return
        size = state.config.max_batch
        batch, state.pending = state.pending[:size], state.pending[size:]
        state.in_flight = batch
        state.in_flight_done = trio.Event()
        state.in_flight_result = None
        state.outbox.send_nowait(batch)  # room for one, and only one batch is ever in flight

    async def _finish(
        self, state: _State, batch: _Batch, result: list[BillingError | None] | StoreUnavailable
    ) -> None:
        """Answer a batch's callers once it is committed, or spool it (and all after it) on an outage."""
        if isinstance(result, StoreUnavailable):
            if not state.spooling:
                self._unavailable(state, result)
            await self._spool(state, batch)
            return
        state.written_ops += len(batch)
        state.batches += 1
        for (_, caller), outcome in zip(batch, result, strict=True):
            caller.reply(outcome)

    async def _spool(self, state: _State, batch: _Batch) -> None:
        try:
            await self._thread(state, partial(state.spool.append, [op for op, _ in batch]))
        except StoreUnavailable as exc:
            log.critical(
                "CDRs can be written neither to the database nor to the spool: %s",
                exc,
                extra={"spool": str(state.spool.path)},
            )
            for _, caller in batch:
                caller.reply(exc)
            return
        state.spooled_ops += len(batch)
        for _, caller in batch:
            caller.reply(None)

    def _schedule_retry(self, state: _State) -> None:
        if state.retry is None:
            state.retry = send_after(self_pid(), _Retry(), state.config.retry_interval)

    async def _connect(self, state: _State, *, whole_spool: bool) -> None:
        """Migrate, store the configured deck, load decks, replay the spool, recover (once a run).

        At start the whole spool is replayed before the store is ready (no call is waiting yet).
        After an outage only its first chunk is, here; `_Replay` messages to itself do the rest
        one chunk each, so calls keep being answered (and spooled) while a long spool drains.
        """
        recover = self._must_recover(state)

        def work() -> tuple[bool, int]:
            self._startup(state)
            done = self._replay_chunk(state)
            while whole_spool and not done:
                done = self._replay_chunk(state)
            return done, self._recover(state) if done and recover else 0

        try:
            done, recovered = await self._thread(state, work)
        except (StoreUnavailable, MigrationError) as exc:
            self._unavailable(state, exc)
            return
        self._replayed(state, done, recovered, recover)

    async def _replay_next(self, state: _State) -> None:
        recover = self._must_recover(state)

        def work() -> tuple[bool, int]:
            done = self._replay_chunk(state)
            return done, self._recover(state) if done and recover else 0

        try:
            done, recovered = await self._thread(state, work)
        except StoreUnavailable as exc:
            self._unavailable(state, exc)
            return
        self._replayed(state, done, recovered, recover)

    def _must_recover(self, state: _State) -> bool:
        cfg = state.config
        return cfg.recover and (cfg.url, cfg.node) not in _recovered_this_run()

    def _unavailable(self, state: _State, exc: BillingError) -> None:
        if not state.spooling:
            log.error(
                "billing database unavailable, spooling CDRs to %s: %s",
                state.spool.path,
                exc,
                extra={"spool": str(state.spool.path)},
            )
        state.connected = False
        state.spooling = True
        self._schedule_retry(state)

    def _replayed(self, state: _State, done: bool, recovered: int, recover: bool) -> None:
        if not done:
            state.spooling = True  # until the spool is drained, new writes queue behind it
            send(self_pid(), _Replay())
            return
        if state.spooling or state.replayed_ops:
            log.warning(
                "billing database reachable again: %d spooled op(s) replayed",
                state.replayed_ops,
                extra={"replayed": state.replayed_ops},
            )
        if recover:
            cfg = state.config
            _recovered_this_run().add((cfg.url, cfg.node))
        state.connected = True
        state.spooling = False
        state.spooled_ops = 0
        state.replayed_ops = 0
        state.recovered += recovered

    def _startup(self, state: _State) -> None:
        """In the writer thread: migrate, store the configured deck, load every deck."""
        cfg = state.config
        if cfg.migrate:
            upgrade(state.engine)
        if state.deck_to_store is not None:
            count = state.writer.replace_deck(state.deck_to_store, datetime.now(UTC))
            log.info(
                "rate plan %r loaded from %s: %d tariffs",
                state.deck_to_store.plan,
                cfg.rate_deck,
                count,
                extra={"plan": state.deck_to_store.plan, "tariffs": count},
            )
            state.deck_to_store = None
        state.writer.load_decks()

    def _replay_chunk(self, state: _State) -> bool:
        """In the writer thread: commit the next `max_batch` spooled ops; True once the spool is empty.

        The offset moves only after the commit; reaching the end and removing the file happen in
        one thread call, so no append can slip in between.
        """
        if not state.spool.pending():
            return True
        ops, offset, end = state.spool.read_chunk(state.replay_offset, state.config.max_batch)
        if ops:
            for op, outcome in zip(ops, state.writer.apply(ops), strict=True):
                if isinstance(outcome, UnknownCdr):
                    log.error(
                        "spooled %s op cannot be placed: %s", op.kind, outcome, extra={"cdr_key": op.key}
                    )
            state.replayed_ops += len(ops)
            state.written_ops += len(ops)
            state.batches += 1
        state.replay_offset = offset
        if end:
            state.spool.clear()
            state.replay_offset = 0
        return end

    def _recover(self, state: _State) -> int:
        """In the writer thread: close this node's CDRs left open by the previous run."""
        cfg = state.config
        ops = state.writer.recover(cfg.node, state.run_started, datetime.now(UTC), cfg.max_batch)
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
                cfg.node,
                extra={"recovered": len(ops), "node": cfg.node},
            )
        return len(ops)

    async def _set_rates(self, state: _State, read: Callable[[], RateDeck]) -> int | BillingError:
        def load() -> int:
            deck = read()
            count = state.writer.replace_deck(deck, datetime.now(UTC))
            log.info(
                "rate plan %r replaced: %d tariffs",
                deck.plan,
                count,
                extra={"plan": deck.plan, "tariffs": count},
            )
            return count

        try:
            return await self._thread(state, load)
        except BillingError as exc:  # RateDeckError or StoreUnavailable: the old deck stays
            log.error("rate deck not replaced: %s", exc)
            return exc

    def _status(self, state: _State) -> StoreStatus:
        return StoreStatus(
            state.connected,
            state.spooling,
            state.spooled_ops,
            state.written_ops,
            state.batches,
            state.recovered,
            tuple(sorted(state.writer.decks)),
        )


def _run_started() -> datetime:
    try:
        return _RUN_STARTED.get()
    except LookupError:
        started = to_utc_ms(datetime.now(UTC))
        _RUN_STARTED.set(started)
        return started


def _recovered_this_run() -> set[tuple[str, str]]:
    try:
        return _RECOVERED.get()
    except LookupError:
        done: set[tuple[str, str]] = set()
        _RECOVERED.set(done)
        return done


def billing_child_spec(config: BillingStoreConfig, *, name: str = NAME, shutdown: float = 10.0) -> ChildSpec:
    """The supervisor child spec of a BillingStore registered as `name` (id "billing")."""
    return ChildSpec(
        id="billing", start=partial(BillingStore.start_link, config, name=name), shutdown=shutdown
    )
