"""Connection deadlines: a message must arrive whole in time; a connection without a call may not idle.

Virtual time (autojump_clock) throughout: each close is asserted at its exact second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
import trio.testing

from switchd.otp import Pid, Process
from switchd.switch import Closed, ConnectionSettings, ConnectionTable, SipConnection, attach_call, sip_cause
from switchd.switch._sip_connection import StreamIO

from .transport_helpers import Peer, Recorder, request

PATIENCE = 1000.0  # virtual seconds; on the code before deadlines the waits below never ended


@asynccontextmanager
async def accepted(settings: ConnectionSettings | None = None,
                   table: ConnectionTable | None = None) -> AsyncIterator[tuple[Peer, Recorder, Pid]]:
    ours, theirs = trio.testing.memory_stream_pair()
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        pid: Pid = await nursery.start(partial(SipConnection.start_link, ours, settings or ConnectionSettings(),
                                               recorder, table=table))
        yield Peer(theirs), recorder, pid
        nursery.cancel_scope.cancel()


async def closed_at(peer: Peer) -> float:
    """The virtual time at which the switch closes its end (what it writes before is read and dropped)."""
    return (await read_until_closed(peer))[0]


async def read_until_closed(peer: Peer) -> tuple[float, bytes]:
    """The virtual time at which the switch closes its end, and every byte it wrote before."""
    got = b""
    with trio.fail_after(PATIENCE):
        while True:
            try:
                data = await peer.stream.receive_some(65_536)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                return trio.current_time(), got
            got += data


async def trickle(peer: Peer, data: bytes, every: float) -> None:
    """Send `data` one byte every `every` seconds (slowloris), until the switch closes."""
    try:
        for i in range(len(data)):
            await peer.send(data[i:i + 1])
            await trio.sleep(every)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def test_a_message_trickled_a_byte_every_5s_is_cut_off_10s_after_its_first_byte(
        autojump_clock: trio.testing.MockClock) -> None:
    table = ConnectionTable()
    async with accepted(table=table) as (peer, recorder, _), trio.open_nursery() as nursery:
        await trio.sleep(7.0)  # connected at 0, the first byte at 7
        nursery.start_soon(trickle, peer, request("INVITE"), 5.0)
        assert await closed_at(peer) == 17.0
        assert recorder.seen == []
    assert table.statistics().closed[Closed.MESSAGE_TIMEOUT] == 1


async def test_a_message_that_arrives_whole_within_the_deadline_is_taken_however_slowly(
        autojump_clock: trio.testing.MockClock) -> None:
    data = request("OPTIONS")
    settings = ConnectionSettings(message_timeout=len(data) * 0.01 + 0.5)
    async with accepted(settings) as (peer, recorder, _), trio.open_nursery() as nursery:
        nursery.start_soon(trickle, peer, data + data, 0.01)  # the clock restarts for the second
        await recorder.wait_for(2)


async def test_keepalive_crlfs_alone_never_start_the_message_clock(autojump_clock: trio.testing.MockClock) -> None:
    async with accepted() as (peer, _, _), trio.open_nursery() as nursery:

        async def keepalives() -> None:
            while True:
                await peer.send(b"\r\n")
                await trio.sleep(5.0)

        nursery.start_soon(keepalives)
        assert await closed_at(peer) == 60.0  # the idle timeout, not the 10 s message deadline
        nursery.cancel_scope.cancel()


async def test_a_connection_without_a_call_is_closed_idle_timeout_after_its_last_message(
        autojump_clock: trio.testing.MockClock) -> None:
    table = ConnectionTable()
    async with accepted(table=table) as (peer, recorder, _):
        await peer.send(request("OPTIONS", "first"))
        await trio.sleep(30.0)
        await peer.send(request("OPTIONS", "second"))
        await recorder.wait_for(2)
        assert await closed_at(peer) == 90.0
    assert table.statistics().closed[Closed.IDLE] == 1
    assert len(table) == 0


async def test_pings_are_answered_but_do_not_keep_a_connection_without_a_call_open(
        autojump_clock: trio.testing.MockClock) -> None:
    async with accepted() as (peer, _, _), trio.open_nursery() as nursery:

        async def pings() -> None:
            for _ in range(3):  # at 0, 20 and 40 s
                await peer.send(b"\r\n\r\n")
                await trio.sleep(20.0)

        nursery.start_soon(pings)
        assert await read_until_closed(peer) == (60.0, b"\r\n" * 3)


async def test_a_connection_carrying_a_call_is_not_timed_out_and_idles_from_the_end_of_its_last_call(
        autojump_clock: trio.testing.MockClock) -> None:
    table = ConnectionTable()
    async with accepted(table=table) as (peer, _, conn), trio.open_nursery() as nursery:
        hang_up = trio.Event()

        async def session() -> None:  # what a CallSession does when it starts
            attach_call(conn)
            await hang_up.wait()

        await nursery.start(Process.start_link, session)
        await trio.sleep(500.0)
        assert table.statistics().carrying_calls == 1
        hang_up.set()  # the call ends at 500 s
        assert await closed_at(peer) == 560.0


async def test_a_connection_is_idle_only_once_every_call_on_it_has_ended(
        autojump_clock: trio.testing.MockClock) -> None:
    async with accepted() as (peer, _, conn), trio.open_nursery() as nursery:

        async def session(lasts: float) -> None:
            attach_call(conn)
            await trio.sleep(lasts)

        for lasts in (100.0, 300.0, 200.0):
            await nursery.start(Process.start_link, session, lasts)
        assert await closed_at(peer) == 360.0


async def test_a_shed_connection_closes_at_once(autojump_clock: trio.testing.MockClock) -> None:
    table = ConnectionTable(max_connections=1)
    async with accepted(table=table) as (peer, _, _):
        assert table.admit("192.0.2.1", "192.0.2.1:5060")  # a second connection: the idle first goes
        assert await closed_at(peer) == 0.0
    assert table.statistics().closed[Closed.SHED] == 1



async def test_the_edge_counts_its_rejections_in_the_tally_of_the_node() -> None:
    table = ConnectionTable()
    async with accepted(table=table) as (_, _, conn):
        entry = table.register(conn, "192.0.2.1")  # the row an accepted connection's StreamIO has
        accepted_io = StreamIO(trio.testing.memory_stream_pair()[0], conn, ConnectionSettings(), Recorder(),
                               "accepted", tracked=entry)
        gateway_io = StreamIO(trio.testing.memory_stream_pair()[0], conn, ConnectionSettings(), Recorder(),
                              "gateway")
        accepted_io.count_rejection(sip_cause(416))
        gateway_io.count_rejection(sip_cause(400))  # a gateway's bad message is not a rejection
    assert table.rejections.statistics().by_cause == {"sip_416": 1}
