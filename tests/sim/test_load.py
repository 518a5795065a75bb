"""Load: calls at a steady rate over one connection, outcomes counted and latencies measured."""

from __future__ import annotations

import math

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from switchd.sim import Answer, Behaviours, Busy, CallResult, expand_number, percentile, run_load, start_sim


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order of input does not matter
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0  # ceil(0.5 * 2) = rank 1


def test_percentile_of_nothing_is_nan_and_a_bad_p_is_refused() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="not in"):
        percentile([1.0], 0)
    with pytest.raises(ValueError, match="not in"):
        percentile([1.0], 101)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1), st.floats(0.1, 100))
def test_percentile_is_a_value_with_at_least_p_percent_at_or_below_it(values: list[float], p: float) -> None:
    result = percentile(values, p)
    assert result in values
    at_or_below = sum(1 for v in values if v <= result)
    below = sum(1 for v in values if v < result)
    assert at_or_below / len(values) >= p / 100
    assert below / len(values) < p / 100


def test_expand_number_fills_trailing_xs_with_the_call_index() -> None:
    assert expand_number("2000", 7) == "2000"
    assert expand_number("44xx", 7) == "4407"
    assert expand_number("44xx", 123) == "4423"
    assert expand_number("xxx", 5) == "005"


async def test_fifty_calls_at_100_per_second_over_one_connection_are_all_answered() -> None:
    seen: list[CallResult] = []
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], Behaviours(default=Answer(ring=0.02)), name="load")
        with trio.fail_after(20):
            report = await run_load(sim.addresses[0], rate=100, calls=50, hold=0.05, callee="20xx",
                                    on_result=seen.append)
        nursery.cancel_scope.cancel()
    # One TCP connection carried every call: every INVITE was sent from the same local port.
    assert len({r.ladder[0].message.top_via.sent_by for r in report.results}) == 1
    assert len(report.results) == 50 and len(seen) == 50
    assert report.outcomes == {"200": 50}
    assert all(r.hangup_by == "caller" for r in report.results)
    assert len({r.call_id for r in report.results}) == 50
    assert [r.callee for r in report.results][:3] == ["2000", "2001", "2002"]
    # Percentiles come from the measured latencies: every call rang 0.02 s before its 200.
    latencies = sorted(r.setup_latency for r in report.results if r.setup_latency is not None)
    assert len(latencies) == 50 and latencies[0] >= 0.02
    assert report.latency(50) == latencies[24]
    assert report.latency(95) == latencies[47]
    assert report.latency(99) == latencies[49]
    # 50 calls at 100/s: the last INVITE goes at least 0.49 s after the first (never early), and the
    # rate achieved is what was measured (no upper bound on the duration: the CPU is shared).
    assert report.send_duration >= 0.49
    assert report.calls_per_second == pytest.approx(49 / report.send_duration)
    assert report.calls_per_second <= 100.5


async def test_load_counts_each_outcome_by_code() -> None:
    behaviours = Behaviours(default=Answer(ring=0.0), prefixes={"1": Busy()})
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], behaviours, name="mixed")
        with trio.fail_after(20):
            report = await run_load(sim.addresses[0], rate=200, calls=20, hold=0.0, callee="xx")
        nursery.cancel_scope.cancel()
    assert report.outcomes == {"200": 10, "486": 10}  # 00…09 answered, 10…19 busy
    assert {r.callee for r in report.results if r.final_status == 486} == {f"1{d}" for d in range(10)}


async def test_run_load_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        await run_load("127.0.0.1:9", rate=0, calls=1, hold=0)
