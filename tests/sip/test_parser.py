"""parse_message: start lines, header splitting, mandatory headers, the two kinds of error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.sip import Method, NameAddr, RemoteProtocolError, Request, Response, parse_message
from tests.sip.messages import ACK, BYE, INVITE, OK_200, SDP


def test_an_invite_parses_into_a_request_with_its_uri_headers_and_body() -> None:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    assert message.method is Method.INVITE
    assert str(message.uri) == "sip:bob@biloxi.example.com"
    assert message.body == SDP
    assert message.headers.get("user-agent") == "SIPp/3.7"
    assert len(message.headers) == 10


def test_a_response_parses_with_status_and_reason() -> None:
    message = parse_message(OK_200)
    assert isinstance(message, Response)
    assert (message.status, message.reason) == (200, "OK")
    assert message.top_via.received == "192.0.2.101"


def test_the_headers_a_proxy_needs_are_read_through_typed_accessors() -> None:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    assert message.branch == "z9hG4bK74bf9"
    assert message.from_.tag == "9fxced76sl"
    assert message.to.tag is None
    assert message.call_id == "3848276298220188511@atlanta.example.com"
    assert (message.cseq.seq, message.cseq.method) == (1, Method.INVITE)
    assert message.max_forwards == 70
    assert message.contact[0].uri.param("transport") == "tcp"
    assert message.content_type == "application/sdp"


def test_compact_header_names_are_normalised_to_full_names() -> None:
    compact = (
        b"BYE sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/TCP a.example.com;branch=z9hG4bK1\r\n"
        b"f: <sip:alice@example.com>;tag=1\r\nt: <sip:bob@example.com>;tag=2\r\n"
        b"i: abc@a\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n"
    )
    message = parse_message(compact)
    assert [name for name, _ in message.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Content-Length",
    ]
    assert message.call_id == "abc@a"


def test_folded_header_lines_are_joined_with_a_space() -> None:
    folded = BYE.replace(b"Max-Forwards: 70\r\n", b"Subject: I know\r\n  you're there\r\nMax-Forwards: 70\r\n")
    assert parse_message(folded).headers.get("Subject") == "I know you're there"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b"CSeq: 2 BYE", b"CSeq: two BYE", "Bad CSeq"),
        (b"CSeq: 2 BYE", b"CSeq: 2 INVITE", "CSeq Method Mismatch"),
        (b"Call-ID: 3848276298220188511@atlanta.example.com\r\n", b"", "Missing Call-ID"),
        (b"From: Alice <sip:alice@atlanta.example.com>", b"From: Alice <sip:alice@atlanta", "Bad From"),
        (b"Max-Forwards: 70", b"Max-Forwards: lots", "Bad Max-Forwards"),
        (b"SIP/2.0/TCP client", b"SIP/2.0/TCP ", "Bad Via"),
    ],
)
def test_a_bad_mandatory_header_is_a_400_that_keeps_the_partial_message(
    old: bytes, new: bytes, reason: str
) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(BYE.replace(old, new))
    assert (info.value.status_hint, info.value.reason, info.value.framing_lost) == (400, reason, False)
    partial = info.value.partial
    assert partial is not None and partial.headers.get("CSeq") is not None


def test_an_unsupported_sip_version_is_a_505() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(ACK.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1))
    assert info.value.status_hint == 505


def test_a_content_length_that_disagrees_with_the_body_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError, match="Content-Length 0 but the body has 3 bytes"):
        parse_message(ACK + b"abc")


def _read_everything(message: Request | Response) -> None:
    """Touch every typed accessor, as a curious caller would."""
    for name in ("call_id", "cseq", "from_", "to", "vias", "top_via", "contact", "contact_is_star",
                 "max_forwards", "content_type", "routes", "record_routes", "retry_after",
                 "www_authenticate", "proxy_authenticate", "authorization", "proxy_authorization"):
        try:
            value = getattr(message, name)
        except RemoteProtocolError:
            continue
        for address in value if isinstance(value, list) else [value]:
            if isinstance(address, NameAddr):
                try:
                    address.uri  # noqa: B018
                except RemoteProtocolError:
                    pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_nothing_but_remote_protocol_error(data: bytes) -> None:
    try:
        message = parse_message(data)
    except RemoteProtocolError:
        return
    _read_everything(message)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(INVITE) - 1), st.binary(max_size=3)), min_size=1, max_size=6))
def test_a_mangled_invite_raises_nothing_but_remote_protocol_error(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(INVITE)
    for position, replacement in edits:
        data[position:position + 1] = replacement
    try:
        message = parse_message(bytes(data))
    except RemoteProtocolError:
        return
    _read_everything(message)
