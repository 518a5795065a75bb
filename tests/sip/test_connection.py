"""Connection: Content-Length framing of a TCP byte stream, keep-alives, limits, EOF."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.sip import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    Event,
    Method,
    NeedData,
    Ping,
    RemoteProtocolError,
    Request,
    Response,
    parse_message,
)
from tests.sip.messages import ACK, BYE, INVITE, OK_200


def drain(connection: Connection) -> list[Event]:
    """Every event up to (not including) NEED_DATA or ConnectionClosed (which is included)."""
    events: list[Event] = []
    while True:
        event = connection.next_event()
        if isinstance(event, NeedData):
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


def test_a_message_split_over_many_reads_comes_out_once_when_complete() -> None:
    connection = Connection()
    for index in range(len(INVITE) - 1):
        connection.receive_data(INVITE[index:index + 1])
        assert connection.next_event() is NEED_DATA
    connection.receive_data(INVITE[-1:])
    event = connection.next_event()
    assert isinstance(event, Request) and event == parse_message(INVITE)
    assert connection.next_event() is NEED_DATA


def test_ack_and_bye_in_one_read_come_out_in_order() -> None:
    connection = Connection()
    connection.receive_data(ACK + BYE)
    events = drain(connection)
    assert [e.method for e in events if isinstance(e, Request)] == [Method.ACK, Method.BYE]
    assert len(events) == 2


def test_a_response_is_framed_like_a_request() -> None:
    connection = Connection()
    connection.receive_data(OK_200)
    event = connection.next_event()
    assert isinstance(event, Response) and event.status == 200


def test_single_crlf_keepalives_between_messages_are_skipped() -> None:
    connection = Connection()
    connection.receive_data(b"\r\n" + ACK + b"\r\n" + BYE)
    assert [type(e) for e in drain(connection)] == [Request, Request]


def test_a_double_crlf_ping_asks_for_a_single_crlf_pong() -> None:
    connection = Connection()
    connection.receive_data(b"\r\n\r\n" + ACK)
    event = connection.next_event()
    assert event == Ping() and event.pong == b"\r\n"  # RFC 5626 §3.5.1
    assert isinstance(connection.next_event(), Request)


def test_a_ping_split_across_reads_is_still_one_ping() -> None:
    connection = Connection()
    connection.receive_data(b"\r\n")
    assert connection.next_event() is NEED_DATA
    connection.receive_data(b"\r")
    assert connection.next_event() is NEED_DATA
    connection.receive_data(b"\n")
    assert connection.next_event() == Ping()
    assert connection.next_event() is NEED_DATA


def test_eof_between_messages_is_a_clean_close() -> None:
    connection = Connection()
    connection.receive_data(ACK)
    connection.receive_data(b"")
    assert isinstance(connection.next_event(), Request)
    assert connection.next_event() == ConnectionClosed()


def test_eof_in_the_middle_of_a_body_loses_framing() -> None:
    connection = Connection()
    connection.receive_data(INVITE[:-5])
    assert connection.next_event() is NEED_DATA
    connection.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="5 bytes before the end of the body") as info:
        connection.next_event()
    assert info.value.framing_lost
    assert info.value.partial is not None and info.value.partial.headers.get("Call-ID")


def test_a_missing_content_length_loses_framing_but_keeps_what_a_400_needs() -> None:
    connection = Connection()
    connection.receive_data(ACK.replace(b"Content-Length: 0\r\n", b""))
    with pytest.raises(RemoteProtocolError) as info:
        connection.next_event()
    error = info.value
    assert (error.status_hint, error.reason, error.framing_lost) == (400, "Missing Content-Length", True)
    partial = error.partial
    assert isinstance(partial, Request)
    assert partial.call_id == "3848276298220188511@atlanta.example.com"
    assert partial.cseq.seq == 1 and partial.top_via.branch == "z9hG4bK74bd5"
    assert partial.from_.tag == "9fxced76sl" and partial.to.tag == "8321234356"


@pytest.mark.parametrize("value", [b"-1", b"abc", b"1e3", b"99999999999"])
def test_a_bad_content_length_loses_framing(value: bytes) -> None:
    connection = Connection()
    connection.receive_data(ACK.replace(b"Content-Length: 0", b"Content-Length: " + value))
    with pytest.raises(RemoteProtocolError) as info:
        connection.next_event()
    assert info.value.framing_lost and info.value.reason == "Bad Content-Length"


def test_after_framing_is_lost_every_call_raises_the_same_error_and_data_is_dropped() -> None:
    connection = Connection()
    connection.receive_data(b"HELLO WORLD\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as first:
        connection.next_event()
    assert first.value.framing_lost and first.value.partial is None
    connection.receive_data(ACK)
    with pytest.raises(RemoteProtocolError) as second:
        connection.next_event()
    assert second.value is first.value


def test_a_malformed_but_framed_message_costs_only_itself() -> None:
    connection = Connection()
    connection.receive_data(BYE.replace(b"CSeq: 2 BYE", b"CSeq: two BYE") + ACK)
    with pytest.raises(RemoteProtocolError) as info:
        connection.next_event()
    assert (info.value.reason, info.value.framing_lost) == ("Bad CSeq", False)
    assert isinstance(info.value.partial, Request) and info.value.partial.method is Method.BYE
    event = connection.next_event()
    assert isinstance(event, Request) and event.method is Method.ACK


def test_a_message_over_max_message_size_is_a_513_naming_the_limit() -> None:
    connection = Connection(max_message_size=len(INVITE) - 1)
    connection.receive_data(INVITE[:200])  # the head alone tells: Content-Length is known
    connection.receive_data(INVITE[200:])
    with pytest.raises(RemoteProtocolError, match="max_message_size") as info:
        connection.next_event()
    error = info.value
    assert (error.status_hint, error.limit, error.framing_lost) == (513, "max_message_size", True)
    assert isinstance(error.partial, Request)


def test_a_head_that_never_ends_hits_max_message_size() -> None:
    connection = Connection(max_message_size=1000, max_line_length=10_000)
    connection.receive_data(INVITE.split(b"\r\n\r\n")[0] + b"\r\n")
    assert connection.next_event() is NEED_DATA
    connection.receive_data(b"X-Padding: " + b"a" * 1000 + b"\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        connection.next_event()
    assert (info.value.status_hint, info.value.limit) == (513, "max_message_size")


def test_a_complete_head_over_max_message_size_is_a_513_before_it_is_parsed() -> None:
    connection = Connection(max_message_size=300)
    connection.receive_data(INVITE)
    with pytest.raises(RemoteProtocolError, match="a head of .* over max_message_size=300") as info:
        connection.next_event()
    assert (info.value.status_hint, info.value.framing_lost) == (513, True)


def test_an_endless_line_hits_max_line_length_before_the_message_ends() -> None:
    connection = Connection(max_line_length=100)
    connection.receive_data(b"INVITE sip:" + b"a" * 200)
    with pytest.raises(RemoteProtocolError, match="max_line_length") as info:
        connection.next_event()
    assert info.value.limit == "max_line_length" and info.value.framing_lost


def test_a_long_header_line_in_a_framed_message_is_a_400_naming_the_limit() -> None:
    connection = Connection(max_line_length=100)
    connection.receive_data(BYE.replace(b"CSeq: 2 BYE\r\n", b"CSeq: 2 BYE\r\nX-Long: " + b"b" * 100 + b"\r\n"))
    with pytest.raises(RemoteProtocolError, match="max_line_length=100") as info:
        connection.next_event()
    assert (info.value.limit, info.value.framing_lost, info.value.status_hint) == ("max_line_length", False, 400)


def test_too_many_headers_is_a_400_naming_max_headers() -> None:
    connection = Connection(max_headers=7)
    connection.receive_data(BYE.replace(b"CSeq: 2 BYE\r\n", b"CSeq: 2 BYE\r\nX-A: 1\r\n"))
    with pytest.raises(RemoteProtocolError, match="8 header fields, over max_headers=7") as info:
        connection.next_event()
    assert info.value.limit == "max_headers" and not info.value.framing_lost


def test_too_many_vias_is_a_400_naming_max_vias() -> None:
    vias = b"".join(b"Via: SIP/2.0/TCP p%d.example.com;branch=z9hG4bK%d\r\n" % (i, i) for i in range(3))
    connection = Connection(max_vias=2)
    connection.receive_data(BYE.replace(b"Max-Forwards", vias + b"Max-Forwards", 1))
    with pytest.raises(RemoteProtocolError, match="4 Via values, over max_vias=2") as info:
        connection.next_event()
    assert info.value.limit == "max_vias"


def test_data_after_eof_is_a_local_error() -> None:
    from switchd.sip import LocalProtocolError

    connection = Connection()
    connection.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        connection.receive_data(ACK)


def test_send_returns_the_wire_bytes() -> None:
    message = parse_message(OK_200)
    assert Connection().send(message) == OK_200


STREAM = [INVITE, ACK, BYE, OK_200]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=sum(map(len, STREAM))), max_size=30), st.booleans())
def test_any_split_of_a_stream_yields_the_same_messages(cuts: list[int], pings: bool) -> None:
    separator = b"\r\n\r\n" if pings else b"\r\n"
    stream = separator.join(STREAM)
    points = sorted({0, len(stream), *(min(c, len(stream)) for c in cuts)})
    connection = Connection()
    events: list[Event] = []
    for start, end in pairwise(points):
        connection.receive_data(stream[start:end])
        events.extend(drain(connection))
    connection.receive_data(b"")
    events.extend(drain(connection))
    messages = [e for e in events if isinstance(e, (Request, Response))]
    assert messages == [parse_message(m) for m in STREAM]
    assert events.count(Ping()) == (len(STREAM) - 1 if pings else 0)
    assert events[-1] == ConnectionClosed()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8))
def test_arbitrary_bytes_raise_nothing_but_remote_protocol_error_and_stay_bounded(chunks: list[bytes]) -> None:
    connection = Connection(max_message_size=1024, max_line_length=256)
    for chunk in [*chunks, b""]:
        connection.receive_data(chunk)
        for _ in range(10_000):  # every call consumes bytes or stops: no hang
            try:
                event = connection.next_event()
            except RemoteProtocolError as exc:
                if exc.framing_lost:
                    break
                continue
            if isinstance(event, (NeedData, ConnectionClosed)):
                break
        else:
            pytest.fail("next_event() never asked for data")
        assert len(connection._buffer) <= 1024 + 300


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(INVITE + ACK + BYE) - 1), st.binary(max_size=4)), max_size=6),
    st.lists(st.integers(1, 200), min_size=1, max_size=10),
)
def test_a_mangled_stream_in_any_chunks_raises_only_remote_protocol_error(
    edits: list[tuple[int, bytes]], sizes: list[int]
) -> None:
    stream = bytearray(INVITE + ACK + BYE)
    for position, replacement in edits:
        stream[position:position + 1] = replacement
    connection = Connection()
    position = 0
    index = 0
    while position < len(stream):
        size = sizes[index % len(sizes)]
        connection.receive_data(bytes(stream[position:position + size]))
        position += size
        index += 1
        lost = False
        for _ in range(100):
            try:
                event = connection.next_event()
            except RemoteProtocolError as exc:
                lost = exc.framing_lost
                if lost:
                    break
                continue
            if isinstance(event, NeedData):
                break
        if lost:
            return


@given(st.lists(st.sampled_from([INVITE, ACK, BYE, OK_200]), min_size=1, max_size=5), st.integers(1, 64))
def test_with_keep_bytes_each_message_leaves_the_bytes_it_was_read_from(messages: list[bytes], chunk: int) -> None:
    connection = Connection()
    connection.keep_bytes = True
    stream = b"\r\n\r\n".join(messages)  # pings between them are not part of any message
    kept: list[bytes] = []
    for start in range(0, len(stream), chunk):
        connection.receive_data(stream[start:start + chunk])
        for event in drain(connection):
            if isinstance(event, Request | Response):
                kept.append(connection.last_bytes)
                assert event == parse_message(connection.last_bytes)
    assert kept == messages
