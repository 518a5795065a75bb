"""make_response (§8.2.6), make_ack_for_non2xx (§17.1.1.3) and make_cancel (§9.1)."""

from __future__ import annotations

import pytest

from switchd.sip import (
    MAGIC_COOKIE,
    LocalProtocolError,
    Method,
    Request,
    Status,
    make_ack_for_non2xx,
    make_cancel,
    make_request,
    make_response,
    parse_message,
    serialize,
)

from ._sample_calls import request, response

PROXY_VIA = "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKproxy1;received=192.0.2.1"
RECORD_ROUTES = ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]


def test_a_response_copies_every_via_in_order_and_from_call_id_cseq() -> None:
    invite = request(extra_vias=[PROXY_VIA])
    ringing = make_response(invite, Status.RINGING, to_tag="bobtag")
    assert ringing.headers.get_all("Via") == invite.headers.get_all("Via")
    assert [via.branch for via in ringing.vias] == ["z9hG4bK776asdhds", "z9hG4bKproxy1"]
    assert ringing.headers.get("From") == invite.headers.get("From")
    assert ringing.call_id == invite.call_id
    assert ringing.cseq == invite.cseq
    assert (ringing.status, ringing.reason) == (180, "Ringing")


def test_a_response_gets_the_to_tag_given() -> None:
    ok = make_response(request(), Status.OK, to_tag="bobtag")
    assert ok.to.tag == "bobtag"
    assert str(ok.to.uri) == "sip:bob@example.com"
    assert ok.to.display_name == "Bob"


def test_a_response_without_a_to_tag_leaves_to_as_it_was() -> None:
    trying = make_response(request(), Status.TRYING)
    assert trying.headers.get("To") == "Bob <sip:bob@example.com>"
    assert trying.to.tag is None


def test_a_response_in_a_dialog_keeps_the_to_tag_of_the_request() -> None:
    bye = request(Method.BYE, to_tag="bobtag")
    assert make_response(bye, Status.OK, to_tag="bobtag").to.tag == "bobtag"
    assert make_response(bye, Status.OK).to.tag == "bobtag"


def test_a_response_refuses_a_to_tag_that_contradicts_the_request() -> None:
    with pytest.raises(LocalProtocolError, match="already has tag 'bobtag'"):
        make_response(request(Method.BYE, to_tag="bobtag"), Status.OK, to_tag="other")


def test_the_reason_phrase_defaults_to_the_status_phrase_and_can_be_given() -> None:
    assert make_response(request(), 486).reason == "Busy Here"
    assert make_response(request(), 599).reason == "Server Error"  # unknown code: its class phrase
    assert make_response(request(), 503, "Overloaded").reason == "Overloaded"


def test_a_100_trying_copies_the_timestamp() -> None:
    invite = request(extra=[("Timestamp", "54.2 0.3")])
    assert make_response(invite, Status.TRYING).headers.get("Timestamp") == "54.2 0.3"
    assert "Timestamp" not in make_response(invite, Status.RINGING).headers


def test_a_dialog_creating_response_to_an_invite_copies_record_route() -> None:
    invite = request(record_routes=RECORD_ROUTES)
    for status in (Status.RINGING, Status.OK):
        created = make_response(invite, status, to_tag="bobtag")
        assert created.headers.get_all("Record-Route") == RECORD_ROUTES
    assert "Record-Route" not in make_response(invite, Status.BUSY_HERE, to_tag="t").headers
    assert "Record-Route" not in make_response(invite, Status.TRYING).headers


def test_extra_headers_and_the_body_go_into_the_response() -> None:
    sdp = b"v=0\r\n"
    ok = make_response(
        request(),
        Status.OK,
        to_tag="bobtag",
        headers=[("Contact", "<sip:switch@10.0.0.9:5060>"), ("Content-Type", "application/sdp")],
        body=sdp,
    )
    assert ok.contact[0].uri.host == "10.0.0.9"
    assert ok.content_type == "application/sdp"
    assert ok.body == sdp


@pytest.mark.parametrize("status", [99, 700, 0])
def test_a_status_outside_100_to_699_is_refused(status: int) -> None:
    with pytest.raises(LocalProtocolError, match=str(status)):
        make_response(request(), status)


def test_the_ack_to_a_non_2xx_reuses_the_invite_branch_and_the_response_to_tag() -> None:
    invite = request(routes=["<sip:p1.example.com;lr>"], cseq=7)
    busy = response(invite, Status.BUSY_HERE, to_tag="busytag")
    ack = make_ack_for_non2xx(invite, busy)
    assert ack.method == Method.ACK
    assert ack.uri == invite.uri
    assert [via.branch for via in ack.vias] == [invite.branch]
    assert ack.to.tag == "busytag"
    assert ack.from_ == invite.from_
    assert ack.call_id == invite.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (7, Method.ACK)
    assert ack.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert ack.max_forwards == 70
    assert ack.body == b""


