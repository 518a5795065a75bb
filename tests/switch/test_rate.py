"""Token buckets: bursts, exact refills, the wait a refusal reports, per-source buckets and their memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.switch._rate import SourceBuckets, TokenBucket


def test_a_full_bucket_lets_a_burst_through_then_refuses_with_the_wait_for_the_next_token() -> None:
    bucket = TokenBucket(10.0, 3)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.1)
    assert bucket.take(100.05) == pytest.approx(0.05)  # a refusal spends nothing
    assert bucket.take(100.1) == 0.0
    assert bucket.take(100.1) == pytest.approx(0.1)


def test_a_bucket_refills_at_its_rate_and_never_above_its_burst() -> None:
    bucket = TokenBucket(2.0, 4, now=0.0)
    for _ in range(4):
        bucket.take(0.0)
    assert bucket.full_at() == 2.0
    assert [bucket.take(1000.0) for _ in range(5)][-1] > 0  # 4 tokens after any pause, not 2,000


@given(st.lists(st.floats(min_value=0.0, max_value=5.0), max_size=200))
def test_over_any_schedule_a_bucket_lets_through_at_most_burst_plus_rate_times_the_time(gaps: list[float]) -> None:
    rate, burst = 5.0, 3
    bucket = TokenBucket(rate, burst, now=0.0)
    now, taken = 0.0, 0
    for gap in gaps:
        now += gap
        taken += bucket.take(now) == 0.0
    assert taken <= burst + rate * now + 1e-9


def test_a_zero_or_negative_rate_or_an_empty_burst_is_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0.0, 1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1.0, 0)


def test_each_source_has_its_own_bucket() -> None:
    buckets = SourceBuckets(1.0, 2)
    assert [buckets.take("10.0.0.1", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert buckets.take("10.0.0.2", 0.0) == 0.0


def test_sources_whose_buckets_are_full_again_are_forgotten_so_memory_stays_bounded() -> None:
    buckets = SourceBuckets(10.0, 1, sweep_floor=8)
    for i in range(10_000):  # one call from each of 10,000 addresses, 1 ms apart
        buckets.take(f"10.0.{i // 256}.{i % 256}", i * 0.001)
    # those not yet full again (the last 0.1 s: 100), up to twice that between sweeps; not 10,000
    assert len(buckets) <= 2 * 101
