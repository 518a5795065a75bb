"""What every transaction shares: its states, its outputs, and the timers the caller drives.

RFC 3261 §17 over a reliable transport (TCP) or an unreliable one (UDP), chosen per transaction
by its `reliable` flag. A transaction is a plain object, sans-IO: the caller feeds it messages
(`receive`, and `send_response` on the server side) and the time (`now`, float seconds on any
monotonic clock), and acts on the list of outputs each call returns:

=====================  ==============================================================================
output                 what the caller does
=====================  ==============================================================================
Transmit(message)      serialise `message` and write it on the transaction's transport (a
                       retransmission on UDP is a Transmit like any other)
ToTransactionUser(m)   hand `m` to the transaction user: a response (client side), or a request
                       the server transaction does not absorb (the ACK in Accepted, RFC 6026)
TimedOut(timer)        Timer B, F or H fired: the request got no final answer / the final response
                       no ACK; the TU treats it as a 408 (client) or ends the call (server)
TransportFailed()      `transport_error()` was reported: the TU treats it as a 503 (§8.1.3.1)
Terminated()           always last; the transaction is over, forget it (drop it from the table)
=====================  ==============================================================================

Timers: a transaction arms at most two at once (on UDP a retransmission timer beside its timeout:
A with B, E with F, G with H) and exposes the earliest as `next_deadline` (None when nothing is
armed). The caller sleeps until the earliest deadline of all its transactions and calls
`handle_timeout(now)`; calling it early is harmless (it returns []), and calling it late fires
each due timer once: a timeout before a retransmission due at the same time, and a retransmission
timer that missed several deadlines retransmits once and keeps its schedule. Timers that RFC 3261
sets to zero on a reliable transport (D, I, J, K) fire inside the call that arms them: the
transaction is then Terminated on return.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypeAlias

from ._message import Request, Response
from ._timers import TimerConfig

log = logging.getLogger(__name__)

TimerName: TypeAlias = Literal["A", "B", "D", "E", "F", "G", "H", "I", "J", "K", "L"]
"""RFC 3261 Table 4 names of the timers a transaction can arm (L: RFC 6026's Accepted state)."""

RETRANSMIT_TIMERS: frozenset[TimerName] = frozenset({"A", "E", "G"})
"""The timers that retransmit (UDP only); every other one ends its state when it fires."""


class TransactionState(StrEnum):
    """The states of the four §17 state machines (each uses a subset)."""

    CALLING = "calling"  # INVITE client: request sent, nothing back yet
    TRYING = "trying"  # non-INVITE client and server: nothing sent back yet
    PROCEEDING = "proceeding"  # a provisional response went by
    COMPLETED = "completed"  # a final response went by (non-2xx for INVITE)
    ACCEPTED = "accepted"  # INVITE server on UDP: a 2xx went out (RFC 6026 §8.7); absorbs INVITE retransmissions
    CONFIRMED = "confirmed"  # INVITE server: the ACK for the non-2xx final came in
    TERMINATED = "terminated"  # over; the transaction ignores everything from now on


@dataclass(frozen=True, slots=True)
class Transmit:
    """Write `message` on the transaction's connection."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class ToTransactionUser:
    """Hand `message` to the transaction user (a response to the client's request; a request a server
    transaction does not absorb)."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Timer `timer` fired: B/F (no final response to our request) or H (no ACK for our non-2xx)."""

    timer: TimerName


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport reported a fatal error for this transaction (§17.1.1.2, §17.2.4)."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction reached the Terminated state; it is always the last output of a list."""


TransactionOutput: TypeAlias = Transmit | ToTransactionUser | TimedOut | TransportFailed | Terminated
"""Anything a transaction asks its caller to do."""


class Transaction:
    """Base of the four transaction kinds: state, the timers, termination.

    Not constructed directly; see InviteClientTransaction, NonInviteClientTransaction,
    InviteServerTransaction and NonInviteServerTransaction. `reliable` (True: TCP) says whether the
    transport retransmits for us; on False (UDP) the transaction retransmits itself and lingers
    to absorb duplicates (RFC 3261 §17, Table 4).
    """

    __slots__ = ("_interval", "_state", "_timers", "reliable", "request", "timers")

    def __init__(self, request: Request, state: TransactionState, timers: TimerConfig, reliable: bool) -> None:
        self.request = request
        """The request that created the transaction (sent by a client, received by a server)."""
        self.timers = timers
        self.reliable = reliable
        """True on a reliable transport (TCP): no retransmissions, no linger."""
        self._state = state
        self._timers: dict[TimerName, float] = {}  # armed timer -> its deadline
        self._interval = timers.t1  # the retransmission timer's current interval (UDP)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.request.method} branch={self.branch!r} "
            f"state={self._state.value} timers={self._timers!r}>"
        )

    @property
    def state(self) -> TransactionState:
        """The current state."""
        return self._state

    @property
    def terminated(self) -> bool:
        """True once the transaction is over: drop it and ignore what else arrives for it."""
        return self._state is TransactionState.TERMINATED

    @property
    def branch(self) -> str:
        """The top-Via branch of the request: the transaction's id (§17.1.3, §17.2.3)."""
        return self.request.top_via.branch or ""

    @property
    def next_deadline(self) -> float | None:
        """When `handle_timeout` must next be called, or None when no timer is armed."""
        timers = self._timers
        if not timers:
            return None
        return min(timers.values()) if len(timers) > 1 else next(iter(timers.values()))

    def handle_timeout(self, now: float) -> list[TransactionOutput]:
        """Fire every armed timer whose deadline is <= `now`, each once; else nothing happens."""
        outputs: list[TransactionOutput] = []
        fired: set[TimerName] = set()
        while not self.terminated:
            due = [name for name, deadline in self._timers.items() if deadline <= now and name not in fired]
            if not due:
                break
            # A timeout ends the state: it goes first, and a retransmission due with it never goes out.
            ending = [name for name in due if name not in RETRANSMIT_TIMERS]
            timer = min(ending or due, key=self._timers.__getitem__)
            fired.add(timer)
            deadline = self._timers.pop(timer)
            log.debug(
                "transaction %s %s: timer %s fired in %s",
                self.request.method,
                self.branch,
                timer,
                self._state.value,
                extra={"call_id": self.request.call_id, "timer": timer},
            )
            outputs += self._on_timer(timer, now, deadline)
        return outputs

    def transport_error(self) -> list[TransactionOutput]:
        """The connection failed under this transaction: tell the TU and terminate (§17.1.1.2)."""
        if self.terminated:
            return []
        return [TransportFailed(), *self._terminate()]

    # -- for the subclasses -------------------------------------------------------------------

    def _on_timer(self, timer: TimerName, now: float, deadline: float) -> list[TransactionOutput]:
        """Timer `timer`, due at `deadline`, fired at `now` (>= deadline); it is disarmed already."""
        raise NotImplementedError  # pragma: no cover

    def _set_state(self, state: TransactionState) -> None:
        if log.isEnabledFor(logging.DEBUG):  # its arguments (two enum values, the Call-ID) cost more than the test
            log.debug("transaction %s %s: %s -> %s", self.request.method, self.branch, self._state.value, state.value,
                      extra={"call_id": self.request.call_id})
        self._state = state

    def _arm(self, timer: TimerName, now: float, duration: float) -> list[TransactionOutput]:
        """Arm `timer` to fire `duration` after `now`; a zero duration fires it at once."""
        if duration <= 0:
            return self._on_timer(timer, now, now)
        self._timers[timer] = now + duration
        return []

    def _linger(self, duration: float) -> float:
        """`duration` of a timer that only absorbs duplicates: 0 on a reliable transport."""
        return 0.0 if self.reliable else duration

    def _start_retransmitting(self, timer: TimerName, now: float) -> None:
        """Arm the retransmission timer `timer` (A, E or G) at T1, on an unreliable transport only."""
        if not self.reliable:
            self._interval = self.timers.t1
            self._timers[timer] = now + self._interval

    def _retransmit_again(self, timer: TimerName, now: float, deadline: float, *, cap: float | None) -> None:
        """Re-arm the retransmission timer that fired: the interval doubles (up to `cap`, if any).

        The schedule steps from the missed `deadline`, not from `now`, so a late caller does not
        shift it; several missed deadlines still cost a single retransmission.
        """
        next_at = deadline
        while next_at <= now:
            self._interval = 2 * self._interval if cap is None else min(2 * self._interval, cap)
            next_at += self._interval
        self._timers[timer] = next_at

    def _disarm(self, *timers: TimerName) -> None:
        """Disarm `timers`; all of them when none is named."""
        if not timers:
            self._timers.clear()
            return
        for timer in timers:
            self._timers.pop(timer, None)

    def _terminate(self) -> list[TransactionOutput]:
        self._disarm()
        self._set_state(TransactionState.TERMINATED)
        return [Terminated()]
