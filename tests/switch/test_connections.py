"""ConnectionTable: per-address and global limits, which connection is shed, and the automatic limit."""

from __future__ import annotations

import logging
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from switchd.otp import Pid, Process
from switchd.switch import Cause, Closed, ConnectionTable, Shed, Tally, connection_limit
from switchd.switch._connections import FD_RESERVE

from .test_dispatch import Mailbox


@asynccontextmanager
async def connections(count: int) -> AsyncIterator[tuple[list[Pid], list[Mailbox]]]:
    """`count` processes standing in for connection processes, each keeping what it is sent."""
    async with trio.open_nursery() as nursery:
        boxes = [Mailbox() for _ in range(count)]
        pids = [await nursery.start(Process.start_link, box.run) for box in boxes]
        yield pids, boxes
        nursery.cancel_scope.cancel()


async def test_beyond_the_per_address_limit_a_new_connection_is_refused_and_counted() -> None:
    rejections = Tally("refused", logging.getLogger("tests.connections"))
    table = ConnectionTable(max_connections=100, max_connections_per_ip=2, rejections=rejections)
    async with connections(3) as (pids, _):
        for pid in pids[:2]:
            assert table.admit("192.0.2.66", "192.0.2.66:5000")
            table.register(pid, "192.0.2.66")
        assert not table.admit("192.0.2.66", "192.0.2.66:5002")
        assert table.admit("192.0.2.10", "192.0.2.10:5000")  # another address is not touched
    assert rejections.statistics()[Cause.CONNECTIONS_PER_IP] == 1
    assert len(table) == 2


async def test_at_the_global_limit_the_connection_idle_longest_is_shed_to_make_room(
        autojump_clock: trio.testing.MockClock) -> None:
    table = ConnectionTable(max_connections=3)
    async with connections(3) as (pids, boxes):
        entries = []
        for pid in pids:
            entries.append(table.register(pid, "192.0.2.1"))
            await trio.sleep(1.0)
        entries[0].touch(trio.current_time())  # the oldest just sent a message: it is in use
        assert table.admit("192.0.2.2", "192.0.2.2:5000")
        assert len(table) == 2
        assert await boxes[1].next(0) == Shed("max_connections reached")  # quiet since t=1
        assert boxes[0].got == [] and boxes[2].got == []
    assert table.statistics().closed[Closed.SHED] == 1


async def test_a_connection_carrying_a_call_is_never_shed_and_with_only_such_connections_a_new_one_is_refused(
) -> None:
    table = ConnectionTable(max_connections=2)
    async with connections(2) as (pids, boxes):
        calls = [table.register(pid, "192.0.2.1") for pid in pids]
        for entry in calls:
            entry.attach()
        assert not table.admit("192.0.2.2", "192.0.2.2:5000")
        assert table.rejections.statistics()[Cause.CONNECTIONS] == 1
        stats = table.statistics()
        assert (stats.open, stats.carrying_calls) == (2, 2)
        calls[1].detach(trio.current_time())  # its call ended: idle, so it may go
        assert table.admit("192.0.2.2", "192.0.2.2:5000")
        assert await boxes[1].next(0) == Shed("max_connections reached")
        assert boxes[0].got == []


async def test_unregistering_twice_or_after_a_shed_is_harmless() -> None:
    table = ConnectionTable(max_connections=5)
    async with connections(1) as (pids, _):
        entry = table.register(pids[0], "192.0.2.1")
        assert table.shed_idle("test")
        table.unregister(entry)
        table.unregister(entry)
        assert len(table) == 0 and not table.shed_idle("nothing left")


def test_the_automatic_limit_leaves_descriptors_for_the_rest_of_the_node() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_limit(0) == soft - FD_RESERVE
    assert connection_limit(50) == 50
    with pytest.raises(ValueError, match="limits"):
        ConnectionTable(max_connections=-1)
