"""Admission: the drain, the node's and each source's calls per second, and a count of every refusal."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from switchd.otp import LoopLag, MaxChildren
from switchd.switch import Cause, Overloaded
from switchd.switch._admission import Admission, retry_after_header


async def test_a_fresh_node_admits_calls_and_counts_them() -> None:
    admission = Admission()
    admission.admit()
    admission.admit()
    assert admission.statistics().admitted == 2
    assert not admission.draining


async def test_once_draining_every_new_call_is_refused_with_the_drain_retry_after() -> None:
    admission = Admission(drain_retry_after=12.0)
    admission.begin_drain()
    admission.begin_drain()  # idempotent
    with pytest.raises(Overloaded) as caught:
        admission.admit()
    assert caught.value.retry_after == 12.0
    assert admission.statistics().refused_draining == 1


async def test_a_full_calls_supervisor_turns_into_overloaded_and_uncounts_the_admission() -> None:
    admission = Admission(full_retry_after=2.0)
    admission.admit()
    overloaded = admission.full(MaxChildren("calls already runs 1 children"))
    assert overloaded.retry_after == 2.0
    assert "calls already runs 1" in str(overloaded)
    stats = admission.statistics()
    assert (stats.admitted, stats.refused_full) == (0, 1)


@pytest.mark.parametrize(("seconds", "header"), [(0.0, "1"), (0.2, "1"), (5.0, "5"), (29.1, "30")])
def test_retry_after_is_whole_seconds_and_at_least_one(seconds: float, header: str) -> None:
    assert retry_after_header(Overloaded("x", retry_after=seconds)) == ("Retry-After", header)


def test_a_negative_retry_after_or_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="drain_retry_after"):
        Admission(drain_retry_after=-1)
    with pytest.raises(ValueError, match="cps"):
        Admission(cps=-1)


def refusals(admission: Admission, count: int, source: str = "") -> list[float]:
    """Offer `count` new calls at once; the Retry-After of each refused one."""
    waits = []
    for _ in range(count):
        try:
            admission.admit(source)
        except Overloaded as exc:
            waits.append(exc.retry_after)
    return waits


async def test_the_node_takes_a_burst_then_its_calls_per_second_and_refuses_the_rest_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    admission = Admission(cps=10.0, burst=5)
    assert refusals(admission, 8) == [pytest.approx(0.1)] * 3
    await trio.sleep(1.0)  # 10 tokens' worth, capped at the burst of 5
    assert len(refusals(admission, 8)) == 3
    for _ in range(10):  # then exactly the rate: one every 0.1 s
        await trio.sleep(0.1)
        assert refusals(admission, 1) == []
    stats = admission.statistics()
    assert (stats.admitted, stats.refused_rate) == (20, 6)
    assert stats.rejections[Cause.RATE] == 6


async def test_one_source_over_its_rate_is_refused_while_another_source_still_gets_in(
        autojump_clock: trio.testing.MockClock) -> None:
    admission = Admission(per_ip_cps=1.0, per_ip_burst=2)
    assert refusals(admission, 5, "192.0.2.66") == [pytest.approx(1.0)] * 3
    assert refusals(admission, 2, "192.0.2.10") == []
    assert refusals(admission, 2, "") == []  # an unknown source is not limited per source
    stats = admission.statistics()
    assert (stats.admitted, stats.refused_source_rate, stats.refused_rate) == (6, 3, 0)


async def test_a_flooding_source_does_not_spend_the_nodes_budget(autojump_clock: trio.testing.MockClock) -> None:
    admission = Admission(cps=5.0, burst=5, per_ip_cps=1.0, per_ip_burst=1)
    assert len(refusals(admission, 100, "192.0.2.66")) == 99
    assert [refusals(admission, 1, f"192.0.2.{i}") for i in range(1, 5)] == [[]] * 4  # the 4 tokens left
    assert admission.statistics().refused_rate == 0


async def test_refusals_are_logged_once_then_summarised_not_one_warning_each(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    admission = Admission(cps=1.0, burst=1)
    for _ in range(75):  # 2,250 refusals in 30 s, as the overload run saw
        refusals(admission, 30, "192.0.2.1")
        await trio.sleep(0.4)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 2 <= len(warnings) <= 4, [r.getMessage() for r in warnings]
    assert warnings[0].getMessage().startswith("new call refused with 503: over 1 calls/s")
    assert "rate=" in warnings[1].getMessage()
    assert admission.statistics().refused_rate == 75 * 30 - admission.statistics().admitted


async def test_registers_from_one_source_are_limited_on_their_own(autojump_clock: trio.testing.MockClock) -> None:
    admission = Admission(register_per_ip_rate=2.0, register_per_ip_burst=3, per_ip_cps=100.0, per_ip_burst=100)
    for _ in range(3):
        admission.admit_register("192.0.2.7")
    with pytest.raises(Overloaded) as refused:
        admission.admit_register("192.0.2.7")
    assert refused.value.retry_after == pytest.approx(0.5)
    admission.admit_register("192.0.2.8")  # another address has its own bucket
    admission.admit("192.0.2.7")  # calls from the flooding address are not this limit's business
    await trio.sleep(0.5)
    admission.admit_register("192.0.2.7")
    stats = admission.statistics()
    assert stats.rejections[Cause.REGISTER_RATE] == 1 and stats.admitted == 1


def test_without_a_register_rate_registers_are_never_refused() -> None:
    admission = Admission()
    for _ in range(10_000):
        admission.admit_register("192.0.2.7")
    assert admission.statistics().rejections.total == 0


async def test_registers_count_against_their_sources_request_rate_as_calls_do(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission(per_ip_cps=10.0, per_ip_burst=20)  # no REGISTER limit of its own
    for _ in range(20):
        admission.admit_register("192.0.2.7")
    with pytest.raises(Overloaded) as refused:
        admission.admit_register("192.0.2.7")
    assert refused.value.retry_after == pytest.approx(0.1)
    with pytest.raises(Overloaded):
        admission.admit("192.0.2.7")  # the flood spent the address's budget for calls too
    admission.admit_register("192.0.2.8")
    await trio.sleep(0.1)
    admission.admit_register("192.0.2.7")
    assert admission.statistics().rejections[Cause.REGISTER_RATE] == 1


async def test_while_the_event_loop_runs_late_new_calls_are_refused_and_spend_their_token(
        autojump_clock: trio.testing.MockClock) -> None:
    lag = LoopLag(weight=1.0)
    admission = Admission(cps=10.0, burst=3, loop_lag=lag, max_loop_lag=0.02)
    lag.record(0.02)  # at the limit: still taken
    admission.admit()
    lag.record(0.025)
    with pytest.raises(Overloaded, match="25.0 ms late") as caught:
        admission.admit()
    assert retry_after_header(caught.value) == ("Retry-After", "1")
    lag.record(0.0)
    admission.admit()  # the burst's third token
    # the late loop's refusal spent the second: no burst of refused calls comes back once it catches up
    assert refusals(admission, 1) == [pytest.approx(0.1)]
    stats = admission.statistics()
    assert (stats.admitted, stats.refused_loop_lag, stats.refused_rate) == (2, 1, 1)
    assert stats.rejections[Cause.LOOP_LAG] == 1


async def test_draining_is_said_before_lateness() -> None:
    lag = LoopLag(weight=1.0)
    lag.record(1.0)
    admission = Admission(loop_lag=lag, max_loop_lag=0.05, drain_retry_after=30.0)
    admission.begin_drain()
    with pytest.raises(Overloaded, match="draining"):
        admission.admit()


def test_a_measured_lateness_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="max_loop_lag"):
        Admission(loop_lag=LoopLag(), max_loop_lag=0.0)
    assert Admission().loop_lag is None
