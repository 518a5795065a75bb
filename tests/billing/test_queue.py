"""The CdrQueue: tickets in order, durability in FIFO order, and what a restarted store gets back."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import trio
import trio.testing

from switchd.billing import CdrDurable, CdrOpen, CdrQueue
from switchd.billing._queue import Wake
from switchd.otp import Pid, Process, receive

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _step(n: int) -> CdrOpen:
    return CdrOpen(call_id=f"c{n}", caller="1", callee="2", setup_at=T0)


async def _collector(into: list[object]) -> None:
    while True:
        into.append(await receive())


async def test_submit_hands_out_increasing_tickets_and_the_queue_reports_depth_and_age(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = CdrQueue()
    assert [queue.submit(_step(n)) for n in range(3)] == [1, 2, 3]
    await trio.sleep(4.0)
    stats = queue.statistics()
    assert (stats.depth, stats.submitted, stats.durable_upto, stats.oldest_age) == (3, 3, 0, 4.0)
    assert not queue.is_durable(1)


async def test_steps_become_durable_in_order_and_wake_their_waiters_and_notify_pids(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = CdrQueue()
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        watcher: Pid = await nursery.start(Process.start_link, _collector, seen)
        tickets = [queue.submit(_step(n), notify=watcher) for n in range(3)]
        assert await queue.wait_durable(tickets[0], timeout=1.0) is False  # nobody writes: it times out
        assert trio.current_time() == 1.0
        queue._attach(watcher)  # the watcher stands in for the store here
        queue._take()
        queue._settle(2, spooled=2)
        assert await queue.wait_durable(tickets[1], timeout=1.0) is True
        assert (queue.is_durable(2), queue.is_durable(3)) == (True, False)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [
            CdrDurable("c0", 1),
            CdrDurable("c1", 2),
        ]  # attaching sends no Wake: the store takes at init
        stats = queue.statistics()
        assert (stats.depth, stats.durable_upto, stats.spooled) == (1, 2, 2)
        nursery.cancel_scope.cancel()


async def test_the_store_is_woken_once_until_it_takes_the_waiting_steps() -> None:
    queue = CdrQueue()
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        store: Pid = await nursery.start(Process.start_link, _collector, seen)
        queue._attach(store)
        for n in range(3):
            queue.submit(_step(n))
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [Wake()]
        assert [e.ticket for e in queue._take()] == [1, 2, 3]
        queue.submit(_step(3))
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [Wake(), Wake()]
        nursery.cancel_scope.cancel()


async def test_a_new_store_gets_back_what_its_predecessor_took_and_counts_its_suspects() -> None:
    queue = CdrQueue()
    for n in range(4):
        queue.submit(_step(n))
    taken = queue._take()
    taken[0].dispatched = True  # in flight at the "crash"
    queue.submit(_step(4))
    async with trio.open_nursery() as nursery:
        store = await nursery.start(partial(Process.start_link, trio.sleep_forever))
        queue._attach(store)
        again = queue._take()
        assert [e.ticket for e in again] == [1, 2, 3, 4, 5]  # the order kept
        assert [e.crashes for e in again] == [1, 0, 0, 0, 0]
        again[0].dispatched = True  # and in flight again at a second crash
        queue._attach(store)
        assert [e.crashes for e in queue._take()] == [2, 0, 0, 0, 0]
        nursery.cancel_scope.cancel()
