"""The call events a CallSession tells the EventManager ("events"), and how it tells them.

Every event carries the caller's (A-leg) Call-ID and `at`, the UTC time it happened (the call's
wall clock: see `CallClock`). They go out with `switchd.otp.notify`, which never blocks; when no
EventManager is registered (it is restarting) the event is dropped with a debug line: events are
for metrics and logs, and a call never waits for them.

    CallSetup     the INVITE was accepted (after the 100 Trying)
    CallProgress  a 180/183 from the callee was relayed to the caller
    CallFailover  a gateway failed before answering; the next one is tried
    CallAnswered  the callee answered; its 200 goes to the caller (now, or once the CDR open is durable)
    CallEnded     the call is over: disposition, final SIP code, who hung up
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import trio

from switchd.billing import Disposition, HangupParty
from switchd.otp import NoProcess, notify

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallClock:
    """A call's wall clock: the UTC time at the start of the call plus the monotonic time since.

    CDR times and event times come from it, so a call's duration is measured on trio's monotonic
    clock (a wall-clock step during a call never bills a wrong duration), and under a MockClock
    in tests a virtual hold of 30 s is a billed 30 s.
    """

    wall: datetime  # UTC wall time at `mono`
    mono: float  # trio.current_time() at `wall`

    @classmethod
    def start(cls) -> CallClock:
        """A clock anchored now."""
        return cls(datetime.now(UTC), trio.current_time())

    def at(self, mono: float) -> datetime:
        """The UTC time of the monotonic instant `mono` (trio.current_time() units)."""
        return self.wall + timedelta(seconds=mono - self.mono)

    def now(self) -> datetime:
        """The UTC time now."""
        return self.at(trio.current_time())


@dataclass(frozen=True, slots=True)
class CallSetup:
    """The INVITE `call_id` from `caller` to `callee` was accepted on node `node`."""

    call_id: str
    at: datetime
    caller: str
    callee: str
    node: str


@dataclass(frozen=True, slots=True)
class CallProgress:
    """The callee's `status` (180/183) through `gateway` was relayed to the caller."""

    call_id: str
    at: datetime
    status: int
    gateway: str


@dataclass(frozen=True, slots=True)
class CallFailover:
    """`gateway` failed (`reason`) before answering; `next_gateway` is tried (attempt `attempt`)."""

    call_id: str
    at: datetime
    gateway: str
    reason: str
    next_gateway: str
    attempt: int


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The callee answered through `gateway`; `setup_time` is seconds from INVITE to answer."""

    call_id: str
    at: datetime
    gateway: str
    setup_time: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over. `sip_code` is the final status the caller got (200 if answered);
    `duration` is seconds from answer to end (0.0 if never answered)."""

    call_id: str
    at: datetime
    disposition: Disposition
    sip_code: int
    hangup_by: HangupParty
    cause: str
    duration: float
    gateway: str | None


CallEvent: TypeAlias = CallSetup | CallProgress | CallFailover | CallAnswered | CallEnded
"""Any event a CallSession emits."""


def emit(manager: str, event: CallEvent) -> None:
    """Notify the EventManager registered as `manager`; never blocks, skipped when it is down."""
    try:
        notify(manager, event)
    except NoProcess:
        log.debug("no event manager %r: %s dropped", manager, type(event).__name__,
                  extra={"call_id": event.call_id})
