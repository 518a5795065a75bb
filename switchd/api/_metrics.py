"""Prometheus metrics of one node: a registry of its own, read from the node's state at scrape time.

Almost everything is read when /metrics is scraped, not counted on the way: the rejection tally
(`Admission.rejections`), the connection table, the wire tap's SIP message counts, the CDR
queue, the billing store's status (one call to "billing"), and the process table (restarts and
mailbox depth of the registered servers, active calls). Only what exists nowhere else is
counted as it happens, by `MetricsHandler` on the node's EventManager: call attempts, calls by
disposition, failovers and setup latency — kept in `CallStats`, which `switchd status` reads too.

Every node has its own `CollectorRegistry` (never prometheus_client's global one): the tests run
several nodes in one process, and a restarted API finds the same registry and counts.

Labels never carry data from a request: methods switchd does not know are "other", status codes
are numbers, causes are switchd's own words, names are the registered names of servers (the
configuration's gateways among them) — never a Call-ID or an address.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from switchd.billing import StoreStatus
from switchd.otp import EventHandler, ProcessInfo
from switchd.switch import CallAnswered, CallEnded, CallFailover, CallSetup

from ._settings import NodeView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the setup-latency histogram: from a 5 ms answer to a minute of ringing."""
LATENCY_WINDOW = 1000
"""Setup latencies kept for the percentiles of `switchd status`: the last 1000 answered calls."""
CPS_WINDOW = 60.0
"""Seconds of call attempts kept for the calls-per-second figures."""


class CallStats:
    """What the node's call events add up to; written by MetricsHandler, read at scrape time."""

    def __init__(self) -> None:
        self.attempts = 0
        self.ended: Counter[str] = Counter()  # by disposition
        self.failovers: Counter[str] = Counter()  # by the gateway that failed
        self.setup_buckets = [0] * len(SETUP_BUCKETS)  # answered calls per bucket (not cumulative)
        self.setup_count = 0
        self.setup_sum = 0.0
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._recent: deque[float] = deque()  # trio times of the attempts in the last CPS_WINDOW

    def attempt(self) -> None:
        now = trio.current_time()
        self.attempts += 1
        self._recent.append(now)
        self._forget(now)

    def answered(self, setup_time: float) -> None:
        index = bisect.bisect_left(SETUP_BUCKETS, setup_time)
        if index < len(SETUP_BUCKETS):
            self.setup_buckets[index] += 1
        self.setup_count += 1
        self.setup_sum += setup_time
        self.latencies.append(setup_time)

    def cps(self, window: float) -> float:
        """Call attempts a second over the last `window` seconds (at most CPS_WINDOW)."""
        now = trio.current_time()
        self._forget(now)
        since = now - min(window, CPS_WINDOW)
        return sum(1 for at in self._recent if at > since) / window

    def percentiles(self) -> dict[str, float | None]:
        """p50, p95 and p99 of the last LATENCY_WINDOW setup latencies (None before any)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return {"p50": None, "p95": None, "p99": None}
        return {f"p{p}": round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 6) for p in (50, 95, 99)}

    def _forget(self, now: float) -> None:
        recent = self._recent
        while recent and recent[0] <= now - CPS_WINDOW:
            recent.popleft()


class MetricsHandler(EventHandler[CallStats]):
    """Adds the node's call events up in a CallStats (the argument of add_handler)."""

    async def init(self, arg: Any) -> CallStats:
        if not isinstance(arg, CallStats):
            raise TypeError(f"MetricsHandler needs a CallStats, not {arg!r}")
        return arg

    async def handle_event(self, event: Any, state: CallStats) -> CallStats:
        kind = type(event)
        if kind is CallSetup:
            state.attempt()
        elif kind is CallEnded:
            state.ended[event.disposition.value] += 1
        elif kind is CallAnswered:
            state.answered(event.setup_time)
        elif kind is CallFailover:
            state.failovers[event.gateway] += 1
        return state


