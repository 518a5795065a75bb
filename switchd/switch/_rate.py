"""Rate limits for new calls: a token bucket, and one bucket per source address (Kamailio's pike).

Pure: every method is handed the time (``trio.current_time()`` at the caller), so a MockClock
test sees exact refills, and nothing here sleeps or owns a task. A refused take spends nothing
and says how long until a token will be there — the Retry-After of the 503.

Why buckets and not a window count: a bucket lets a burst of `burst` calls through at once (a
load balancer reconnecting, a campaign starting) and then holds the long-run rate to `rate`,
with O(1) state; a fixed window lets twice the rate through across a window edge.
"""

from __future__ import annotations

import math

# A token less a rounding error is a token: 0.1 s at 10 a second adds 0.9999999999999943.
_WHOLE = 1.0 - 1e-9


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; full at `now` (by default: full from the start).

    Raises ValueError unless ``rate > 0`` and ``burst >= 1``.
    """

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float = -math.inf) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"TokenBucket: rate must be a positive number of tokens a second, not {rate!r}")
        if burst < 1:
            raise ValueError(f"TokenBucket: burst must be >= 1, not {burst!r}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> float:
        """Spend one token: 0.0 when there was one, else the seconds until there will be (none spent)."""
        tokens = self._tokens
        if now > self._at:  # the clock never goes back; a take at the same instant adds nothing
            tokens = min(self.burst, tokens + (now - self._at) * self.rate)
            self._at = now
        if tokens >= _WHOLE:
            self._tokens = max(0.0, tokens - 1.0)
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / self.rate

    def full_at(self) -> float:
        """When the bucket will be full again if nothing is taken (then it may as well be forgotten)."""
        return self._at + (self.burst - self._tokens) / self.rate


class SourceBuckets:
    """A `TokenBucket(rate, burst)` per source address, each made full on the source's first take.

    Memory stays bounded by the sources active lately, not by every address ever seen: once the
    table has grown to twice its size after the last sweep (at least ``sweep_floor`` entries), the
    buckets that are full again are dropped — a full bucket and no bucket answer alike.
    """

    __slots__ = ("_buckets", "_sweep_at", "burst", "rate", "sweep_floor")

    def __init__(self, rate: float, burst: int, *, sweep_floor: int = 1024) -> None:
        TokenBucket(rate, burst)  # the same checks, once
        self.rate = rate
        self.burst = burst
        self.sweep_floor = sweep_floor
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = sweep_floor

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, source: str, now: float) -> float:
        """Spend one of `source`'s tokens; as `TokenBucket.take`."""
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            bucket = self._buckets[source] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def _sweep(self, now: float) -> None:
        self._buckets = {s: b for s, b in self._buckets.items() if b.full_at() > now}
        self._sweep_at = max(self.sweep_floor, 2 * len(self._buckets))
