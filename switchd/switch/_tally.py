"""Tally: events counted by cause, and a log that summarises them instead of repeating them.

An overloaded node refuses thousands of requests a second; one log line for each (2,250 WARNINGs
in 30 s in the overload run) buries everything else in the log and costs the CPU the refusals
were meant to save. A Tally counts every event by its cause — exactly: the metrics read these
counts — and logs:

* the first event of a quiet period as it happened (its own message and context);
* after that, at most one line per ``interval`` seconds: how many of each cause since the last.

It has no timer (no task, nothing to supervise): the summary line is written by the first event
after the interval, so the tail of a burst reaches the log with the next event, and the counts
always. Node-local state like `Admission`: made once by the application, written from whichever
task sees the event; the time is ``trio.current_time()``, so MockClock tests see exact intervals.

Causes are short stable words (`Cause`, or `sip_cause(status)` for an answer sent at the edge);
they are the label values of the metrics, so they must not carry data from the request.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import trio


class Cause(StrEnum):
    """Why the node turned a request or a connection away (the rejection counters' labels)."""

    DRAINING = "draining"  # new call while the node drains (503)
    CAPACITY = "capacity"  # new call with limits.max_calls sessions running (503)
    RATE = "rate"  # new call over the node's limits.cps (503)
    SOURCE_RATE = "source_rate"  # new call over limits.per_ip_cps from its source address (503)
    LOOP_LAG = "loop_lag"  # new call while the event loop runs later than limits.max_loop_lag (503)
    CONNECTIONS = "connections"  # connection beyond sip.max_connections, none idle to shed (closed)
    CONNECTIONS_PER_IP = "connections_per_ip"  # connection beyond sip.max_connections_per_ip (closed)
    REGISTER_RATE = "register_rate"  # REGISTER over limits.register_per_ip_rate from its source (503)
    AUTH = "auth"  # credentials that failed: unknown or disabled account, wrong, malformed, replayed (403/400/407)
    ACL = "acl"  # a request from a denied network (acl.deny) (403)


def sip_cause(status: int) -> str:
    """The cause for a SIP error answer the edge sent: ``sip_400``, ``sip_416`` …"""
    return f"sip_{status}"


@dataclass(frozen=True, slots=True)
class TallyStats:
    """A snapshot of a Tally: the total and the count of each cause seen (read-only mapping)."""

    total: int
    by_cause: Mapping[str, int]

    def __getitem__(self, cause: str) -> int:
        """The count of `cause`, 0 when it never happened."""
        return self.by_cause.get(cause, 0)


class Tally:
    """Counts events by cause and logs them rate-limited (see the module docstring).

    ``what``: names the events in the summary line ("refused", "connections closed").
    ``logger``: where the lines go. ``level``: their level, WARNING.
    ``interval``: seconds between two lines at most one of which is written, 10.0.
    """

    __slots__ = ("_counts", "_logged_at", "_pending", "interval", "level", "logger", "what")

    def __init__(self, what: str, logger: logging.Logger, *, level: int = logging.WARNING,
                 interval: float = 10.0) -> None:
        if not interval > 0:
            raise ValueError(f"Tally: interval must be > 0 seconds, not {interval!r}")
        self.what = what
        self.logger = logger
        self.level = level
        self.interval = interval
        self._counts: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()  # counted since the last line, not yet logged
        self._logged_at: float | None = None

    def count(self, cause: str) -> None:
        """Count one `cause` without logging (the caller logs it its own way)."""
        self._counts[cause] += 1

    def note(self, cause: str, message: str, *args: object, extra: Mapping[str, Any] | None = None,
             exc_info: BaseException | None = None) -> None:
        """Count one `cause`; log ``message % args`` if it starts a quiet period, else summarise.

        `extra` is the context of this one event (``call_id``, ``peer``), and `exc_info` its
        exception (its traceback is logged); the summary line carries the counts instead.
        """
        self._counts[cause] += 1
        now = trio.current_time()
        logged_at = self._logged_at
        if logged_at is not None and now - logged_at < self.interval:
            self._pending[cause] += 1
            return
        self._logged_at = now
        pending = self._pending
        if not pending:
            self.logger.log(self.level, message + " (more are summarised every %gs)", *args, self.interval,
                            extra={**(extra or {}), "cause": cause}, exc_info=exc_info)
            return
        pending[cause] += 1
        counts = dict(sorted(pending.items()))
        pending.clear()
        assert logged_at is not None  # something is pending only after a first line
        self.logger.log(self.level, "%s %d in the last %.0fs: %s", self.what, sum(counts.values()),
                        now - logged_at, ", ".join(f"{c}={n}" for c, n in counts.items()),
                        extra={"counts": counts, "seconds": now - logged_at})

    def statistics(self) -> TallyStats:
        """The counts so far."""
        return TallyStats(sum(self._counts.values()), MappingProxyType(dict(self._counts)))
