"""The node's collector policy: start-up frozen, survivors of older collections frozen, cycles swept when quiet."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
import trio
from trio.testing import MockClock

from switchd import collector
from switchd.otp import Supervisor, SupervisorFlags, get_state, whereis


class _Cycle:
    """An object that refers to itself: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


def _frozen(obj: object) -> bool:
    return not any(o is obj for o in gc.get_objects())  # the generations a collection visits


@pytest.fixture
def settled() -> Iterator[None]:
    before = gc.get_threshold()
    collector.settle()
    try:
        yield
    finally:
        collector.release()
    assert gc.get_threshold() == before and not collector.settled()


def test_settling_freezes_what_start_up_built_and_raises_the_young_threshold() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    built_at_start = [object()]  # tracked only if it is a container: a list is
    try:
        collector.settle()
        collector.settle()  # idempotent
        assert gc.get_threshold() == collector.THRESHOLDS
        assert gc.get_threshold()[0] > 700  # CPython's default: a call's objects would be walked far more often
        assert gc.get_freeze_count() > frozen
        assert _frozen(built_at_start)
    finally:
        collector.release()
    assert gc.get_threshold() == before
    assert not _frozen(built_at_start)  # released: back where collections see it


@pytest.mark.usefixtures("settled")
def test_what_survives_an_older_collection_is_frozen_and_a_young_one_leaves_it_alone() -> None:
    call_state = [object()]  # a long-lived object of a call set up after the start
    gc.collect(0)
    assert not _frozen(call_state)
    gc.collect(1)
    assert _frozen(call_state)
    later = [object()]
    gc.collect(2)  # a full collection freezes its survivors too: generation 2 stays empty
    assert _frozen(later)


@pytest.mark.usefixtures("settled")
def test_a_frozen_object_is_still_freed_by_reference_counting() -> None:
    call_state = _Plain()
    gone = weakref.ref(call_state)
    gc.collect(1)
    assert _frozen(call_state)
    del call_state
    assert gone() is None


class _Plain:
    pass


@pytest.mark.usefixtures("settled")
def test_a_frozen_cycle_outlives_every_collection_until_a_sweep_frees_it() -> None:
    cycle = _Cycle()
    gone = weakref.ref(cycle)
    gc.collect(1)  # frozen while its call was up
    del cycle  # the call ended: only the cycle keeps it
    gc.collect()
    assert gone() is not None  # the price of freezing
    swept = collector.sweep()
    assert gone() is None
    assert swept.found >= 1 and swept.frozen == gc.get_freeze_count() > 0 and swept.seconds >= 0


# -- the sweeper ----------------------------------------------------------------------------------


async def _sweeper(nursery: trio.Nursery, calls: list[int], *, every: float, check: float,
                   quiet_calls: int = 20) -> None:
    async def calls_up() -> int:
        return calls[0]

    spec = collector.sweeper_spec(calls_up, every=every, check=check, quiet_calls=quiet_calls)
    await nursery.start(Supervisor.start_link, [spec], SupervisorFlags())


async def _sweeps() -> int:
    pid = whereis(collector.NAME)
    assert pid is not None
    state = await get_state(pid)
    assert isinstance(state.sweeps, int)
    return state.sweeps


@pytest.mark.usefixtures("settled")
async def test_the_sweeper_sweeps_only_when_the_node_is_quiet_and_at_most_every_period(
        autojump_clock: MockClock) -> None:
    calls = [500]
    async with trio.open_nursery() as nursery:
        await _sweeper(nursery, calls, every=60.0, check=10.0, quiet_calls=20)
        await trio.sleep(45.0)
        assert await _sweeps() == 0  # not a period yet
        await trio.sleep(60.0)
        assert await _sweeps() == 0  # a period, but 500 calls up
        calls[0] = 20
        await trio.sleep(10.0)
        assert await _sweeps() == 1  # quiet: swept at the next check
        await trio.sleep(50.0)
        assert await _sweeps() == 1  # quiet, but swept less than a period ago
        await trio.sleep(20.0)
        assert await _sweeps() == 2
        nursery.cancel_scope.cancel()


async def test_an_unsettled_collector_is_not_swept(autojump_clock: MockClock) -> None:
    assert not collector.settled()
    async with trio.open_nursery() as nursery:
        await _sweeper(nursery, [0], every=1.0, check=1.0)
        await trio.sleep(10.0)
        assert await _sweeps() == 0  # a test's tree: the frozen generation is not the node's
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("bad", [{"every": 0.0}, {"check": -1.0}])
async def test_a_non_positive_period_fails_the_start(bad: dict[str, float]) -> None:
    async def calls_up() -> int:
        return 0

    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="must be > 0"):
            await nursery.start(collector.Sweeper.start_link, calls_up, bad.get("every", 1.0),
                                bad.get("check", 1.0), 20)