def test_the_ack_to_a_non_2xx_carries_only_the_top_via() -> None:
    invite = request(extra_vias=[PROXY_VIA])
    ack = make_ack_for_non2xx(invite, response(invite, Status.NOT_FOUND))
    assert ack.headers.get_all("Via") == [invite.headers.get_all("Via")[0]]


def test_a_2xx_is_not_acked_by_the_non_2xx_builder() -> None:
    invite = request()
    with pytest.raises(LocalProtocolError, match="200"):
        make_ack_for_non2xx(invite, response(invite, Status.OK))


def test_cancel_matches_its_invite_by_branch_and_cseq_number() -> None:
    invite = request(routes=["<sip:p1.example.com;lr>"], cseq=42, extra_vias=[PROXY_VIA])
    cancel = make_cancel(invite)
    assert cancel.method == Method.CANCEL
    assert cancel.uri == invite.uri
    assert cancel.headers.get_all("Via") == [invite.headers.get_all("Via")[0]]
    assert (cancel.cseq.seq, cancel.cseq.method) == (42, Method.CANCEL)
    assert cancel.to == invite.to and cancel.to.tag is None
    assert cancel.from_ == invite.from_
    assert cancel.call_id == invite.call_id
    assert cancel.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]


@pytest.mark.parametrize("method", [Method.BYE, Method.OPTIONS])
def test_only_an_invite_can_be_cancelled_or_acked(method: Method) -> None:
    bye = request(method, to_tag="t")
    with pytest.raises(LocalProtocolError, match="only an INVITE"):
        make_cancel(bye)
    with pytest.raises(LocalProtocolError, match="only an INVITE"):
        make_ack_for_non2xx(bye, response(bye, 481))


def test_a_new_invite_has_everything_section_8_1_1_asks_for() -> None:
    invite = make_request(
        Method.INVITE,
        "sip:+4930123@gw.example.net:5060",
        from_='"Alice" <sip:alice@example.com>',
        to="<sip:+4930123@gw.example.net>",
        sent_by="10.0.0.9:5060",
        contact="<sip:switch@10.0.0.9:5060;transport=tcp>",
        headers=[("Content-Type", "application/sdp")],
        body=b"v=0\r\n",
    )
    parsed = parse_message(serialize(invite))
    assert isinstance(parsed, Request)
    assert parsed.method == Method.INVITE and str(parsed.uri) == "sip:+4930123@gw.example.net:5060"
    [via] = parsed.vias
    assert (via.transport, via.sent_by) == ("TCP", "10.0.0.9:5060")
    assert (via.branch or "").startswith(MAGIC_COOKIE)
    assert parsed.from_.display_name == "Alice" and parsed.from_.tag
    assert parsed.to.tag is None
    assert parsed.call_id.endswith("@10.0.0.9")
    assert (parsed.cseq.seq, parsed.cseq.method) == (1, Method.INVITE)
    assert parsed.max_forwards == 70
    assert str(parsed.contact[0].uri) == "sip:switch@10.0.0.9:5060;transport=tcp"
    assert parsed.body == b"v=0\r\n" and parsed.content_type == "application/sdp"


def test_a_new_request_keeps_a_given_from_tag_call_id_cseq_and_branch() -> None:
    options = make_request(
        Method.OPTIONS, "sip:gw.example.net", from_="<sip:switch@example.com>;tag=mine",
        to="<sip:gw.example.net>", sent_by="[2001:db8::9]:5060", call_id="ping-1", cseq=42,
        branch="z9hG4bKping1",
    )
    assert options.from_.tag == "mine"
    assert (options.call_id, options.cseq.seq, options.branch) == ("ping-1", 42, "z9hG4bKping1")
    assert options.top_via.host == "[2001:db8::9]"
    assert "Contact" not in options.headers


def test_a_new_requests_fresh_identifiers_differ_each_time() -> None:
    def options() -> Request:
        return make_request(Method.OPTIONS, "sip:gw", from_="<sip:a@b>", to="<sip:gw>", sent_by="h")

    first, second = options(), options()
    assert first.call_id != second.call_id
    assert first.branch != second.branch
    assert first.from_.tag != second.from_.tag


def test_a_new_request_refuses_what_section_8_1_1_forbids() -> None:
    with pytest.raises(LocalProtocolError, match="needs a Contact"):
        make_request(Method.INVITE, "sip:gw", from_="<sip:a@b>", to="<sip:gw>", sent_by="h")
    with pytest.raises(LocalProtocolError, match="2\\*\\*31"):
        make_request(Method.BYE, "sip:gw", from_="<sip:a@b>", to="<sip:gw>", sent_by="h", cseq=2**31)
    with pytest.raises(LocalProtocolError, match="To"):
        make_request(Method.BYE, "sip:gw", from_="<sip:a@b>", to="<<bad", sent_by="h")
