"""Via / parse_via: sent-protocol, sent-by, branch, received, rport (RFC 3261 §20.42, RFC 3581)."""

from __future__ import annotations

import pytest

from switchd.sip import RemoteProtocolError, Via, parse_via


def test_a_via_gives_transport_sent_by_and_branch() -> None:
    via = parse_via("SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9")
    assert via == Via("TCP", "client.atlanta.example.com", 5060, (("branch", "z9hG4bK74bf9"),))
    assert via.branch == "z9hG4bK74bf9" and via.sent_by == "client.atlanta.example.com:5060"
    assert via.protocol == "SIP/2.0"


def test_received_and_rport_are_read_from_the_params() -> None:
    via = parse_via("SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.4;rport=5071")
    assert (via.received, via.rport, via.wants_rport, via.port) == ("192.0.2.4", 5071, True, None)


def test_a_bare_rport_asks_for_one_but_has_no_value() -> None:
    via = parse_via("SIP/2.0/TCP 10.0.0.1:5060;rport;branch=z9hG4bK1")
    assert (via.rport, via.wants_rport) == (None, True)
    assert parse_via("SIP/2.0/TCP 10.0.0.1").wants_rport is False


def test_whitespace_is_allowed_around_slashes_colon_and_semicolons() -> None:
    via = parse_via("SIP / 2.0 / tcp  host.example.com : 5062 ; branch = z9hG4bKx")
    assert (via.transport, via.host, via.port, via.branch) == ("TCP", "host.example.com", 5062, "z9hG4bKx")


def test_ipv6_sent_by_keeps_its_brackets() -> None:
    via = parse_via("SIP/2.0/TCP [2001:db8::9:1]:5061;branch=z9hG4bKy")
    assert (via.host, via.port) == ("[2001:db8::9:1]", 5061)


def test_a_quoted_param_value_is_accepted() -> None:
    assert parse_via('SIP/2.0/TCP h.example.com;x="a;b";branch=z9hG4bK2').branch == "z9hG4bK2"


@pytest.mark.parametrize(
    "text",
    ["SIP/2.0/TCP", "SIP/2.0 host.example.com", "SIP/2.0/TCP host:70000", "SIP/2.0/TCP host;branch=a b",
     "junk", "SIP/2.0/TCP host.example.com;;"],
)
def test_malformed_vias_are_a_bad_via(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_via(text)
    assert info.value.reason == "Bad Via"


def test_str_writes_the_canonical_form() -> None:
    via = Via("TCP", "proxy.example.com", 5060, (("branch", "z9hG4bK1"), ("rport", None)))
    assert str(via) == "SIP/2.0/TCP proxy.example.com:5060;branch=z9hG4bK1;rport"
    assert parse_via(str(via)) == via
