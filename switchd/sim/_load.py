"""Load: many calls at a steady rate over one TCP connection, and what they measured.

Call *i* is placed at ``start + i / rate`` (trio time; a late start does not shift the calls
after it), each as its own caller process on the shared connection; `run_load` returns once
every call ended. Setup latency is INVITE sent → final response received, per call.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from ._address import HostPort
from ._uac import CallResult, Outcome, open_uac


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`-th percentile (0 < p <= 100) of `values` by the nearest-rank method.

    The smallest value with at least p% of the values at or below it; NaN for no values.
    """
    if not 0 < p <= 100:
        raise ValueError(f"percentile {p!r} is not in (0, 100]")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def expand_number(pattern: str, index: int) -> str:
    """The number for call `index`: trailing ``x``s in `pattern` become its digits (``20xx`` → 2007).

    A pattern without trailing x is used as it is; the index wraps within the x digits.
    """
    stripped = pattern.rstrip("xX")
    width = len(pattern) - len(stripped)
    if width == 0:
        return pattern
    return f"{stripped}{index % 10**width:0{width}d}"


@dataclass(frozen=True, slots=True)
class LoadReport:
    """The results of a load run, in call order, and its timing."""

    results: tuple[CallResult, ...]
    rate: float  # calls per second asked for
    send_duration: float  # first INVITE → last INVITE, seconds
    elapsed: float  # first INVITE → last call over, seconds

    @property
    def outcomes(self) -> Counter[str]:
        """How many calls ended each way, by `outcome_key`: ``"200"``, ``"486"``, ``"timeout"`` ..."""
        return Counter(outcome_key(r) for r in self.results)

    @property
    def timeouts(self) -> int:
        """Calls with no final answer in time (cancelled by us; a 487 to that CANCEL still counts here)."""
        return sum(1 for r in self.results if r.outcome is Outcome.TIMEOUT)

    @property
    def remote_ended(self) -> int:
        """Answered calls the other side ended (the switch or the callee sent BYE) before our hold was up."""
        return sum(1 for r in self.results if r.outcome is Outcome.ANSWERED and r.hangup_by == "callee")

    @property
    def unavailable(self) -> int:
        """Calls answered 503 Service Unavailable (the switch overloaded or draining, or every gateway failed)."""
        return sum(1 for r in self.results if r.outcome is Outcome.REJECTED and r.final_status == 503)

    @property
    def completed(self) -> int:
        """Calls that got their final answer (any code) — not timed out, not cut by a lost connection."""
        return sum(1 for r in self.results if r.outcome in _COMPLETED)

    @property
    def completed_per_second(self) -> float:
        """The rate the server completed calls at: (n - 1) / (last final answer - first), NaN below 2.

        Measured at the caller on the final answers, as SIPp's INVITE→200 rate is: a server that
        falls behind completes calls slower than they were sent, whatever the send rate.
        """
        done = sorted(r.started_at + r.setup_latency for r in self.results
                      if r.outcome in _COMPLETED and r.setup_latency is not None)
        if len(done) < 2:
            return math.nan
        span = done[-1] - done[0]
        return (len(done) - 1) / span if span > 0 else math.inf

    @property
    def latencies(self) -> list[float]:
        """Setup latencies (seconds) of the calls that got a final response."""
        return [r.setup_latency for r in self.results if r.setup_latency is not None]

    def latency(self, p: float) -> float:
        """The `p`-th percentile of setup latency, seconds (NaN when no call got a final response)."""
        return percentile(self.latencies, p)

    @property
    def calls_per_second(self) -> float:
        """The send rate achieved: INVITEs per second from the first to the last (not what completed)."""
        count = len(self.results)
        if count < 2 or self.send_duration <= 0:
            return math.nan if count < 2 else math.inf
        return (count - 1) / self.send_duration


_COMPLETED = (Outcome.ANSWERED, Outcome.REJECTED, Outcome.CANCELLED)


def outcome_key(result: CallResult) -> str:
    """How one call ended, for counting: the final code (``"200"``, ``"486"``, ``"503"``), or
    ``"200 remote-ended"`` for an answered call the other side hung up, ``"timeout"`` for no final
    answer in time (even when our CANCEL then got its 487), ``"transport_error"``.
    """
    match result.outcome:
        case Outcome.TIMEOUT | Outcome.TRANSPORT_ERROR:
            return str(result.outcome)
        case Outcome.ANSWERED if result.hangup_by == "callee":
            return f"{result.final_status} remote-ended"
    return str(result.final_status)


async def run_load(
    server: str | HostPort,
    *,
    rate: float,
    calls: int,
    hold: float,
    caller: str = "1000",
    callee: str = "2000",
    timeout: float = 32.0,
    on_result: Callable[[CallResult], None] | None = None,
) -> LoadReport:
    """Place `calls` calls at `rate` per second over one connection to `server`; returns the report.

    `caller` and `callee` may end in ``x``s, replaced by each call's index (see `expand_number`).
    `hold`, `timeout`: per call, as in `UacConnection.call`. `on_result` is called as each call
    ends (a progress bar). Raises AddressError / SimTransportError when the server is unreachable.
    """
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"rate {rate!r} must be a positive number of calls per second")
    if calls < 1:
        raise ValueError(f"calls {calls!r} must be at least 1")
    results: list[CallResult | None] = [None] * calls
    async with open_uac(server) as uac:

        async def one(index: int) -> None:
            result = await uac.call(expand_number(caller, index), expand_number(callee, index), hold=hold,
                                    timeout=timeout)
            results[index] = result
            if on_result is not None:
                on_result(result)

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for index in range(calls):
                await trio.sleep_until(start + index / rate)
                nursery.start_soon(one, index)
        end = trio.current_time()
    done = tuple(r for r in results if r is not None)
    first = min(r.started_at for r in done)
    last = max(r.started_at for r in done)
    return LoadReport(done, rate, last - first, end - first)
