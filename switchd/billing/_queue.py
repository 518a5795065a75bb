"""CdrQueue: the node's intake of CDR steps, which outlives any one BillingStore.

A call session never waits on billing: it hands each step (CdrOpen … CdrClose, carrying the time
of the event) to `submit`, a plain function that returns a ticket at once, and goes on. The steps
wait here, in order, until the store has made them durable — committed, fsync'd in the spool, or
quarantined in the dead-letter file — and only then leave. The application makes the queue and
hands it to the store and to the sessions, so a store that crashes and is restarted by its
supervisor finds every step it had not finished still here (Erlang would keep them in an ETS
table with an heir). Steps become durable in FIFO order: `durable_upto` is the highest ticket
with every ticket up to it durable.

What the store does with the queue (the `_`-methods, for the store only):

* `_attach(pid)` when a store starts: it becomes the one woken by `submit`. Steps a previous
  store had taken come back to the front; those it had handed to a worker (in flight when it
  died) are *suspects*, counted per crash, so the new store can apply them one at a time and
  quarantine, without applying it, one that was in flight at a second crash.
* `_take()` the waiting steps, in order; `_settle(n, …)` the first `n` taken steps, once durable;
  `_give_back()` the taken ones when neither the database nor the spool could take them.

Waking: `submit` sends the attached store one `Wake` when steps start waiting and none is
pending; the store clears it by taking the steps. A dead store's pid drops the message, as in
Erlang, and its successor drains the queue when it attaches.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass

import trio

from switchd.otp import Caller, Pid, send

from ._requests import CdrAnswer, CdrClose, CdrOpen, CdrProgress

CdrStep = CdrOpen | CdrProgress | CdrAnswer | CdrClose


@dataclass(frozen=True, slots=True)
class CdrDurable:
    """Sent to a step's `notify` pid once the step with `ticket` is durable."""

    call_id: str
    ticket: int


@dataclass(frozen=True, slots=True)
class Wake:
    """Sent to the attached store when steps start waiting in its queue."""


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """A snapshot of a CdrQueue."""

    depth: int  # steps submitted and not yet durable
    oldest_age: float  # seconds the oldest of them has waited; 0.0 when there is none
    submitted: int  # steps ever submitted
    durable_upto: int  # every ticket up to this one is durable (0: none yet)
    quarantined: int  # steps put in the dead-letter file instead of the database
    spooled: int  # steps made durable by the spool (the database was down or too slow)


@dataclass(slots=True, eq=False)
class Entry:
    """One submitted step, as the store sees it."""

    ticket: int
    step: CdrStep
    notify: Pid | None
    submitted_at: float  # trio time
    reply_to: Caller | None = None  # the caller of the call API, answered by the store that took it
    dispatched: bool = False  # handed to a worker by the store that took it
    crashes: int = 0  # stores that died with this step in flight


class CdrQueue:
    """A node-local FIFO of CDR steps waiting to be durable (see the module docstring)."""

    def __init__(self) -> None:
        self._waiting: deque[Entry] = deque()  # not taken by the store
        self._taken: deque[Entry] = deque()  # taken, not yet durable; older than every waiting one
        self._tickets = itertools.count(1)
        self._submitted = 0
        self._durable_upto = 0
        self._quarantined = 0
        self._spooled = 0
        self._store: Pid | None = None
        self._wake_pending = False
        self._waiters: list[tuple[int, int, trio.Event]] = []  # heap of (ticket, serial, event)
        self._serials = itertools.count()

    # -- the sessions' side ---------------------------------------------------------------------

    def submit(self, step: CdrStep, *, notify: Pid | None = None) -> int:
        """Queue `step`; returns its ticket (increasing). Never blocks, never raises.

        `notify` gets `CdrDurable(step.call_id, ticket)` once the step is durable.
        """
        return self._submit(step, notify, None)

    def is_durable(self, ticket: int) -> bool:
        """True once the step with `ticket` (and every one before it) is durable."""
        return ticket <= self._durable_upto

    async def wait_durable(self, ticket: int, timeout: float) -> bool:
        """Wait until `ticket` is durable, at most `timeout` seconds; returns `is_durable(ticket)`."""
        if ticket <= self._durable_upto:
            return True
        event = trio.Event()
        heapq.heappush(self._waiters, (ticket, next(self._serials), event))
        with trio.move_on_after(timeout):
            await event.wait()
        return ticket <= self._durable_upto

    def statistics(self) -> QueueStatistics:
        """Depth, age of the oldest step, counters (see QueueStatistics)."""
        oldest = self._taken[0] if self._taken else self._waiting[0] if self._waiting else None
        return QueueStatistics(
            depth=len(self._taken) + len(self._waiting),
            oldest_age=0.0 if oldest is None else trio.current_time() - oldest.submitted_at,
            submitted=self._submitted,
            durable_upto=self._durable_upto,
            quarantined=self._quarantined,
            spooled=self._spooled,
        )

    # -- the store's side -----------------------------------------------------------------------

    def _submit(self, step: CdrStep, notify: Pid | None, reply_to: Caller | None) -> int:
        ticket = next(self._tickets)
        self._submitted += 1
        self._waiting.append(Entry(ticket, step, notify, trio.current_time(), reply_to))
        if not self._wake_pending and self._store is not None:
            self._wake_pending = True
            send(self._store, Wake())
        return ticket

    def _attach(self, store: Pid) -> None:
        """Make `store` the queue's store; what a dead predecessor had taken comes back first."""
        for entry in self._taken:
            if entry.dispatched:
                entry.crashes += 1
            entry.dispatched = False
            entry.reply_to = None  # that caller was told its server exited
        self._waiting.extendleft(reversed(self._taken))
        self._taken.clear()
        self._store = store
        self._wake_pending = False

    def _take(self) -> list[Entry]:
        """Every waiting step, in order; they count as taken until settled or given back."""
        self._wake_pending = False
        taken = list(self._waiting)
        self._waiting.clear()
        self._taken.extend(taken)
        return taken

    def _give_back(self) -> None:
        """Put every taken step back in front of the waiting ones (they could not be written)."""
        for entry in self._taken:
            entry.dispatched = False
        self._waiting.extendleft(reversed(self._taken))
        self._taken.clear()

    def _settle(self, count: int, *, spooled: int = 0, quarantined: int = 0) -> list[Entry]:
        """The first `count` taken steps are durable: remove them, notify, wake waiters."""
        settled = [self._taken.popleft() for _ in range(count)]
        self._spooled += spooled
        self._quarantined += quarantined
        if settled:
            self._durable_upto = settled[-1].ticket
            for entry in settled:
                if entry.notify is not None:
                    send(entry.notify, CdrDurable(entry.step.call_id, entry.ticket))
            waiters = self._waiters
            while waiters and waiters[0][0] <= self._durable_upto:
                heapq.heappop(waiters)[2].set()
        return settled
