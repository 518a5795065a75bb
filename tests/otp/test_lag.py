"""LoopLag and LagMonitor: how late the event loop runs a timer, measured by a supervised GenServer."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from switchd.otp import LagMonitor, LoopLag, Supervisor, SupervisorFlags, get_state, lag_monitor_spec, whereis


def test_the_mean_weighs_each_tick_and_the_max_keeps_the_worst() -> None:
    lag = LoopLag(weight=0.5)
    lag.record(0.1)
    lag.record(0.0)
    lag.record(-0.001)  # a clock's rounding is no lateness
    assert lag.mean == pytest.approx(0.0125)  # 0.05, then halved twice
    assert (lag.last, lag.max, lag.samples) == (0.0, 0.1, 3)


def test_a_lateness_that_lasts_is_taken_almost_in_full() -> None:
    lag = LoopLag()
    for _ in range(30):
        lag.record(0.04)
    assert lag.mean == pytest.approx(0.04, rel=0.01)


@pytest.mark.parametrize("weight", [0.0, -0.1, 1.5])
def test_a_weight_outside_zero_to_one_is_refused(weight: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        LoopLag(weight=weight)


async def _monitored(nursery: trio.Nursery, lag: LoopLag, interval: float = 0.01) -> None:
    await nursery.start(Supervisor.start_link, [lag_monitor_spec(lag, interval=interval)], SupervisorFlags())


async def test_an_idle_loop_runs_its_ticks_on_time(autojump_clock: MockClock) -> None:
    lag = LoopLag()
    async with trio.open_nursery() as nursery:
        await _monitored(nursery, lag)
        await trio.sleep(1.0)
        assert lag.samples == pytest.approx(100, abs=2)
        assert (lag.mean, lag.max) == (0.0, 0.0)
        nursery.cancel_scope.cancel()


async def test_a_stall_is_recorded_as_the_lateness_of_the_tick_it_held_up(autojump_clock: MockClock) -> None:
    lag = LoopLag(weight=0.2)
    async with trio.open_nursery() as nursery:
        await _monitored(nursery, lag)
        await trio.sleep(0.105)  # between two ticks: the next is due at 0.11
        autojump_clock.jump(0.3)  # the loop is busy for 0.3 s (this task does not yield)
        await trio.sleep(0.001)  # now the monitor runs its tick, 0.295 s late
        assert lag.max == pytest.approx(0.295, abs=1e-6)
        assert lag.mean == pytest.approx(0.2 * 0.295, abs=1e-6)
        await trio.sleep(1.0)  # on time again: the mean decays back towards 0
        assert lag.mean < 0.001
        assert lag.max == pytest.approx(0.295, abs=1e-6)
        nursery.cancel_scope.cancel()


async def test_the_monitor_is_registered_and_says_what_it_measured(autojump_clock: MockClock) -> None:
    lag = LoopLag()
    async with trio.open_nursery() as nursery:
        await _monitored(nursery, lag, interval=0.05)
        await trio.sleep(0.2)
        pid = whereis("loop_lag")
        assert pid is not None
        state = await get_state(pid)
        assert state.lag is lag and state.interval == 0.05
        nursery.cancel_scope.cancel()


async def test_a_non_positive_interval_fails_the_start() -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="interval"):
            await nursery.start(LagMonitor.start_link, LoopLag(), 0.0)