@dataclass(frozen=True, slots=True)
class Scrape:
    """What one scrape read with an await before the registry is rendered: the rest is read live."""

    store: StoreStatus | None  # None: the billing store did not answer
    processes: Sequence[ProcessInfo]
    uptime: float


def _counter(name: str, doc: str, labels: Sequence[str], values: Mapping[tuple[str, ...], float]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _gauge(name: str, doc: str, value: float, labels: Sequence[str] = (),
           values: Mapping[tuple[str, ...], float] | None = None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    if values is None:
        family.add_metric([], value)
    else:
        for key, each in sorted(values.items()):
            family.add_metric(list(key), each)
    return family


class NodeMetrics(Collector):
    """The node's registry and the collector that reads the node into it (see the module docstring)."""

    def __init__(self, view: NodeView, stats: CallStats) -> None:
        self.view = view
        self.stats = stats
        self.registry = CollectorRegistry(auto_describe=False)
        self._scrape: Scrape | None = None
        self.registry.register(self)

    def render(self, scrape: Scrape) -> bytes:
        """The exposition text of the registry, reading `scrape` and the node's live state."""
        self._scrape = scrape
        try:
            return generate_latest(self.registry)
        finally:
            self._scrape = None

    def collect(self) -> Iterator[Metric]:
        scrape = self._scrape
        if scrape is None:  # collected outside render (a registry walk): nothing live to read
            return
        yield _gauge("switchd_info", "The node's name and switchd's version.", 1, ["node", "version"],
                     {(self.view.node, self.view.version): 1})
        yield _gauge("switchd_uptime_seconds", "Seconds since the node started.", scrape.uptime)
        yield from self._calls(scrape)
        yield from self._sip()
        yield from self._connections()
        yield from self._processes(scrape)
        yield from self._billing(scrape)

    def _calls(self, scrape: Scrape) -> Iterator[Metric]:
        stats = self.stats
        active = sum(1 for p in scrape.processes if p.kind == "call")
        yield _gauge("switchd_calls_active", "Calls in flight (call sessions running).", active)
        yield _counter("switchd_call_attempts", "Calls the node accepted and started (rate() is attempts/s).",
                       [], {(): stats.attempts})
        yield _counter("switchd_calls", "Calls ended, by CDR disposition.", ["disposition"],
                       {(d,): n for d, n in stats.ended.items()})
        yield _counter("switchd_call_failovers", "B-legs given up for the next gateway, by the gateway that failed.",
                       ["gateway"], {(g,): n for g, n in stats.failovers.items()})
        cumulative, running = [], 0
        for bound, count in zip(SETUP_BUCKETS, stats.setup_buckets, strict=True):
            running += count
            cumulative.append((repr(bound), float(running)))
        cumulative.append(("+Inf", float(stats.setup_count)))
        yield HistogramMetricFamily("switchd_call_setup_seconds", "Seconds from the caller's INVITE to the answer.",
                                    buckets=cumulative, sum_value=stats.setup_sum)
        admission = self.view.admission.statistics()
        yield _gauge("switchd_draining", "1 while the node drains (new calls get 503).", float(admission.draining))
        yield _counter("switchd_rejections", "Requests and connections the node turned away, by cause.", ["cause"],
                       {(c,): n for c, n in admission.rejections.by_cause.items()})
        lag = self.view.admission.loop_lag
        if lag is not None:  # measured only when limits.max_loop_lag is set
            yield _gauge("switchd_loop_lag_seconds", "How late the event loop runs a timer: mean of recent ticks.",
                         lag.mean)
            yield _gauge("switchd_loop_lag_max_seconds", "The latest the event loop ran a timer since the node started.",
                         lag.max)

    def _sip(self) -> Iterator[Metric]:
        tap = self.view.tap
        requests: dict[tuple[str, ...], float] = {("in", m): n for m, n in tap.requests_in.items()}
        requests.update({("out", m): n for m, n in tap.requests_out.items()})
        responses: dict[tuple[str, ...], float] = {("in", str(c)): n for c, n in tap.responses_in.items()}
        responses.update({("out", str(c)): n for c, n in tap.responses_out.items()})
        yield _counter("switchd_sip_requests", "SIP requests read and written, by method.", ["direction", "method"],
                       requests)
        yield _counter("switchd_sip_responses", "SIP responses read and written, by status code.",
                       ["direction", "code"], responses)
        yield _counter("switchd_sip_parse_errors", "SIP messages refused at the edge, by the status answered.",
                       ["status"], {(str(s),): n for s, n in tap.parse_errors.items()})

    def _connections(self) -> Iterator[Metric]:
        stats = self.view.connections.statistics()
        yield _gauge("switchd_connections_open", "Accepted SIP connections open now.", stats.open)
        yield _gauge("switchd_connections_carrying_calls", "Of those, connections with a call on them.",
                     stats.carrying_calls)
        yield _gauge("switchd_connections_max", "The accepted-connection limit in force.", stats.max_connections)
        yield _counter("switchd_connections_accepted", "SIP connections admitted.", [], {(): stats.accepted})
        yield _counter("switchd_connections_accept_failures", "accept() failures for want of file descriptors.",
                       [], {(): stats.accept_failures})
        yield _counter("switchd_connections_closed", "SIP connections the node closed itself, by cause.", ["cause"],
                       {(c,): n for c, n in stats.closed.by_cause.items()})

    def _processes(self, scrape: Scrape) -> Iterator[Metric]:
        servers = [p for p in scrape.processes if p.name is not None and p.kind != "call"]
        yield _counter("switchd_process_restarts", "Restarts of each registered server by its supervisor.",
                       ["name"], {(p.name,): p.restarts for p in servers if p.name is not None})
        yield _gauge("switchd_mailbox_depth", "Messages waiting in each registered server's mailbox.", 0, ["name"],
                     {(p.name,): p.mailbox_depth for p in servers if p.name is not None})
        kinds = Counter(p.kind for p in scrape.processes)
        yield _gauge("switchd_processes", "Live processes, by kind.", 0, ["kind"], {(k,): n for k, n in kinds.items()})

    def _billing(self, scrape: Scrape) -> Iterator[Metric]:
        queue = self.view.cdrs.statistics()
        yield _gauge("switchd_cdr_queue_depth", "CDR steps waiting to be durable.", queue.depth)
        yield _gauge("switchd_cdr_queue_oldest_seconds", "Age of the oldest CDR step waiting.", queue.oldest_age)
        yield _counter("switchd_cdr_steps_submitted", "CDR steps the calls submitted.", [], {(): queue.submitted})
        yield _counter("switchd_cdr_steps_spooled", "CDR steps made durable by the spool.", [], {(): queue.spooled})
        yield _counter("switchd_cdr_steps_quarantined", "CDR steps put in the dead-letter file.", [],
                       {(): queue.quarantined})
        store = scrape.store
        yield _gauge("switchd_billing_store_up", "1 when the billing store answered this scrape.", float(store is not None))
        if store is None:
            return
        yield _gauge("switchd_billing_db_up", "1 while CDR steps are written to the database.", float(store.connected))
        yield _gauge("switchd_billing_spooling", "1 while CDR steps go to the spool (an outage).", float(store.spooling))
        yield _gauge("switchd_billing_spool_steps", "CDR steps in the spool since the outage began.", store.spooled_ops)
        yield _counter("switchd_cdr_writes", "CDR steps committed to the database by the running store.", [],
                       {(): store.written_ops})
        yield _counter("switchd_cdr_batches", "Transactions of CDR steps committed by the running store.", [],
                       {(): store.batches})
        yield _counter("switchd_billing_db_errors", "Database writes, probes and replays that failed or overran.", [],
                       {(): store.db_errors})
