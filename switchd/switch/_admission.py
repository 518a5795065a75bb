"""Admission control: whether this node takes a new call now, and what a refusal tells the caller.

Five things refuse a new call, each answered 503 Service Unavailable with Retry-After at once —
never queued, so an overload costs the node one parse and one answer per INVITE:

* draining — the daemon was asked to stop (SIGTERM/SIGINT): calls in flight go on, new ones are
  refused so a load balancer in front (Kamailio's dispatcher) moves them to another node;
* the source's rate — more than ``per_ip_cps`` new calls a second (bursts of ``per_ip_burst``)
  from one source address, as Kamailio's pike module counts them: one flooding peer is refused
  before it can spend the node's own budget;
* the node's rate — more than ``cps`` new calls a second (bursts of ``burst``): call setup is
  the expensive part of a call (a session, a CDR open, a route lookup), and taking more of them
  than the node can set up makes every call slow instead of some refused;
* at capacity — the ``calls`` DynamicSupervisor already runs ``limits.max_calls`` sessions and
  refused the start with MaxChildren;
* a late event loop — when ``limits.max_loop_lag`` is set, while the loop's mean lateness
  (`switchd.otp.LoopLag`, measured by the tree's LagMonitor) is above it. The rates above are
  what the operator thinks the node can take; this is what it can take now, on this machine, with
  whatever else the cores are doing. A node past its capacity makes every message wait its turn —
  the 503s too — so its callers hear a late answer or none instead of a quick 503 they can take
  elsewhere. Refusing while the loop is late keeps the queue short: each excess INVITE then costs
  one parse and one answer, and the lateness falls back under the limit. It is off by default, as
  FreeSWITCH's ``min-idle-cpu`` is: a threshold right for one machine is wrong for another.

A REGISTER counts against its source's rate as a new call does (``per_ip_cps``: pike counts every
request of a source, and a phone that floods REGISTERs must not set up calls on the same budget),
and has a limit of its own besides, on by default: more than ``register_per_ip_rate`` a second
(bursts of ``register_per_ip_burst``) from one source address. Over either it is answered 503
with Retry-After (`admit_register`). A REGISTER flood — or a password-guessing run, which is
one — is refused before any digest is computed or the registrar is asked.

Every refusal is counted by cause (`Cause`) in the node's rejection `Tally`, which also logs them
— the first of a quiet period, then one summary line per interval — in place of a WARNING per
503. The dispatcher and the SIP edge count their own error answers in the same tally
(``admission.rejections.count(sip_cause(status))``), so one record holds every rejection.

Strategy: node-local state, not a process. The check runs on the hot path of every new INVITE,
in the reader of whichever connection it came in on; a GenServer would put one mailbox round trip
(and one queue shared by every connection) in front of each call for state that only this node's
own tasks touch, one at a time, without awaiting. `Admission` is the ETS table of this design: one
object, made by the application (`switchd.app.build_app`) and handed to the dispatcher and to
`prep_stop`, read and written without a message. It holds no task and dies with the tree that
holds it. Time comes from ``trio.current_time()``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import trio

from switchd.otp import LoopLag, MaxChildren

from ._errors import Overloaded
from ._rate import SourceBuckets, TokenBucket
from ._tally import Cause, Tally, TallyStats

log = logging.getLogger(__name__)

LOOP_LAG_RETRY_AFTER = 1.0
"""Seconds a 503 sent while the event loop is late asks the caller to wait: a lateness comes and goes
in well under a second, and 1 is the least Retry-After says."""


@dataclass(frozen=True, slots=True)
class AdmissionStats:
    """What admission control did so far (for `switchd status` and the metrics)."""

    draining: bool
    admitted: int  # new calls let through
    refused_draining: int  # new calls refused because the node is draining
    refused_full: int  # new calls refused because max_calls sessions were running
    refused_rate: int  # new calls refused over the node's calls-per-second
    refused_source_rate: int  # new calls refused over their source address's calls-per-second
    refused_loop_lag: int  # new calls refused while the event loop ran later than limits.max_loop_lag
    rejections: TallyStats  # every rejection of the node by cause, these four and the edge's


class Admission:
    """The overload and drain state of one node; see the module docstring.

    ``drain_retry_after``: seconds a 503 sent while draining asks the caller to wait, 30.0 (the
    default drain timeout: by then this node is gone or back).
    ``full_retry_after``: seconds a 503 sent at max_calls asks the caller to wait, 5.0.
    ``cps``: new calls a second the node takes in the long run; 0 means no limit, 0.
    ``burst``: new calls the node takes at once above ``cps`` (its bucket's size), 1.
    ``per_ip_cps``, ``per_ip_burst``: the same for each source address; 0 means no limit, 0 and 1.
    ``register_per_ip_rate``, ``register_per_ip_burst``: REGISTERs a second from one source address,
    and how many at once above it; 0 means no limit, 0 and 1.
    ``loop_lag``, ``max_loop_lag``: the node's measured lateness and the mean above which a new call
    is refused (seconds, > 0 when ``loop_lag`` is given); without a ``loop_lag`` lateness is not looked at.
    ``rejections``: the node's rejection tally, shared with the connections and the edge; a new
    one when not given.
    """

    __slots__ = (
        "_admitted",
        "_bucket",
        "_draining",
        "_loop_lag",
        "_registers",
        "_sources",
        "drain_retry_after",
        "full_retry_after",
        "max_loop_lag",
        "rejections",
    )

    def __init__(self, *, drain_retry_after: float = 30.0, full_retry_after: float = 5.0, cps: float = 0.0,
                 burst: int = 1, per_ip_cps: float = 0.0, per_ip_burst: int = 1,
                 register_per_ip_rate: float = 0.0, register_per_ip_burst: int = 1,
                 loop_lag: LoopLag | None = None, max_loop_lag: float = 0.0,
                 rejections: Tally | None = None) -> None:
        if loop_lag is not None and not max_loop_lag > 0:
            raise ValueError(f"Admission: max_loop_lag must be > 0, not {max_loop_lag!r}")
        for name, value in (("drain_retry_after", drain_retry_after), ("full_retry_after", full_retry_after),
                            ("cps", cps), ("per_ip_cps", per_ip_cps), ("register_per_ip_rate", register_per_ip_rate)):
            if not value >= 0:
                raise ValueError(f"Admission: {name} must be >= 0, not {value!r}")
        self.drain_retry_after = drain_retry_after
        self.full_retry_after = full_retry_after
        self.rejections = rejections or Tally("refused", log)
        self._bucket = TokenBucket(cps, burst) if cps > 0 else None
        self._sources = SourceBuckets(per_ip_cps, per_ip_burst) if per_ip_cps > 0 else None
        self._registers = (SourceBuckets(register_per_ip_rate, register_per_ip_burst) if register_per_ip_rate > 0
                           else None)
        self._loop_lag = loop_lag
        self.max_loop_lag = max_loop_lag
        self._draining = False
        self._admitted = 0

    @property
    def draining(self) -> bool:
        """True once `begin_drain` was called: new calls are refused from then on."""
        return self._draining

    @property
    def loop_lag(self) -> LoopLag | None:
        """The event loop's lateness admission looks at; None when ``max_loop_lag`` is off."""
        return self._loop_lag

    def begin_drain(self) -> None:
        """Refuse every new call from now on (calls in flight are not touched). Idempotent."""
        if not self._draining:
            self._draining = True
            log.warning("draining: new calls are refused with 503 (Retry-After %gs)", self.drain_retry_after,
                        extra={"retry_after": self.drain_retry_after})

    def admit(self, source: str = "", *, call_id: str | None = None) -> None:
        """Let one new call from `source` (an address; "" when unknown) in, or raise Overloaded.

        The Overloaded carries the Retry-After to answer; the refusal is already counted and
        logged (`call_id` is the log's context).
        """
        if self._draining:
            raise self._refuse(Cause.DRAINING, "draining: this node is shutting down", self.drain_retry_after,
                               call_id)
        sources, bucket = self._sources, self._bucket
        if sources is not None or bucket is not None:
            now = trio.current_time()
            if sources is not None and source:
                wait = sources.take(source, now)
                if wait:
                    raise self._refuse(Cause.SOURCE_RATE, f"over {sources.rate:g} calls/s from {source}",
                                       wait, call_id)
            if bucket is not None:
                wait = bucket.take(now)
                if wait:
                    raise self._refuse(Cause.RATE, f"over {bucket.rate:g} calls/s", wait, call_id)
        # Last, so a call refused for lateness has spent its tokens: the calls refused while the loop was
        # late do not come back as one burst of the bucket's size the moment it catches up.
        lag = self._loop_lag
        if lag is not None and lag.mean > self.max_loop_lag:
            raise self._refuse(Cause.LOOP_LAG, f"the event loop runs {lag.mean * 1000:.1f} ms late "
                               f"(limit {self.max_loop_lag * 1000:g} ms)", LOOP_LAG_RETRY_AFTER, call_id)
        self._admitted += 1

    def admit_register(self, source: str, *, call_id: str | None = None) -> None:
        """Let one REGISTER from `source` in, or raise Overloaded (counted and logged as ``register_rate``).

        It takes from the source's request bucket (``per_ip_cps``) and from its REGISTER bucket:
        both must have room.
        """
        if not source or (self._sources is None and self._registers is None):
            return
        now = trio.current_time()
        for buckets, what in ((self._sources, "requests"), (self._registers, "REGISTERs")):
            wait = 0.0 if buckets is None else buckets.take(source, now)
            if wait:
                assert buckets is not None
                overloaded = Overloaded(f"over {buckets.rate:g} {what}/s from {source}", retry_after=wait)
                self.rejections.note(Cause.REGISTER_RATE, "REGISTER refused with 503: %s", overloaded,
                                     extra={"call_id": call_id, "retry_after": wait})
                raise overloaded

    def full(self, exc: MaxChildren, *, call_id: str | None = None) -> Overloaded:
        """The Overloaded to answer when the calls supervisor refused a session with `exc`."""
        self._admitted -= 1  # admit() counted it; the supervisor did not take it
        return self._refuse(Cause.CAPACITY, f"at capacity: {exc}", self.full_retry_after, call_id)

    def _refuse(self, cause: Cause, reason: str, retry_after: float, call_id: str | None) -> Overloaded:
        overloaded = Overloaded(reason, retry_after=retry_after)
        self.rejections.note(cause, "new call refused with 503: %s", overloaded,
                             extra={"call_id": call_id, "retry_after": retry_after})
        return overloaded

    def statistics(self) -> AdmissionStats:
        """A snapshot of the counters."""
        rejections = self.rejections.statistics()
        return AdmissionStats(self._draining, self._admitted, rejections[Cause.DRAINING],
                              rejections[Cause.CAPACITY], rejections[Cause.RATE], rejections[Cause.SOURCE_RATE],
                              rejections[Cause.LOOP_LAG], rejections)


def retry_after_header(overloaded: Overloaded) -> tuple[str, str]:
    """The Retry-After header for a 503 (RFC 3261 §20.33: whole seconds, at least 1)."""
    return ("Retry-After", str(max(1, math.ceil(overloaded.retry_after))))
