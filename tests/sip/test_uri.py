"""SipUri / parse_uri: RFC 3261 §19.1 SIP and SIPS URIs; other schemes kept opaque."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.sip import RemoteProtocolError, SipUri, parse_uri
from switchd.sip._uri import _COMMON, _parse_uri

from ._fast_paths import HOSTS, NEAR, PORTS, hostport_params, mostly, near_misses, outcome


def test_every_component_of_a_sip_uri_is_parsed() -> None:
    uri = parse_uri("sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=project&priority=urgent")
    assert uri == SipUri(
        scheme="sips", user="alice", password="secret", host="atlanta.example.com", port=5061,
        params=(("transport", "tcp"), ("lr", None)), headers=(("subject", "project"), ("priority", "urgent")),
    )
    assert uri.param("TRANSPORT") == "tcp" and uri.param("lr") == "" and uri.param("maddr") is None


def test_a_uri_without_user_or_port_has_none_for_them() -> None:
    uri = parse_uri("sip:biloxi.example.com")
    assert (uri.user, uri.password, uri.host, uri.port) == (None, None, "biloxi.example.com", None)


def test_ipv6_hosts_keep_their_brackets() -> None:
    uri = parse_uri("sip:[2001:db8::10]:5070")
    assert (uri.host, uri.port) == ("[2001:db8::10]", 5070)


def test_the_user_part_may_hold_semicolons_and_escapes() -> None:
    uri = parse_uri("sip:user;par=u%40example.net@example.com")  # RFC 4475 §3.1.1.6 (escruri)
    assert (uri.user, uri.host) == ("user;par=u%40example.net", "example.com")


def test_the_scheme_is_case_insensitive_and_lowered() -> None:
    assert parse_uri("SIP:bob@example.com").scheme == "sip"


def test_other_schemes_are_kept_opaque() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert (uri.scheme, uri.opaque, uri.is_sip) == ("tel", "+1-201-555-0123;phone-context=example.com", False)
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


@pytest.mark.parametrize(
    "text",
    ["biloxi.example.com", "sip:", "sip:bob@", "sip:bob@host:99999", "sip:bob@host:abc", "sip:[::1",
     "sip:bob@exa mple.com", "sip:bob@host;=x", "sip:b%4@host", "sip:a@b@c", "sip:host?subject",
     "sip:-host.example.com", "sip:@host"],
)
def test_malformed_uris_are_a_400_naming_the_uri(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_uri(text, "Request-URI")
    assert info.value.status_hint == 400 and info.value.reason == "Bad Request-URI"
    assert repr(text) in str(info.value)


def test_str_writes_a_uri_that_parses_back_equal() -> None:
    text = "sip:alice@atlanta.example.com:5060;transport=tcp;lr?h=v"
    assert str(parse_uri(text)) == text


_tokens = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_hosts = st.one_of(
    st.lists(st.text("abcxyz0189", min_size=1, max_size=6), min_size=1, max_size=3).map(".".join),
    st.just("[2001:db8::1]"), st.just("192.0.2.1"),
)


@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | st.text("abcXYZ019-_.!~*'()&=+$,;?/", min_size=1, max_size=10),
    password=st.none() | st.text("abc019&=+$,", max_size=6),
    host=_hosts,
    port=st.none() | st.integers(0, 65535),
    params=st.lists(st.tuples(_tokens, st.none() | _tokens), max_size=3).map(tuple),
    headers=st.lists(st.tuples(_tokens, st.text("abc019", max_size=4)), max_size=2).map(tuple),
)
def test_any_sip_uri_round_trips_through_str_and_parse(
    scheme: str, user: str | None, password: str | None, host: str, port: int | None,
    params: tuple[tuple[str, str | None], ...], headers: tuple[tuple[str, str], ...],
) -> None:
    if user is None:
        password = None
    uri = SipUri(scheme, user, password, host, port, params, headers)
    assert parse_uri(str(uri)) == uri


def _general(text: str) -> SipUri:
    return _parse_uri(text, "URI")


_param = mostly(st.text("aZ09-.!*_+'~", min_size=1, max_size=4), NEAR + "%f")


@settings(max_examples=300)
@given(
    scheme=st.sampled_from(["sip", "sips", "sip", "sips", "SIP", "tel"]),
    user=st.none() | mostly(st.text("aZ09-_.!~*'()&=+$,/", min_size=1, max_size=6), NEAR + "%f"),
    host=HOSTS,
    port=PORTS,
    params=st.lists(st.tuples(_param, st.none() | _param), max_size=3),
)
def test_the_common_shape_fast_path_gives_exactly_what_the_full_grammar_gives(
    scheme: str, user: str | None, host: str, port: int | None, params: list[tuple[str, str | None]],
) -> None:
    text = f"{scheme}:{'' if user is None else user + '@'}{hostport_params(host, port, params)}"
    assert outcome(parse_uri, text) == outcome(_general, text)


def test_any_character_in_any_part_of_a_common_uri_gets_what_the_full_grammar_gives() -> None:
    parts = {"scheme": "sip", "user": "alice", "host": "atlanta.example.com", "port": "5060",
             "name": "transport", "value": "tcp", "flag": "lr"}
    for text in near_misses("{scheme}:{user}@{host}:{port};{name}={value};{flag}", parts):
        assert outcome(parse_uri, text) == outcome(_general, text), text


@pytest.mark.parametrize(
    "text",
    ["sip:+15551234567@switch.example.com:5060", "sip:alice@192.0.2.101:5060;transport=tcp",
     "sips:biloxi.example.com", "sip:proxy.example.com;lr", "sip:b@h:65535;user=phone;x"],
)
def test_common_uris_take_the_fast_path(text: str) -> None:
    assert _COMMON.fullmatch(text) is not None
