"""SIP over UDP in the sans-IO layer: parse_datagram (§18.3), stamp_source (§18.2.1, RFC 3581), response_destination."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.sip import (
    Limits,
    RemoteProtocolError,
    Request,
    Response,
    make_response,
    parse_datagram,
    parse_message,
    response_destination,
    serialize,
    stamp_source,
)
from tests.sip._edge import assert_storable
from tests.sip._mutations import VALID, mangled
from tests.sip.messages import INVITE, OK_200, OPTIONS, SDP


def without_content_length(data: bytes) -> bytes:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"content-length")]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def with_content_length(data: bytes, value: int) -> bytes:
    head, _, body = without_content_length(data).partition(b"\r\n\r\n")
    return head + f"\r\nContent-Length: {value}\r\n\r\n".encode() + body


def request(data: bytes) -> Request:
    message = parse_datagram(data)
    assert isinstance(message, Request)
    return message


# -- parse_datagram ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", VALID)
def test_a_datagram_holding_one_message_parses_as_that_message(data: bytes) -> None:
    assert parse_datagram(data) == parse_message(data)


def test_content_length_is_optional_on_udp_and_the_body_is_the_rest_of_the_datagram() -> None:
    message = request(without_content_length(INVITE))
    assert message.body == SDP
    assert serialize(message) == serialize(parse_message(INVITE))  # it gets its Content-Length back


def test_bytes_after_the_declared_body_are_discarded() -> None:
    message = request(INVITE + b"trailing junk")
    assert message.body == SDP


def test_a_body_shorter_than_content_length_is_a_400_with_the_partial_request() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_datagram(with_content_length(INVITE, len(SDP) + 10))
    assert caught.value.reason == "Bad Content-Length"
    assert isinstance(caught.value.partial, Request)
    assert caught.value.partial.call_id  # enough to answer it


def test_a_response_shorter_than_its_content_length_is_refused_too() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_datagram(with_content_length(OK_200, 50))
    assert isinstance(caught.value.partial, Response)  # the caller drops it (§18.3)


@pytest.mark.parametrize("data", [b"\r\n", b"\r\n\r\n", b"\r\n\r\n\r\n\r\n", b"\n"])
def test_a_datagram_of_crlf_only_is_a_keep_alive(data: bytes) -> None:
    assert parse_datagram(data) is None


def test_crlfs_before_the_start_line_are_skipped() -> None:
    assert parse_datagram(b"\r\n\r\n" + OPTIONS) == parse_message(OPTIONS)


def test_a_datagram_over_the_size_limit_is_refused_unread() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_datagram(INVITE, Limits(max_message_size=len(INVITE) - 1))
    assert (caught.value.status_hint, caught.value.limit, caught.value.partial) == (513, "max_message_size", None)


def test_a_head_without_its_blank_line_is_a_400_that_can_still_be_answered() -> None:
    head = OPTIONS.partition(b"\r\n\r\n")[0]
    with pytest.raises(RemoteProtocolError) as caught:
        parse_datagram(head + b"\r\n")
    assert isinstance(caught.value.partial, Request)


@pytest.mark.parametrize("data", [b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), b"hello", b"GET / HTTP/1.1\r\n\r\n"])
def test_what_is_not_sip_at_all_has_nothing_to_answer(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_datagram(data)  # a STUN binding request, a word, HTTP
    assert caught.value.partial is None


@settings(max_examples=1000, deadline=None)
@given(mangled())
def test_whatever_a_mangled_datagram_becomes_what_comes_out_is_storable(data: bytes) -> None:
    try:
        message = parse_datagram(data)
    except RemoteProtocolError:
        return  # the only error there is; the switch's answer to its partial is tested in tests/switch
    if message is not None:
        assert_storable(message)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1500))
def test_arbitrary_datagrams_raise_nothing_but_remote_protocol_error(data: bytes) -> None:
    try:
        message = parse_datagram(data)
    except RemoteProtocolError:
        return
    if message is not None:
        assert_storable(message)


# -- received / rport ---------------------------------------------------------------------------


def test_stamp_source_sets_received_and_rport_on_the_top_via_only() -> None:
    invite = request(INVITE)
    vias_before = invite.headers.get_all("Via")
    stamp_source(invite, "192.0.2.7", 40000)
    top = invite.top_via
    assert (top.received, top.rport) == ("192.0.2.7", 40000)
    assert invite.headers.get_all("Via")[1:] == vias_before[1:]
    again = parse_message(serialize(invite))
    assert again.top_via == top  # what is written is what is cached


def test_a_received_or_rport_the_peer_wrote_is_replaced_never_trusted() -> None:
    spoofed = INVITE.replace(b";branch=", b";received=203.0.113.66;rport=9;branch=", 1)
    invite = request(spoofed)
    stamp_source(invite, "192.0.2.7", 5060)
    top = invite.top_via
    assert [name for name, _ in top.params].count("received") == 1
    assert response_destination(make_response(invite, 200, to_tag="x")) == ("192.0.2.7", 5060)


def test_the_response_to_a_stamped_request_goes_back_to_its_source_whatever_its_via_says() -> None:
    forged = INVITE.replace(b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;",
                            b"Via: SIP/2.0/UDP victim.example.net:7000;maddr=198.51.100.1;", 1)
    invite = request(forged)
    assert invite.top_via.host == "victim.example.net"
    stamp_source(invite, "192.0.2.7", 41234)
    answer = make_response(invite, 486, to_tag="x")
    wire = parse_message(serialize(answer))
    assert isinstance(wire, Response)
    assert response_destination(wire) == ("192.0.2.7", 41234)


def test_a_comma_separated_via_list_keeps_its_later_values() -> None:
    data = INVITE.replace(b"\r\nVia: ", b"\r\nVia: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKtop, ", 1)
    invite = request(data)
    others = invite.vias[1:]
    stamp_source(invite, "10.9.9.9", 5062)
    assert invite.top_via.branch == "z9hG4bKtop" and invite.top_via.received == "10.9.9.9"
    assert parse_message(serialize(invite)).vias[1:] == others


def test_an_ipv6_source_is_written_without_brackets_and_read_back_as_an_address() -> None:
    invite = request(INVITE)
    stamp_source(invite, "2001:db8::7", 5060)
    assert parse_message(serialize(invite)).top_via.received == "2001:db8::7"
    assert response_destination(make_response(invite, 100)) == ("2001:db8::7", 5060)


def test_the_cached_headers_stay_valid_after_the_stamp() -> None:
    invite = request(INVITE)
    call_id, from_tag = invite.call_id, invite.from_.tag
    stamp_source(invite, "192.0.2.7", 5060)
    assert (invite.call_id, invite.from_.tag) == (call_id, from_tag)


@pytest.mark.parametrize(
    ("via", "destination"),
    [
        ("SIP/2.0/UDP 192.0.2.1", ("192.0.2.1", 5060)),
        ("SIP/2.0/UDP 192.0.2.1:5070", ("192.0.2.1", 5070)),
        ("SIP/2.0/UDP host.example.com:5070;received=192.0.2.9", ("192.0.2.9", 5070)),
        ("SIP/2.0/UDP 192.0.2.1:5070;received=192.0.2.9;rport=4000", ("192.0.2.9", 4000)),
        ("SIP/2.0/UDP 192.0.2.1:5070;rport", ("192.0.2.1", 5070)),
        ("SIP/2.0/UDP [2001:db8::1]:5070", ("2001:db8::1", 5070)),
    ],
)
def test_where_a_response_goes_follows_rfc_3261_and_3581(via: str, destination: tuple[str, int]) -> None:
    response = parse_message(OK_200)
    assert isinstance(response, Response)
    response.headers.set("Via", f"{via};branch=z9hG4bKx")
    assert response_destination(response) == destination
