"""Request / Response typed accessors: parsed on first use, cached until the headers change."""

from __future__ import annotations

import pytest

from switchd.sip import (
    Headers,
    Method,
    RemoteProtocolError,
    Request,
    Response,
    SipUri,
    parse_message,
    parse_uri,
)
from tests.sip.messages import BYE, INVITE, OK_200


def test_vias_are_listed_top_first_across_fields_and_comma_lists() -> None:
    message = parse_message(BYE.replace(
        b"Via: SIP/2.0/TCP client", b"Via: SIP/2.0/TCP p1.example.com;branch=z9hG4bKp1, "
        b"SIP/2.0/TCP p2.example.com;branch=z9hG4bKp2\r\nVia: SIP/2.0/TCP client",
    ))
    assert [v.host for v in message.vias] == ["p1.example.com", "p2.example.com", "client.atlanta.example.com"]
    assert message.top_via.branch == "z9hG4bKp1"
    assert isinstance(message, Request) and message.branch == "z9hG4bKp1"


def test_routes_and_record_routes_keep_their_order() -> None:
    message = parse_message(OK_200.replace(
        b"Content-Length", b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
        b"Route: <sip:r1.example.com;lr>\r\nContent-Length",
    ))
    assert [str(r.uri) for r in message.record_routes] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert [r.uri.host for r in message.routes] == ["r1.example.com"]


def test_absent_optional_headers_read_as_none_or_empty() -> None:
    request = Request(Method.OPTIONS, SipUri(host="example.com"), Headers())
    assert request.max_forwards is None and request.content_type is None and request.retry_after is None
    assert request.contact == [] and request.routes == [] and request.www_authenticate == []


def test_a_missing_mandatory_header_raises_naming_it() -> None:
    request = Request(Method.OPTIONS, SipUri(host="example.com"), Headers())
    with pytest.raises(RemoteProtocolError, match="missing Call-ID header"):
        request.call_id  # noqa: B018
    with pytest.raises(RemoteProtocolError) as info:
        request.top_via  # noqa: B018
    assert info.value.reason == "Missing Via"


def test_contact_star_is_its_own_case() -> None:
    request = Request(Method.REGISTER, parse_uri("sip:registrar.example.com"), Headers([("Contact", "*")]))
    assert request.contact_is_star
    with pytest.raises(RemoteProtocolError, match=r"Contact: \*"):
        request.contact  # noqa: B018


@pytest.mark.parametrize(
    "contacts",
    [[("Contact", "<sip:a@h1>")], [("Contact", "<sip:a@h1>, <sip:b@h2>;q=0.5")],
     [("Contact", "<sip:a@h1>"), ("Contact", "<sip:b@h2>;q=0.5")], [("Contact", "*, <sip:a@h1>")]],
)
def test_contact_lists_every_address_in_order_whether_in_one_field_or_several(
    contacts: list[tuple[str, str]],
) -> None:
    request = Request(Method.REGISTER, parse_uri("sip:registrar.example.com"), Headers(contacts))
    values = [v for _, value in contacts for v in value.split(", ")]
    if values[0] == "*":  # not a lone "*": read as an address, which it is not
        with pytest.raises(RemoteProtocolError):
            request.contact  # noqa: B018
        return
    assert [str(address) for address in request.contact] == values


def test_a_cached_accessor_sees_a_change_to_the_headers() -> None:
    message = parse_message(INVITE)
    assert message.call_id == "3848276298220188511@atlanta.example.com"
    message.headers.set("Call-ID", "other@x")
    assert message.call_id == "other@x"
    message.headers.set("Max-Forwards", "5")
    assert message.max_forwards == 5


def test_max_forwards_outside_0_to_255_is_a_400() -> None:
    message = Request(Method.BYE, SipUri(host="h"), Headers([("Max-Forwards", "256")]))
    with pytest.raises(RemoteProtocolError, match="Max-Forwards"):
        message.max_forwards  # noqa: B018


def test_retry_after_and_auth_headers_are_typed() -> None:
    response = Response(503, "Service Unavailable", Headers([
        ("Retry-After", "30;duration=60"),
        ("WWW-Authenticate", 'Digest realm="a", nonce="n1"'),
        ("WWW-Authenticate", 'Digest realm="b", nonce="n2"'),
        ("Proxy-Authenticate", 'Digest realm="p", nonce="n3"'),
    ]))
    assert response.retry_after is not None and response.retry_after.seconds == 30
    assert [c.realm for c in response.www_authenticate] == ["a", "b"]
    assert response.proxy_authenticate[0].nonce == "n3"
    request = Request(Method.INVITE, SipUri(host="h"), Headers([
        ("Authorization", 'Digest username="u", response="r"'),
        ("Proxy-Authorization", 'Digest username="v", response="s"'),
    ]))
    assert request.authorization[0].param("username") == "u"
    assert request.proxy_authorization[0].param("response") == "s"


def test_a_response_is_built_directly_and_compares_by_value() -> None:
    a = Response(180, "Ringing", Headers([("To", "<sip:b@h>;tag=1")]))
    b = Response(180, "Ringing", Headers([("t", "<sip:b@h>;tag=1")]))
    assert a == b and a.to.tag == "1"


def test_a_trimmed_invite_keeps_its_dialog_identity_and_drops_body_and_other_headers() -> None:
    invite = parse_message(INVITE)
    assert isinstance(invite, Request) and invite.body and invite.content_type is not None
    call_id, cseq, from_, to, via, contact = (invite.call_id, invite.cseq, invite.from_, invite.to,
                                              invite.top_via, invite.contact)
    invite.trim()
    assert (invite.call_id, invite.cseq, invite.from_, invite.to, invite.top_via, invite.contact) == (
        call_id, cseq, from_, to, via, contact)
    assert invite.body == b"" and invite.content_type is None and invite.max_forwards is None
    assert {name for name, _ in invite.headers} == {"Via", "From", "To", "Call-ID", "CSeq", "Contact"}


def test_a_trimmed_response_keeps_its_status() -> None:
    ok = parse_message(OK_200)
    assert isinstance(ok, Response)
    ok.trim()
    assert ok.status == 200 and ok.body == b"" and ok.call_id
