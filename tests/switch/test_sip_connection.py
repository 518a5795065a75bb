"""SipConnection: framing over a byte stream, pings, error answers, closing, the bounded send queue."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd import otp
from switchd.otp import ChildSpec, Pid, send
from switchd.sip import (
    RemoteProtocolError,
    Request,
    Response,
    make_response,
    new_tag,
    parse_message,
    serialize,
)
from switchd.switch import Admission, Dispatcher
from switchd.switch._sip_connection import ConnectionSettings, Dispatch, SipConnection, error_response
from switchd.switch._wire import Outbound, ReplyPath
from tests.sip._edge import frame_all
from tests.sip._mutations import mangled
from tests.sip.malformed_corpus import CASES, Case, answers, expected, sent

from .transport_helpers import HeldStart, Peer, Recorder, request, response


@asynccontextmanager
async def connection(settings: ConnectionSettings | None = None, recorder: Recorder | None = None,
                     dispatch: Dispatch | None = None) -> AsyncIterator[tuple[Peer, Recorder, Pid]]:
    """A connection process over a memory stream; what it reads goes to `dispatch` (default: `recorder`)."""
    ours, theirs = trio.testing.memory_stream_pair()
    recorder = recorder or Recorder()
    async with trio.open_nursery() as nursery:
        pid: Pid = await nursery.start(partial(SipConnection.start_link, ours, settings or ConnectionSettings(),
                                               dispatch or recorder))
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
        send(pid, "not for a connection")  # the process has not run yet: it holds the mailbox
        for cseq in (1, 2, 3):
            send(pid, bye(f"c{cseq}", cseq))  # so these queue behind it, not written inline
        assert pid._proc.mailbox_depth() == 4  # not taken yet: the shutdown comes first
        shut_down_at = trio.current_time()
        nursery.cancel_scope.cancel()  # what its supervisor does on shutdown
    assert trio.current_time() == shut_down_at  # a reading peer costs no wait for the bound
    peer = Peer(theirs)
    got = [await peer.read() for _ in range(3)]
    assert [(m.call_id, m.headers.get("CSeq")) for m in got if isinstance(m, Request)] == [
        ("c1", "1 BYE"), ("c2", "2 BYE"), ("c3", "3 BYE")]
    assert await peer.read() is None  # then closed
    assert not pid._proc.alive


async def test_an_outbound_message_is_written_by_its_sender_without_waiting_for_the_connection() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        pid: Pid = await nursery.start(partial(SipConnection.start_link, ours, ConnectionSettings(), Recorder()))
        await trio.testing.wait_all_tasks_blocked()
        send(pid, bye("c1", 1))
        assert pid._proc.mailbox_depth() == 0  # taken by the inline handler, in this task
        send(pid, bye("c2", 2))
        peer = Peer(theirs)
        got = [await peer.read() for _ in range(2)]
        assert [m.call_id for m in got if isinstance(m, Request)] == ["c1", "c2"]
        nursery.cancel_scope.cancel()


async def test_a_message_to_a_socket_the_peer_reads_is_in_the_socket_when_send_returns() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = socket.create_connection(server.getsockname())
        mine, _ = server.accept()
    peer.setblocking(False)
    with peer:
        async with trio.open_nursery() as nursery:
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(mine))
            pid: Pid = await nursery.start(partial(SipConnection.start_link, stream, ConnectionSettings(), Recorder()))
            await trio.testing.wait_all_tasks_blocked()
            send(pid, bye("c1", 1))
            # no checkpoint since: written to the socket by this task, not by the connection's writer
            assert peer.recv(65_536).startswith(b"BYE sip:")
            nursery.cancel_scope.cancel()


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


# --- the edge: bad text is answered, never echoed, and never takes the connection down --------------


@dataclass
class Answering(Recorder):
    """A dispatcher that answers every request 200 (as the node answers OPTIONS), and raises for "boom"."""

    async def __call__(self, message: Request | Response, conn: Pid, received_at: float, source: str = "") -> None:
        if message.call_id.startswith("boom"):
            raise RuntimeError("a bug in dispatch")
        await super().__call__(message, conn, received_at, source)
        if isinstance(message, Request):
            to_tag = None if message.to.tag else new_tag()
            send(conn, Outbound(make_response(message, 200, to_tag=to_tag)))


async def raw_answers(peer: Peer, count: int) -> list[dict[str, str]]:
    """The next `count` answers (no bodies) as written, read without a parser: an answer to a bad
    request may lack the very header that was bad, which a strict parser would refuse."""
    data = b""
    while data.count(b"\r\n\r\n") < count:
        data += await peer.read_raw(1)
    answers = []
    for head in data.split(b"\r\n\r\n")[:count]:
        start, *lines = head.decode().split("\r\n")
        answers.append({"": start, **dict(line.split(": ", 1) for line in lines)})
    return answers


@pytest.mark.parametrize("bad", [b"\r", b"\n", b"\x00", b"\x1b"])
async def test_a_control_character_in_a_value_is_a_400_that_does_not_echo_it_and_the_connection_goes_on(
        bad: bytes) -> None:
    data = request("OPTIONS", call_id="bad-1").replace(b";tag=from-1", b";tag=from" + bad + b"1")
    async with connection(recorder=Answering()) as (peer, recorder, _):
        await peer.send(data + request("OPTIONS", call_id="good-1"))
        answer, good = await raw_answers(peer, 2)
        assert answer[""] == "SIP/2.0 400 Bad Header"
        assert answer["Call-ID"] == "bad-1" and "From" not in answer  # the bad value is left out
        assert (good[""], good["Call-ID"]) == ("SIP/2.0 200 OK", "good-1")
        assert [m.call_id for m in await recorder.wait_for(1)] == ["good-1"]


async def test_a_call_id_that_is_not_utf8_is_a_400_without_the_call_id_and_the_connection_goes_on() -> None:
    data = request("INVITE", call_id="bad-X").replace(b"bad-X", b"bad-\xff")
    async with connection(recorder=Answering()) as (peer, _, _):
        await peer.send(data + request("OPTIONS", call_id="good-1"))
        answer, good = await raw_answers(peer, 2)
        assert answer[""] == "SIP/2.0 400 Invalid UTF-8"
        assert "Call-ID" not in answer and answer["CSeq"] == "1 INVITE"
        assert good["Call-ID"] == "good-1"


async def test_a_request_whose_only_via_is_not_clean_is_not_answered_and_the_connection_goes_on() -> None:
    data = request("OPTIONS", call_id="bad-1", branch="z9hG4bK-\x01")
    async with connection(recorder=Answering()) as (peer, _, _):
        await peer.send(data + request("OPTIONS", call_id="good-1"))
        answer = await peer.read()
        assert isinstance(answer, Response) and answer.call_id == "good-1"


async def test_a_bug_in_dispatch_costs_only_its_message_a_500_and_one_log_line(
        caplog: pytest.LogCaptureFixture) -> None:
    async with connection(recorder=Answering()) as (peer, _, _):
        await peer.send(request("INVITE", call_id="boom-1") + request("OPTIONS", call_id="good-1"))
        answer = await peer.read()
        assert isinstance(answer, Response) and (answer.status, answer.call_id) == (500, "boom-1")
        good = await peer.read()
        assert isinstance(good, Response) and (good.status, good.call_id) == (200, "good-1")
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert getattr(record, "call_id", None) == "boom-1" and "a bug in dispatch" in record.getMessage()


async def test_a_bug_in_dispatch_of_an_ack_or_a_response_is_logged_and_not_answered(
        caplog: pytest.LogCaptureFixture) -> None:
    async with connection(recorder=Answering()) as (peer, _, _):
        await peer.send(request("ACK", call_id="boom-ack", to_tag="t") + response(200, "boom-resp")
                        + request("OPTIONS", call_id="good-1"))
        answer = await peer.read()
        assert isinstance(answer, Response) and answer.call_id == "good-1"
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2


async def test_an_endless_header_line_gets_400_from_the_lines_before_it_then_the_close() -> None:
    settings = ConnectionSettings(max_line_length=200)
    head = request("INVITE", call_id="long-1").split(b"Contact:")[0]
    async with connection(settings) as (peer, recorder, _):
        await peer.send(head + b"Subject: " + b"x" * 300)
        answer = await peer.read()
        assert isinstance(answer, Response) and (answer.status, answer.reason) == (400, "Line Too Long")
        assert answer.call_id == "long-1" and answer.headers.get("CSeq") == "1 INVITE"
        assert await peer.read() is None
        assert recorder.seen == []


def _partial(data: bytes) -> Request:
    try:
        parse_message(data)
    except RemoteProtocolError as exc:
        assert isinstance(exc.partial, Request)
        return exc.partial
    raise AssertionError("parsed")


def test_error_response_copies_only_clean_headers_and_needs_a_clean_via() -> None:
    partial = _partial(request("OPTIONS", call_id="bad-X").replace(b"bad-X", b"bad-\xff"))
    answer = error_response(partial, 400, "Invalid UTF-8")
    assert answer is not None and "Call-ID" not in answer.headers and answer.headers.get("CSeq") == "1 OPTIONS"
    serialize(answer)
    assert error_response(_partial(request("OPTIONS", branch="z9hG4bK\x00")), 400, "Bad Header") is None
    no_via = _partial(request("OPTIONS", extra="X: \x01\r\n").replace(b"Via: SIP/2.0/TCP", b"X-Via: SIP/2.0/TCP"))
    assert error_response(no_via, 400, "Bad Header") is None


# --- the malformed corpus through a connection process and the real Dispatcher -----------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_each_corpus_case_gets_the_answer_the_manifest_gives(autojump_clock: trio.testing.MockClock,
                                                                   case: Case) -> None:
    started: list[Request] = []

    def session_spec(invite: Request, conn: ReplyPath, at: float, account: object = None) -> ChildSpec:
        started.append(invite)
        raise AssertionError(f"a call was started for corpus case {case.name}")

    dispatcher = Dispatcher(session_spec=session_spec, admission=Admission())
    async with connection(recorder=None, dispatch=dispatcher) as (peer, _, _):
        await peer.send(sent(case))
        data, closed = b"", False
        with trio.fail_after(10):
            while not closed and answers(data, False)[-1:] != [f"200 after-{case.name}"]:
                try:
                    chunk = await peer.stream.receive_some(65_536)
                except trio.BrokenResourceError:
                    chunk = b""
                closed = not chunk
                data += chunk
        assert answers(data, closed) == expected(case)
    assert started == []


@settings(max_examples=1000, deadline=None)
@given(mangled())
def test_error_response_never_raises_and_what_it_builds_serialises_clean(data: bytes) -> None:
    for error in frame_all(data)[1]:
        partial = error.partial
        if not isinstance(partial, Request):
            continue
        answer = error_response(partial, error.status_hint, error.reason)
        if answer is not None:
            wire = serialize(answer)
            wire.decode("utf-8")  # strict: nothing that was not UTF-8 is echoed
            head = wire.split(b"\r\n\r\n")[0]
            assert not set(head.replace(b"\r\n", b"")) & set(range(0x20)) - {0x09}


# --- overload: a refusal is never queued behind another call's session start ------------------------


async def test_an_invite_admission_refuses_is_answered_503_while_an_admitted_ones_session_still_starts() -> None:
    held = HeldStart()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(otp.DynamicSupervisor.start_link, name="calls"))
        async with connection(dispatch=held.dispatcher) as (peer, _, _):
            await peer.send(request("INVITE", call_id="admitted") + request("INVITE", call_id="refused")
                            + request("CANCEL", call_id="admitted"))
            with trio.fail_after(10):  # a guard: the 503 comes while the first start is held
                answer = await peer.read()
            assert isinstance(answer, Response) and (answer.status, answer.call_id) == (503, "refused")
            assert answer.headers.get("Retry-After") is not None
            assert held.admission.statistics().refused_rate == 1
            assert held.got == []  # the CANCEL waits for its call's session
            assert await held.release_and_receive() == ["CANCEL"]  # (its INVITE: in the spec)
        nursery.cancel_scope.cancel()
