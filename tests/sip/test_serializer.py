"""serialize: Content-Length always right, unknown headers byte-for-byte, parse(serialize(m)) == m."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.sip import (
    Headers,
    LocalProtocolError,
    Method,
    Request,
    Response,
    SipUri,
    parse_message,
    serialize,
)
from tests.sip.messages import ACK, BYE, INVITE, OK_200


@pytest.mark.parametrize("wire", [INVITE, ACK, BYE, OK_200])
def test_a_canonical_message_serialises_back_to_the_same_bytes(wire: bytes) -> None:
    assert serialize(parse_message(wire)) == wire


def test_unknown_headers_are_written_back_byte_for_byte() -> None:
    odd = b"X-Odd  :   spaced\tvalue  \r\nx-lower: Case Kept\r\n"
    wire = BYE.replace(b"Content-Length", odd + b"Content-Length")
    assert odd in serialize(parse_message(wire))


def test_known_headers_are_written_with_their_full_names() -> None:
    wire = BYE.replace(b"Call-ID:", b"i:").replace(b"From:", b"FROM   :")
    out = serialize(parse_message(wire))
    assert b"\r\nCall-ID: 3848276298220188511@atlanta.example.com\r\n" in out
    assert b"\r\nFrom: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n" in out


def test_content_length_is_always_the_body_length_and_written_once() -> None:
    message = parse_message(INVITE)
    message.body = b"v=0\r\n"
    message.headers.add("l", "999")
    out = serialize(message)
    assert out.count(b"Content-Length:") == 1 and b"Content-Length: 5\r\n" in out
    assert out.endswith(b"\r\n\r\nv=0\r\n")


def test_content_length_is_added_when_absent() -> None:
    response = Response(200, "OK", Headers([("Call-ID", "a@b")]))
    assert serialize(response) == b"SIP/2.0 200 OK\r\nCall-ID: a@b\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    "message",
    [
        Response(99, "Too Low", Headers()),
        Response(200, "OK\r\nX: injected", Headers()),
        Request("BAD METHOD", SipUri(host="h"), Headers()),
        Request(Method.INVITE, SipUri(host="h"), Headers(), "text body"),  # type: ignore[arg-type]
    ],
)
def test_messages_that_cannot_be_valid_sip_are_a_local_error(message: Request | Response) -> None:
    with pytest.raises(LocalProtocolError):
        serialize(message)


_token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~", min_size=1,
                 max_size=12)
_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)
_extension = st.tuples(_token.map(lambda t: f"X-{t}"), _value)


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    """A valid message: the mandatory headers, extension headers, Content-Length and a body."""
    branch = draw(_token)
    tag = draw(_token)
    method = draw(st.sampled_from(list(Method)) | _token)
    headers = Headers([
        ("Via", f"SIP/2.0/TCP host.example.com:5060;branch=z9hG4bK{branch}"),
        ("From", f"<sip:a@example.com>;tag={tag}"),
        ("To", "Bob <sip:b@example.com>"),
        ("Call-ID", f"{draw(_token)}@example.com"),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
        *draw(st.lists(_extension, max_size=5)),
    ])
    body = draw(st.binary(max_size=64))
    headers.add("Content-Length", str(len(body)))
    if draw(st.booleans()):
        user = draw(st.text("abcXYZ019-_.!~*()&=+$,;?/", min_size=1, max_size=10))
        return Request(method, SipUri(user=user, host="example.com"), headers, body)
    return Response(draw(st.integers(100, 699)), draw(_value), headers, body)


@settings(max_examples=200, deadline=None)
@given(messages())
def test_parse_of_serialize_gives_back_the_same_message(message: Request | Response) -> None:
    assert parse_message(serialize(message)) == message


@settings(max_examples=100, deadline=None)
@given(messages())
def test_serialize_of_parse_is_a_fixed_point(message: Request | Response) -> None:
    wire = serialize(message)
    assert serialize(parse_message(wire)) == wire
