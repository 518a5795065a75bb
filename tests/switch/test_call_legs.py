"""The B2BUA's building blocks: the B-leg INVITE, relayed responses, the failover rule, CallSettings."""

from __future__ import annotations

import pytest

from switchd.sip import Method, Response, make_request, make_response, parse_message, serialize
from switchd.switch import CallSettings, Candidate, Gateway
from switchd.switch._call_legs import b_leg_invite, relayed_response, should_fail_over

GW = Gateway(name="gw1", host="192.0.2.4", port=5080)
CANDIDATE = Candidate(gateway=GW, number="0207123", route_id="uk", prefix="44", priority=1, weight=1)
SETTINGS = CallSettings(local_address="10.0.0.9:5060")
A_INVITE = make_request(Method.INVITE, "sip:4420@10.0.0.9", from_="Alice <sip:alice@10.0.0.1>;tag=a1",
                        to="<sip:4420@10.0.0.9>", sent_by="10.0.0.1:5070", call_id="a-leg@10.0.0.1", cseq=7,
                        contact="<sip:alice@10.0.0.1:5070>", headers=[("Content-Type", "application/sdp")],
                        body=b"v=0\r\n")


def test_the_b_leg_invite_has_its_own_call_id_tag_and_cseq_and_carries_the_callers_sdp() -> None:
    invite = b_leg_invite(A_INVITE, CANDIDATE, SETTINGS)
    assert serialize(parse_message(serialize(invite))) == serialize(invite)  # valid SIP for the parser
    assert invite.call_id != A_INVITE.call_id and invite.call_id.endswith("@10.0.0.9")
    assert invite.from_.tag not in (None, "a1") and invite.from_.display_name == "Alice"
    assert invite.cseq.seq == 1 and invite.to.tag is None and invite.max_forwards == 69
    assert (invite.uri.user, invite.uri.host, invite.uri.port) == ("0207123", "192.0.2.4", 5080)
    assert (invite.body, invite.content_type) == (b"v=0\r\n", "application/sdp")
    assert invite.top_via.host == "10.0.0.9"
    assert str(invite.contact[0].uri) == "sip:10.0.0.9:5060;transport=tcp"


def test_a_relayed_response_carries_our_tag_and_contact_and_the_callees_body() -> None:
    b_invite = b_leg_invite(A_INVITE, CANDIDATE, SETTINGS)
    answer = make_response(b_invite, 200, "OK Then", to_tag="bobtag",
                           headers=[("Contact", "<sip:bob@192.0.2.4>"), ("Content-Type", "application/sdp")],
                           body=b"v=0 bob\r\n")
    relayed = relayed_response(A_INVITE, answer, "ourtag", SETTINGS)
    assert (relayed.status, relayed.reason, relayed.to.tag) == (200, "OK Then", "ourtag")
    assert relayed.call_id == A_INVITE.call_id and relayed.cseq.seq == 7
    assert (relayed.body, relayed.content_type) == (b"v=0 bob\r\n", "application/sdp")
    assert str(relayed.contact[0].uri) == "sip:10.0.0.9:5060;transport=tcp"


def _answer(status: int, *headers: tuple[str, str]) -> Response:
    return make_response(A_INVITE, status, to_tag="t", headers=list(headers))


@pytest.mark.parametrize(("status", "fails_over"), [
    (500, True), (502, True), (504, True), (408, True), (503, True),
    (486, False), (404, False), (480, False), (487, False), (603, False), (600, False), (302, False),
])
def test_5xx_and_408_fail_over_and_every_other_answer_is_the_callees(status: int, fails_over: bool) -> None:
    assert should_fail_over(_answer(status), wait_left=60.0) is fails_over


def test_a_timeout_or_a_transport_failure_fails_over() -> None:
    assert should_fail_over(None, wait_left=0.0)


def test_a_503_fails_over_unless_its_retry_after_is_longer_than_the_call_can_wait() -> None:
    assert should_fail_over(_answer(503, ("Retry-After", "30")), wait_left=30.0)
    assert not should_fail_over(_answer(503, ("Retry-After", "31")), wait_left=30.0)
    assert should_fail_over(_answer(503, ("Retry-After", "soon")), wait_left=30.0)  # malformed: ignored


@pytest.mark.parametrize("field", ["no_answer", "max_call_duration", "cdr_timeout", "router_timeout",
                                   "cleanup_timeout"])
def test_call_settings_refuse_a_timeout_that_is_not_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CallSettings(**{field: 0.0})  # type: ignore[arg-type]
