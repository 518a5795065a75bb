"""What every transaction shares: its states, its outputs, and one timer slot driven by the caller.

RFC 3261 §17 for a reliable transport (TCP). A transaction is a plain object, sans-IO: the caller
feeds it messages (`receive`, and `send_response` on the server side) and the time (`now`, float
seconds on any monotonic clock), and acts on the list of outputs each call returns:

=====================  ==============================================================================
output                 what the caller does
=====================  ==============================================================================
Transmit(message)      serialise `message` and write it on the transaction's connection
ToTransactionUser(m)   hand `m` (a response, client side) to the transaction user: the call's core
TimedOut(timer)        Timer B, F or H fired: the request got no final answer / the final response
                       no ACK; the TU treats it as a 408 (client) or ends the call (server)
TransportFailed()      `transport_error()` was reported: the TU treats it as a 503 (§8.1.3.1)
Terminated()           always last; the transaction is over, forget it (drop it from the table)
=====================  ==============================================================================

Timers: at most one timer is armed at a time in every state of §17 over a reliable transport, so a
transaction exposes one `next_deadline` (None when nothing is armed). The caller sleeps until the
earliest deadline of all its transactions and calls `handle_timeout(now)`; calling it early is
harmless (it returns []). Timers that RFC 3261 sets to zero on a reliable transport (D, I, J, K)
fire inside the call that arms them: the transaction is then Terminated on return.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypeAlias

from ._message import Request, Response
from ._timers import TimerConfig

log = logging.getLogger(__name__)

TimerName: TypeAlias = Literal["B", "D", "F", "H", "I", "J", "K"]
"""RFC 3261 Table 4 names of the timers a reliable-transport transaction can arm."""


class TransactionState(StrEnum):
    """The states of the four §17 state machines (each uses a subset)."""

    CALLING = "calling"  # INVITE client: request sent, nothing back yet
    TRYING = "trying"  # non-INVITE client and server: nothing sent back yet
    PROCEEDING = "proceeding"  # a provisional response went by
    COMPLETED = "completed"  # a final response went by (non-2xx for INVITE)
    CONFIRMED = "confirmed"  # INVITE server: the ACK for the non-2xx final came in
    TERMINATED = "terminated"  # over; the transaction ignores everything from now on


@dataclass(frozen=True, slots=True)
class Transmit:
    """Write `message` on the transaction's connection."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class ToTransactionUser:
    """Hand `message` to the transaction user (a response to the client's request)."""

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
    """Base of the four transaction kinds: state, the timer slot, termination.

    Not constructed directly; see InviteClientTransaction, NonInviteClientTransaction,
    InviteServerTransaction and NonInviteServerTransaction.
    """

    __slots__ = ("_deadline", "_state", "_timer", "request", "timers")

    def __init__(self, request: Request, state: TransactionState, timers: TimerConfig) -> None:
        self.request = request
        """The request that created the transaction (sent by a client, received by a server)."""
        self.timers = timers
        self._state = state
        self._deadline: float | None = None
        self._timer: TimerName | None = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.request.method} branch={self.branch!r} "
            f"state={self._state.value} deadline={self._deadline!r}>"
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
        return self._deadline

    def handle_timeout(self, now: float) -> list[TransactionOutput]:
        """Fire the armed timer if its deadline is <= `now`; else nothing happens."""
        if self._deadline is None or self._timer is None or now < self._deadline:
            return []
        timer = self._timer
        self._disarm()
        log.debug(
            "transaction %s %s: timer %s fired in %s",
            self.request.method,
            self.branch,
            timer,
            self._state.value,
            extra={"call_id": self.request.call_id, "timer": timer},
        )
        return self._on_timer(timer, now)

    def transport_error(self) -> list[TransactionOutput]:
        """The connection failed under this transaction: tell the TU and terminate (§17.1.1.2)."""
        if self.terminated:
            return []
        return [TransportFailed(), *self._terminate()]

    # -- for the subclasses -------------------------------------------------------------------

    def _on_timer(self, timer: TimerName, now: float) -> list[TransactionOutput]:
        raise NotImplementedError  # pragma: no cover

    def _set_state(self, state: TransactionState) -> None:
        log.debug(
            "transaction %s %s: %s -> %s",
            self.request.method,
            self.branch,
            self._state.value,
            state.value,
            extra={"call_id": self.request.call_id},
        )
        self._state = state

    def _arm(self, timer: TimerName, now: float, duration: float) -> list[TransactionOutput]:
        """Arm `timer` to fire `duration` after `now`; a zero duration fires it at once."""
        if duration <= 0:
            return self._on_timer(timer, now)
        self._timer = timer
        self._deadline = now + duration
        return []

    def _disarm(self) -> None:
        self._timer = None
        self._deadline = None

    def _terminate(self) -> list[TransactionOutput]:
        self._disarm()
        self._set_state(TransactionState.TERMINATED)
        return [Terminated()]
