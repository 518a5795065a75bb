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
from ._uac import CallResult, open_uac


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
        """How many calls ended each way: the final status (``"200"``) or the outcome (``"timeout"``)."""
        return Counter(str(r.final_status) if r.final_status is not None else str(r.outcome) for r in self.results)

    @property
    def latencies(self) -> list[float]:
        """Setup latencies (seconds) of the calls that got a final response."""
        return [r.setup_latency for r in self.results if r.setup_latency is not None]

    def latency(self, p: float) -> float:
        """The `p`-th percentile of setup latency, seconds (NaN when no call got a final response)."""
        return percentile(self.latencies, p)

    @property
    def calls_per_second(self) -> float:
        """The INVITE rate achieved: calls placed per second from the first INVITE to the last."""
        count = len(self.results)
        if count < 2 or self.send_duration <= 0:
            return math.nan if count < 2 else math.inf
        return (count - 1) / self.send_duration


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
