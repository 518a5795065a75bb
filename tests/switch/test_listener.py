"""The listener over real 127.0.0.1 TCP: binds before it is started, one temporary child per connection."""

from __future__ import annotations

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
from switchd.switch._listener import Listener, listening_on
from switchd.switch._sip_connection import ConnectionSettings
from switchd.switch._wire import Outbound

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
