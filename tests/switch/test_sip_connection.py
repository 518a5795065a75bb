"""SipConnection: framing over a byte stream, pings, error answers, closing, the bounded send queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.otp import Pid, send
from switchd.sip import Request, Response, make_response, parse_message
from switchd.switch._sip_connection import ConnectionSettings, SipConnection
from switchd.switch._wire import Outbound

from .transport_helpers import Peer, Recorder, request, response


@asynccontextmanager
async def connection(settings: ConnectionSettings | None = None,
                     recorder: Recorder | None = None) -> AsyncIterator[tuple[Peer, Recorder, Pid]]:
    ours, theirs = trio.testing.memory_stream_pair()
    recorder = recorder or Recorder()
    async with trio.open_nursery() as nursery:
        pid: Pid = await nursery.start(partial(SipConnection.start_link, ours, settings or ConnectionSettings(),
                                               recorder))
        yield Peer(theirs), recorder, pid
        nursery.cancel_scope.cancel()


async def test_a_request_split_into_single_bytes_is_dispatched_once_whole() -> None:
    data = request("INVITE", body=b"v=0\r\n")
    async with connection() as (peer, recorder, pid):
        for i in range(len(data)):
            await peer.send(data[i:i + 1])
        [message] = await recorder.wait_for(1)
        assert isinstance(message, Request) and message.method == "INVITE" and message.body == b"v=0\r\n"
        assert recorder.seen[0][1] == pid
        await trio.testing.wait_all_tasks_blocked()
        assert len(recorder.seen) == 1


async def test_ack_and_bye_in_one_read_are_dispatched_in_order() -> None:
    async with connection() as (peer, recorder, _):
        await peer.send(request("ACK", to_tag="t") + request("BYE", to_tag="t", cseq=2))
        ack, bye = await recorder.wait_for(2)
        assert isinstance(ack, Request) and ack.method == "ACK"
        assert isinstance(bye, Request) and bye.method == "BYE"


async def test_a_double_crlf_ping_gets_a_crlf_pong() -> None:
    async with connection() as (peer, recorder, _):
        await peer.send(b"\r\n\r\n")
        assert await peer.read_raw(2) == b"\r\n"
        assert recorder.seen == []


async def test_outbound_messages_are_written_with_content_length() -> None:
    async with connection() as (peer, recorder, pid):
        await peer.send(request("OPTIONS"))
        [options] = await recorder.wait_for(1)
        assert isinstance(options, Request)
        send(pid, Outbound(make_response(options, 200)))
        answer = await peer.read()
        assert isinstance(answer, Response) and answer.status == 200
        assert b"Content-Length: 0\r\n" in peer.raw


async def test_a_malformed_framed_request_gets_400_copying_its_headers_and_the_connection_goes_on() -> None:
    bad = request("INVITE", call_id="bad-1").replace(b"Max-Forwards: 70", b"Max-Forwards: many")
    async with connection() as (peer, recorder, _):
        await peer.send(bad + request("OPTIONS", call_id="good-1"))
        answer = await peer.read()
        assert isinstance(answer, Response) and answer.status == 400
        assert answer.headers.get("Call-ID") == "bad-1"
        assert answer.headers.get("Via") == "SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK-1"
        assert answer.headers.get("CSeq") == "1 INVITE"
        assert answer.reason == "Bad Max-Forwards"
        assert answer.to.tag is not None  # §8.2.6.2
        [good] = await recorder.wait_for(1)
        assert good.call_id == "good-1"


async def test_a_malformed_ack_is_not_answered() -> None:
    bad = request("ACK", to_tag="t").replace(b"CSeq: 1 ACK", b"CSeq: x ACK")
    async with connection() as (peer, recorder, _):
        await peer.send(bad + request("OPTIONS", call_id="next"))
        await recorder.wait_for(1)
        await trio.testing.wait_all_tasks_blocked()
        assert peer.raw == b""


async def test_a_message_over_the_size_limit_gets_513_and_the_connection_closes() -> None:
    settings = ConnectionSettings(max_message_size=1024)
    async with connection(settings) as (peer, recorder, _):
        await peer.send(request("INVITE", body=b"x" * 2000))
        answer = await peer.read()
        assert isinstance(answer, Response) and answer.status == 513
        assert await peer.read() is None
        assert recorder.seen == []


async def test_a_missing_content_length_loses_framing_so_the_connection_closes_after_a_400() -> None:
    bad = request("INVITE").replace(b"Content-Length: 0\r\n", b"")
    async with connection() as (peer, recorder, _):
        await peer.send(bad + request("OPTIONS"))
        answer = await peer.read()
        assert isinstance(answer, Response) and answer.status == 400
        assert await peer.read() is None
        assert recorder.seen == []


async def test_garbage_closes_the_connection_without_an_answer() -> None:
    async with connection() as (peer, recorder, _):
        await peer.send(b"\x00\x01 not sip at all\r\n\r\n")
        assert await peer.read() is None
        assert peer.raw == b""
        assert recorder.seen == []


async def test_a_bad_connection_leaves_another_connection_working() -> None:
    recorder = Recorder()
    async with connection(recorder=recorder) as (bad, _, _), connection(recorder=recorder) as (good, _, _):
        await bad.send(b"garbage\r\n\r\n")
        assert await bad.closed()
        await good.send(request("OPTIONS", call_id="still-here"))
        [message] = await recorder.wait_for(1)
        assert message.call_id == "still-here"


async def test_the_connection_process_exits_when_the_peer_closes() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(SipConnection.start_link, ours, ConnectionSettings(), recorder))
        await theirs.send_all(request("OPTIONS"))
        await theirs.aclose()
    # the nursery only exits because the connection process ended by itself
    assert len(recorder.seen) == 1


async def test_a_peer_that_does_not_read_is_dropped_when_its_send_queue_is_full() -> None:
    ours, theirs = trio.testing.lockstep_stream_pair()  # a write blocks until the peer reads
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        pid: Pid = await nursery.start(partial(SipConnection.start_link, ours, ConnectionSettings(send_queue_size=2),
                                               recorder))
        await theirs.send_all(request("OPTIONS"))
        [options] = await recorder.wait_for(1)
        assert isinstance(options, Request)
        for _ in range(4):  # one in the writer's hands, two queued, the fourth overflows
            send(pid, Outbound(make_response(options, 200)))
            await trio.testing.wait_all_tasks_blocked()
    # the nursery exits: the connection dropped the peer and ended
    assert not pid._proc.alive


PIECES = [request("OPTIONS"), request("ACK", to_tag="t"), request("INVITE", body=b"v=0\r\n"), response(200),
          b"\r\n\r\n", b"\r\n", b"Content-Length: 5\r\n\r\n", b"SIP/2.0 200", b"\x00\xff"]


@given(st.lists(st.one_of(st.binary(max_size=120), st.sampled_from(PIECES)), max_size=8),
       st.integers(min_value=1, max_value=64))
@settings(max_examples=80, deadline=None)
def test_whatever_bytes_arrive_the_connection_never_crashes_and_ends_at_eof(chunks: list[bytes], cut: int) -> None:
    data = b"".join(chunks)

    async def scenario() -> None:
        ours, theirs = trio.testing.memory_stream_pair()
        recorder = Recorder()
        async with trio.open_nursery() as nursery:  # a crash of the connection would raise here
            await nursery.start(partial(SipConnection.start_link, ours, ConnectionSettings(max_message_size=1024),
                                        recorder))
            try:
                for start in range(0, len(data), cut):
                    await theirs.send_all(data[start:start + cut])
                await theirs.send_stream.aclose()  # EOF
            except trio.BrokenResourceError:
                pass  # the switch closed first (framing lost): fine
            while await theirs.receive_some(65_536):
                pass
        # the nursery exited by itself: the process ended at EOF or after closing the stream

    trio.run(scenario)


# --- shutdown: the terminate path ------------------------------------------------------------------


def bye(call_id: str = "call-1", cseq: int = 2) -> Outbound:
    message = parse_message(request("BYE", call_id, to_tag="t", cseq=cseq))
    assert isinstance(message, Request)
    return Outbound(message)


async def test_a_connection_shut_down_writes_what_its_mailbox_holds_in_order_then_closes(
        autojump_clock: trio.testing.MockClock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        pid: Pid = await nursery.start(partial(SipConnection.start_link, ours, ConnectionSettings(), Recorder()))
        for cseq in (1, 2, 3):
            send(pid, bye(f"c{cseq}", cseq))
        assert pid._proc.mailbox_depth() == 3  # not taken yet: the shutdown comes first
        shut_down_at = trio.current_time()
        nursery.cancel_scope.cancel()  # what its supervisor does on shutdown
    assert trio.current_time() == shut_down_at  # a reading peer costs no wait for the bound
    peer = Peer(theirs)
    got = [await peer.read() for _ in range(3)]
    assert [(m.call_id, m.headers.get("CSeq")) for m in got if isinstance(m, Request)] == [
        ("c1", "1 BYE"), ("c2", "2 BYE"), ("c3", "3 BYE")]
    assert await peer.read() is None  # then closed
    assert not pid._proc.alive


async def test_a_peer_that_does_not_read_holds_the_shutdown_no_longer_than_shutdown_flush(
        autojump_clock: trio.testing.MockClock) -> None:
    ours, _theirs = trio.testing.lockstep_stream_pair()  # a write blocks until the peer reads: it never does
    async with trio.open_nursery() as nursery:
        pid: Pid = await nursery.start(partial(SipConnection.start_link, ours, ConnectionSettings(shutdown_flush=0.25),
                                               Recorder()))
        send(pid, bye())
        shut_down_at = trio.current_time()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - shut_down_at == 0.25
    assert not pid._proc.alive
