"""The listener over real 127.0.0.1 TCP: binds before it is started, one temporary child per connection."""

from __future__ import annotations

import errno
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
import trio.testing

from switchd.otp import (
    Down,
    DynamicSupervisor,
    Pid,
    Process,
    Restart,
    count_children,
    monitor,
    receive,
    send,
    which_children,
)
from switchd.sip import Request, make_response
from switchd.switch import Cause, Closed, ConnectionTable, Shed
from switchd.switch._listener import Listener, accept_loop, listening_on
from switchd.switch._sip_connection import ConnectionSettings
from switchd.switch._wire import Outbound

from .test_dispatch import Mailbox
from .transport_helpers import Peer, Recorder, request


@asynccontextmanager
async def listening(recorder: Recorder) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(DynamicSupervisor.start_link, name="connections"))
        await nursery.start(partial(Listener.start_link, "127.0.0.1", 0, ConnectionSettings(), recorder))
        [(host, port)] = await listening_on()
        assert host == "127.0.0.1" and port > 0
        yield port
        nursery.cancel_scope.cancel()


async def connected_children() -> int:
    return (await count_children("connections")).active


async def test_each_accepted_connection_is_a_temporary_child_of_connections_feeding_the_dispatcher() -> None:
    recorder = Recorder()
    async with listening(recorder) as port:
        one = await trio.open_tcp_stream("127.0.0.1", port)
        two = await trio.open_tcp_stream("127.0.0.1", port)
        await one.send_all(request("OPTIONS", "via-one"))
        await two.send_all(request("OPTIONS", "via-two"))
        await recorder.wait_for(2)
        by_call = {m.call_id: conn for m, conn, _ in recorder.seen}
        children = await which_children("connections")
        assert {c.pid for c in children} == set(by_call.values())
        assert all(c.restart is Restart.TEMPORARY for c in children)
        await one.aclose()
        await two.aclose()


async def wait_exit(pid: Pid) -> None:
    """Return once `pid` has exited (a monitor's Down, no polling)."""

    async def watch() -> None:
        monitor(pid)
        await receive(match=lambda m: isinstance(m, Down))

    async with trio.open_nursery() as nursery:
        await nursery.start(Process.start_link, watch)


async def test_a_connection_that_closes_leaves_the_supervisor_and_the_others_alone() -> None:
    recorder = Recorder()
    async with listening(recorder) as port:
        stays = await trio.open_tcp_stream("127.0.0.1", port)
        leaves = await trio.open_tcp_stream("127.0.0.1", port)
        await stays.send_all(request("OPTIONS", "a"))
        await leaves.send_all(request("OPTIONS", "b"))
        await recorder.wait_for(2)
        assert await connected_children() == 2
        await leaves.aclose()
        await wait_exit(recorder.seen[1][1])
        assert await connected_children() == 1
        await stays.send_all(request("OPTIONS", "c"))
        [*_, last] = await recorder.wait_for(3)
        assert last.call_id == "c"
        await stays.aclose()


async def test_the_switch_answers_on_the_connection_the_request_came_in_on() -> None:
    recorder = Recorder()
    async with listening(recorder) as port:
        peer = Peer(await trio.open_tcp_stream("127.0.0.1", port))
        await peer.send(request("OPTIONS", "o1"))
        await recorder.wait_for(1)
        options, conn, _ = recorder.seen[0]
        assert isinstance(options, Request)
        send(conn, Outbound(make_response(options, 200)))
        answer = await peer.read()
        assert answer is not None and answer.call_id == "o1"
        await peer.stream.aclose()


async def test_an_address_in_use_fails_the_start() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(DynamicSupervisor.start_link, name="connections"))
        [taken] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = taken.socket.getsockname()[1]
        with pytest.raises(OSError):
            await nursery.start(partial(Listener.start_link, "127.0.0.1", port, ConnectionSettings(), Recorder(),
                                        name="listener2"))
        await taken.aclose()
        nursery.cancel_scope.cancel()


# --- limits ----------------------------------------------------------------------------------------


@asynccontextmanager
async def limited(recorder: Recorder, table: ConnectionTable) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(DynamicSupervisor.start_link, name="connections"))
        await nursery.start(partial(Listener.start_link, "127.0.0.1", 0, ConnectionSettings(), recorder,
                                    table=table))
        [(_, port)] = await listening_on()
        yield port
        nursery.cancel_scope.cancel()


async def until_open(table: ConnectionTable, count: int) -> None:
    with trio.fail_after(5):
        while len(table) != count:
            await trio.sleep(0.001)


async def test_the_dispatcher_is_told_the_source_address_of_each_message() -> None:
    recorder = Recorder()
    async with listening(recorder) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(request("OPTIONS"))
        await recorder.wait_for(1)
        assert recorder.sources == ["127.0.0.1"]
        await stream.aclose()


