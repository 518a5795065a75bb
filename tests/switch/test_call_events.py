"""A call's wall clock and the events a session emits without ever blocking on the event manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio
from trio.testing import MockClock

from switchd.switch import CallClock, CallSetup
from switchd.switch._call_events import emit

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def test_the_call_clock_measures_durations_on_the_monotonic_clock(autojump_clock: MockClock) -> None:
    clock = CallClock(T0, trio.current_time())
    await trio.sleep(42.5)
    assert clock.now() == T0 + timedelta(seconds=42.5)
    assert clock.at(clock.mono - 1.0) == T0 - timedelta(seconds=1.0)
    assert CallClock.start().wall.tzinfo is UTC


async def test_an_event_for_an_event_manager_that_is_down_is_dropped_quietly() -> None:
    emit("events", CallSetup("c1", T0, "alice", "4420", "n1"))  # nobody registered "events": no error
