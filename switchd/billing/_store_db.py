"""The BillingStore's side of its database: outage mode, probe, replay, recovery, deck loads.

Plain functions of the store's State, called from the store's task only. The database jobs they
start run in the database worker, one at a time (`state.db_busy`); their results come back to
the store, which hands them to the `on_…` functions here.

* `outage` switches to the spool and schedules a probe; one probe at a time, every
  `retry_interval` (at once after a write given up on has succeeded).
* A probe migrates, stores the configured deck and loads the decks, then the spool is replayed one
  chunk per job. When a chunk reaches the end, no new batch goes to the spool (`draining`); once
  the append under way (if any) is done, one more chunk reads what was appended after that end,
  and only a read begun while draining may end the replay: then recovery runs if it is due, and
  `connected` switches back to the database and has the spool removed.
* Deck replacements are database jobs too: refused during an outage, queued behind a job under
  way (the store's writes wait at most the write deadline behind them, see the store's `Busy`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from switchd.otp import Caller, NoReply, Reply, cancel_timer, self_pid, send_after

from ._errors import StoreUnavailable
from ._rating import RateDeck
from ._store_state import Mode, Probe, State, recovered_this_run
from ._store_workers import Probed, Recovered, Replayed

log = logging.getLogger(__name__)

_NO_DECK = "the billing database is unavailable; the deck was not replaced"


def outage(state: State, why: str) -> None:
    """The database failed or is too slow (`why`): write to the spool until a probe brings it back."""
    state.db_errors += 1
    if state.mode is Mode.DB:
        log.error(
            "billing database unavailable (%s); spooling CDR steps to %s",
            why,
            state.spool.spool.path,
            extra={"spool": str(state.spool.spool.path)},
        )
    state.mode = Mode.OUTAGE
    if state.busy is not None:
        cancel_timer(state.busy)
        state.busy = None
    schedule_probe(state)


def schedule_probe(state: State) -> None:
    """A probe in `retry_interval` seconds, unless one is due already."""
    if state.probe is None:
        state.probe = send_after(self_pid(), Probe(), state.config.retry_interval)


def start_probe(state: State) -> None:
    """Start a probe unless a database job is under way (its answer will start one)."""
    if state.db_busy or state.stopping:
        return
    if state.probe is not None:
        cancel_timer(state.probe)
        state.probe = None
    state.db_busy = True
    state.db.start(partial(state.db.probe, state.config.migrate, state.deck_to_store))


def failed(state: State, error: str) -> None:
    """A probe, replay chunk or recovery failed: still an outage; try again later."""
    state.db_errors += 1
    state.draining = False
    if state.starting:
        log.error("billing database unavailable at start, spooling CDR steps: %s", error)
        state.starting = False
    schedule_probe(state)


def on_probed(state: State, msg: Probed) -> None:
    state.db_busy = False
    if msg.error is not None:
        failed(state, msg.error)
        return
    state.plans = msg.plans
    if msg.deck_stored:
        state.deck_to_store = None
    start_replay(state)


def start_replay(state: State) -> None:
    if state.stopping:
        return
    state.db_busy = True
    state.db.start(partial(state.db.replay, state.replay_offset, state.config.max_batch))


def on_replayed(state: State, msg: Replayed) -> None:
    state.db_busy = False
    if msg.error is not None:
        failed(state, msg.error)
        return
    state.replay_offset = msg.offset
    state.replay_bad_lines += msg.bad_lines
    state.replayed_ops += msg.ops
    state.written_ops += msg.ops - len(msg.rejected)
    state.batches += bool(msg.ops)
    if msg.rejected:
        state.quarantined += len(msg.rejected)
        state.spool.start(partial(state.spool.write, None, (), msg.rejected))
    if not msg.end:
        start_replay(state)
    elif not state.draining or state.batch is not None:
        # The end as that chunk read it: an append may have landed since, or be under way. Stop
        # appending (`draining`), then read once more after the last append — at once if none is
        # under way, else when it is spooled (_on_spooled) — and only that read may end the replay.
        state.draining = True
        if state.batch is None:
            start_replay(state)
    elif state.stopping:
        return
    elif state.recover_due:
        state.db_busy = True
        state.db.start(
            partial(state.db.recover, state.config.node, state.run_started, state.config.max_batch)
        )
    else:
        connected(state)


def on_recovered(state: State, msg: Recovered) -> None:
    state.db_busy = False
    if msg.error is not None:
        failed(state, msg.error)
        return
    cfg = state.config
    recovered_this_run().add((cfg.url, cfg.node))
    state.recover_due = False
    state.recovered += msg.count
    connected(state)


def connected(state: State) -> None:
    """The spool is replayed: remove it and write to the database again."""
    if not state.starting:
        log.warning(
            "billing database reachable again: %d spooled op(s) replayed",
            state.replayed_ops,
            extra={"replayed": state.replayed_ops},
        )
    state.spool.start(partial(state.spool.clear, state.replay_bad_lines))
    state.mode = Mode.DB
    state.starting = state.draining = False
    state.replay_offset = state.replay_bad_lines = state.replayed_ops = state.spooled_ops = 0
    next_rates(state)


def request_rates(
    state: State, caller: Caller, read: Callable[[], RateDeck]
) -> Reply[State] | NoReply[State]:
    """A deck replacement asked by `caller`: refused during an outage, else a database job."""
    if state.mode is Mode.OUTAGE:
        return Reply(StoreUnavailable(_NO_DECK), state)
    state.rate_requests.append((caller, read))
    next_rates(state)
    return NoReply(state)


def next_rates(state: State) -> None:
    """Start the next deck replacement when the database worker is free (before more writes)."""
    if state.mode is Mode.OUTAGE:
        while state.rate_requests:
            caller, _ = state.rate_requests.popleft()
            caller.reply(StoreUnavailable(_NO_DECK))
        return
    if state.db_busy or not state.rate_requests:
        return
    caller, read = state.rate_requests.popleft()
    state.db_busy = True
    state.db.start(partial(state.db.set_rates, caller, read))