async def test_beyond_the_per_address_limit_a_new_connection_is_closed_at_once() -> None:
    recorder = Recorder()
    table = ConnectionTable(max_connections_per_ip=2)
    async with limited(recorder, table) as port:
        kept = [Peer(await trio.open_tcp_stream("127.0.0.1", port)) for _ in range(2)]
        await until_open(table, 2)
        refused = Peer(await trio.open_tcp_stream("127.0.0.1", port))
        assert await refused.closed()
        assert table.rejections.statistics()[Cause.CONNECTIONS_PER_IP] == 1
        await kept[0].send(request("OPTIONS", "still-served"))
        [message] = await recorder.wait_for(1)
        assert message.call_id == "still-served"
        for peer in kept:
            await peer.stream.aclose()


async def test_a_flood_of_idle_connections_beyond_the_limit_sheds_the_oldest_and_a_real_caller_gets_in() -> None:
    recorder = Recorder()
    table = ConnectionTable(max_connections=20)
    async with limited(recorder, table) as port:
        flood = [Peer(await trio.open_tcp_stream("127.0.0.1", port)) for _ in range(50)]
        caller = Peer(await trio.open_tcp_stream("127.0.0.1", port))
        await caller.send(request("OPTIONS", "real"))
        [message] = await recorder.wait_for(1)
        assert message.call_id == "real"
        assert len(table) == 20
        assert all([await peer.closed() for peer in flood[:31]])  # the 31 idle longest were shed
        assert table.statistics().closed[Closed.SHED] == 31
        for peer in [*flood, caller]:
            await peer.stream.aclose()


class Starving(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose accept fails with EMFILE `failures` times, then hands out what `connect` is given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[float] = []
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](10)

    def connect(self) -> trio.abc.Stream:
        """A new connection waiting to be accepted; returns the peer's end."""
        ours, theirs = trio.testing.memory_stream_pair()
        self._send.send_nowait(ours)
        return theirs

    async def accept(self) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        self.attempts.append(trio.current_time())
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return await self._receive.receive()

    async def aclose(self) -> None:
        pass


@asynccontextmanager
async def accepting(listener: Starving, table: ConnectionTable) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(DynamicSupervisor.start_link, name="connections"))
        nursery.start_soon(accept_loop, listener, ConnectionSettings(), recorder, "connections", table)
        yield recorder
        nursery.cancel_scope.cancel()


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


async def test_out_of_descriptors_with_nothing_to_shed_the_listener_backs_off_exponentially_and_logs_once(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="switchd.switch._listener")
    listener = Starving(9)
    table = ConnectionTable()
    first = listener.connect()
    async with accepting(listener, table) as recorder:
        await first.send_all(request("OPTIONS", "after-the-failures"))
        await recorder.wait_for(1)
        # 9 failures, the success, then the next accept at once
        assert gaps(listener.attempts) == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0, 0.0]
        assert len(caplog.records) == 1  # one line for the episode so far, not one per failed accept
        await trio.sleep(3.0)  # the last failure was at 2.3 s; the success at 3.3 s
        await listener.connect().send_all(request("OPTIONS", "soon"))  # 4 s after the last failure
        await recorder.wait_for(2)
        assert len(caplog.records) == 1  # the same episode
        await trio.sleep(1.0)
        await listener.connect().send_all(request("OPTIONS", "later"))  # 5 s after: the episode is over
        await recorder.wait_for(3)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == "WARNING" and "Too many open files" in lines[0][1]
    assert lines[1] == ("INFO", ("listener: accepting normally again; 9 accept(s) had failed over 2.3s, "
                                 "0 idle connection(s) shed"))
    assert table.statistics().accept_failures == 9


async def test_out_of_descriptors_the_listener_sheds_the_connection_idle_longest_and_retries_soon(
        autojump_clock: trio.testing.MockClock) -> None:
    table = ConnectionTable()
    async with trio.open_nursery() as nursery:
        boxes = [Mailbox() for _ in range(3)]
        pids = [await nursery.start(Process.start_link, box.run) for box in boxes]
        entries = [table.register(pid, "192.0.2.1") for pid in pids]
        entries[0].attach()  # carries a call: never shed
        listener = Starving(2)
        async with accepting(listener, table):
            while len(listener.attempts) < 3:  # two failures, then an accept that waits
                await trio.sleep(0.001)
        assert boxes[1].got == [Shed("accept failed: Too many open files")]
        assert boxes[2].got == [Shed("accept failed: Too many open files")]
        assert boxes[0].got == []
        assert gaps(listener.attempts) == [0.01, 0.01]
        nursery.cancel_scope.cancel()
