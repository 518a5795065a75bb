"""Via / parse_via: sent-protocol, sent-by, branch, received, rport (RFC 3261 §20.42, RFC 3581)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.sip import RemoteProtocolError, Via, parse_via
from switchd.sip._via import _COMMON, _parse_via

from ._fast_paths import HOSTS, NEAR, PORTS, hostport_params, mostly, near_misses, outcome


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


_token = st.text("aZ09-.!%*_+`'~", min_size=1, max_size=5)
_param = mostly(_token, NEAR + "\"")


@settings(max_examples=300)
@given(
    protocol=st.sampled_from(["SIP/2.0/TCP", "SIP/2.0/UDP", "SIP/2.0/TCP", "SIP/2.0/tcp", "SIP/2.0/TLS",
                              "SIP/2.0/TCP "]),
    host=HOSTS,
    port=PORTS,
    params=st.lists(st.tuples(_param, st.none() | _param), max_size=4),
)
def test_the_common_shape_fast_path_gives_exactly_what_the_full_grammar_gives(
    protocol: str, host: str, port: int | None, params: list[tuple[str, str | None]],
) -> None:
    text = f"{protocol} {hostport_params(host, port, params)}"
    assert outcome(parse_via, text) == outcome(_parse_via, text)


def test_any_character_in_any_part_of_a_common_via_gets_what_the_full_grammar_gives() -> None:
    parts = {"transport": "TCP", "host": "192.0.2.101", "port": "5060", "branch": "z9hG4bK-3184-1-0",
             "flag": "rport"}
    for text in near_misses("SIP/2.0/{transport} {host}:{port};branch={branch};{flag}", parts):
        assert outcome(parse_via, text) == outcome(_parse_via, text), text


@pytest.mark.parametrize("transport", ["TCP", "UDP", "TLS", "tcp", "SCTP", "WS"])
@pytest.mark.parametrize("sent_by", ["h", "h-", "h.", "1.2.3.4:0", "h:65535", "h:65536", "h:099999"])
def test_every_transport_and_host_edge_gets_what_the_full_grammar_gives(transport: str, sent_by: str) -> None:
    text = f"SIP/2.0/{transport} {sent_by};branch=z9hG4bK1"
    assert outcome(parse_via, text) == outcome(_parse_via, text)


@pytest.mark.parametrize(
    "text",
    ["SIP/2.0/TCP 192.0.2.101:5060;branch=z9hG4bK-3184-1-0;rport",
     "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5061"],
)
def test_common_vias_take_the_fast_path(text: str) -> None:
    assert _COMMON.fullmatch(text) is not None


@pytest.mark.parametrize(
    ("params", "branch"),
    [((("BRANCH", "z9hG4bK1"),), "z9hG4bK1"), ((("x", None), ("Branch", "a"), ("branch", "b")), "a"),
     ((("branch", None),), None), ((("branch", ""),), None), ((), None)],
)
def test_the_branch_is_the_first_branch_parameter_in_any_case_and_none_when_empty(
    params: tuple[tuple[str, str | None], ...], branch: str | None,
) -> None:
    assert Via("TCP", "h", params=params).branch == branch
