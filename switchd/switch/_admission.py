"""Admission control: whether this node takes new calls now, and what a refusal tells the caller.

Two things refuse a new call, both answered 503 Service Unavailable with Retry-After:

* draining — the daemon was asked to stop (SIGTERM/SIGINT): calls in flight go on, new ones are
  refused so a load balancer in front (Kamailio's dispatcher) moves them to another node;
* at capacity — the ``calls`` DynamicSupervisor already runs ``limits.max_calls`` sessions and
  refused the start with MaxChildren.

Strategy: node-local state, not a process. The check runs on the hot path of every new INVITE,
in the reader of whichever connection it came in on; a GenServer would put one mailbox round trip
(and one queue shared by every connection) in front of each call for a flag that changes once in
the node's life. `Admission` is the ETS table of this design: one object, made by the application
(`switchd.app.build_app`) and handed to the dispatcher and to `prep_stop`, read without a message,
written only by the drain. It holds no task and dies with the tree that holds it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from switchd.otp import MaxChildren

from ._errors import Overloaded

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdmissionStats:
    """What admission control did so far (for `switchd status` and the metrics)."""

    draining: bool
    admitted: int  # new calls let through
    refused_draining: int  # new calls refused because the node is draining
    refused_full: int  # new calls refused because max_calls sessions were running


class Admission:
    """The overload and drain state of one node; see the module docstring.

    ``drain_retry_after``: seconds a 503 sent while draining asks the caller to wait, 30.0 (the
    default drain timeout: by then this node is gone or back).
    ``full_retry_after``: seconds a 503 sent at max_calls asks the caller to wait, 5.0.
    """

    __slots__ = (
        "_admitted",
        "_draining",
        "_refused_draining",
        "_refused_full",
        "drain_retry_after",
        "full_retry_after",
    )

    def __init__(self, *, drain_retry_after: float = 30.0, full_retry_after: float = 5.0) -> None:
        for name, value in (("drain_retry_after", drain_retry_after), ("full_retry_after", full_retry_after)):
            if not value >= 0:
                raise ValueError(f"Admission: {name} must be >= 0 seconds, not {value!r}")
        self.drain_retry_after = drain_retry_after
        self.full_retry_after = full_retry_after
        self._draining = False
        self._admitted = 0
        self._refused_draining = 0
        self._refused_full = 0

    @property
    def draining(self) -> bool:
        """True once `begin_drain` was called: new calls are refused from then on."""
        return self._draining

    def begin_drain(self) -> None:
        """Refuse every new call from now on (calls in flight are not touched). Idempotent."""
        if not self._draining:
            self._draining = True
            log.warning("draining: new calls are refused with 503 (Retry-After %gs)", self.drain_retry_after,
                        extra={"retry_after": self.drain_retry_after})

    def admit(self) -> None:
        """Let one new call in, or raise Overloaded with the Retry-After to answer."""
        if self._draining:
            self._refused_draining += 1
            raise Overloaded("draining: this node is shutting down", retry_after=self.drain_retry_after)
        self._admitted += 1

    def full(self, exc: MaxChildren) -> Overloaded:
        """The Overloaded to answer when the calls supervisor refused a session with `exc`."""
        self._admitted -= 1  # admit() counted it; the supervisor did not take it
        self._refused_full += 1
        return Overloaded(f"at capacity: {exc}", retry_after=self.full_retry_after)

    def statistics(self) -> AdmissionStats:
        """A snapshot of the counters."""
        return AdmissionStats(self._draining, self._admitted, self._refused_draining, self._refused_full)


def retry_after_header(overloaded: Overloaded) -> tuple[str, str]:
    """The Retry-After header for a 503 (RFC 3261 §20.33: whole seconds, at least 1)."""
    return ("Retry-After", str(max(1, math.ceil(overloaded.retry_after))))
