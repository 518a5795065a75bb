"""NameAddr / parse_name_addr: display names, angle brackets, header parameters, lazy URI."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.sip import NameAddr, RemoteProtocolError, SipUri, parse_name_addr, parse_uri
from switchd.sip._address import parse_party
from tests.sip._fast_paths import HOSTS, NEAR, PORTS, mostly, near_misses


def test_a_quoted_display_name_is_unquoted_and_unescaped() -> None:
    address = parse_name_addr(r'"Alice \"Al\" Smith" <sip:alice@atlanta.example.com>;tag=1928301774')
    assert address.display_name == 'Alice "Al" Smith'
    assert address.uri == SipUri(user="alice", host="atlanta.example.com")
    assert address.tag == "1928301774"


def test_a_token_display_name_is_kept_as_written() -> None:
    address = parse_name_addr("Bob Smith <sip:bob@biloxi.example.com>")
    assert address.display_name == "Bob Smith" and address.tag is None


def test_a_display_name_may_contain_angle_brackets_inside_its_quotes() -> None:
    assert parse_name_addr('"a<b>" <sip:x@y.example.com>').display_name == "a<b>"


def test_params_inside_the_brackets_are_the_uris_and_after_them_the_headers() -> None:
    address = parse_name_addr("<sip:carol@chicago.example.com;transport=tcp>;expires=60;q=0.5")
    assert address.uri.param("transport") == "tcp"
    assert address.params == (("expires", "60"), ("q", "0.5"))
    assert address.param("EXPIRES") == "60"


def test_without_brackets_every_parameter_belongs_to_the_header() -> None:
    address = parse_name_addr("sip:alice@atlanta.example.com;tag=88sja8x")
    assert address.display_name is None
    assert address.uri == SipUri(user="alice", host="atlanta.example.com")
    assert address.tag == "88sja8x"


def test_quoted_parameter_values_keep_their_quotes() -> None:
    address = parse_name_addr('<sip:a@b.example.com>;+sip.instance="<urn:uuid:00000000>"')
    assert address.param("+sip.instance") == '"<urn:uuid:00000000>"'


@pytest.mark.parametrize(
    "text",
    ['"unterminated <sip:a@b>', "<sip:a@b", "Bob <>", "Bob@home <sip:a@b>", "sip:a@b?x=y",
     "<sip:a@b> junk", '"Alice" sip:a@b', "<sip:a@b>;=1"],
)
def test_malformed_addresses_are_a_400_naming_the_header(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_name_addr(text, "From")
    assert info.value.reason == "Bad From"


def test_a_bad_uri_inside_brackets_is_reported_when_the_uri_is_read() -> None:
    address = parse_name_addr("Alice <sip:alice@bad host>;tag=1", "From")
    assert address.tag == "1"
    with pytest.raises(RemoteProtocolError, match="From"):
        address.uri  # noqa: B018


def test_str_writes_a_name_addr_that_parses_back_equal() -> None:
    address = NameAddr('Al "the" Pal', parse_uri("sip:al@x.example.com;lr"), (("tag", "9"),))
    assert str(address) == r'"Al \"the\" Pal" <sip:al@x.example.com;lr>;tag=9'
    assert parse_name_addr(str(address)) == address


def test_with_tag_sets_or_replaces_the_tag_only() -> None:
    address = parse_name_addr("<sip:b@example.com>;tag=old;x=1")
    assert address.with_tag("new").params == (("x", "1"), ("tag", "new"))


def test_a_name_addr_is_immutable_and_hashable() -> None:
    address = parse_name_addr("<sip:b@example.com>")
    with pytest.raises(AttributeError):
        address.params = ()
    assert {address, parse_name_addr("<sip:b@example.com>")} == {address}


@pytest.mark.parametrize(
    ("params", "tag"),
    [((("TAG", "1"),), "1"), ((("x", None), ("Tag", "a"), ("tag", "b")), "a"), ((("tag", None),), None), ((), None)],
)
def test_the_tag_is_the_first_tag_parameter_in_any_case_and_none_when_empty(
    params: tuple[tuple[str, str | None], ...], tag: str | None,
) -> None:
    assert NameAddr(None, SipUri(host="h"), params).tag == tag


# --- parse_party: From and To with their URI, and its one-regex fast path ---------------------------


def _party_outcome(parse: Callable[[str], NameAddr], text: str) -> tuple[object, ...]:
    try:
        address = parse(text)
        return ("value", address.display_name, address.uri, repr(address.uri), address.params)
    except RemoteProtocolError as exc:
        return ("error", str(exc), exc.reason)


def _fast(text: str) -> NameAddr:
    return parse_party(text, "From")


def _general(text: str) -> NameAddr:
    address = parse_name_addr(text, "From")
    address.uri  # noqa: B018 - what parse_party reads at once
    return address


def test_parse_party_parses_the_uri_at_once() -> None:
    address = parse_party('"Alice" <sip:alice@atlanta.example.com:5060>;tag=1928301774', "From")
    assert address._uri == SipUri(user="alice", host="atlanta.example.com", port=5060)  # no longer text
    with pytest.raises(RemoteProtocolError, match="Bad From|malformed From"):
        parse_party("Alice <sip:alice@bad host>;tag=1", "From")


@pytest.mark.parametrize("tag", ['"quoted"', "a/b", "a:b", "[x]"])
def test_a_tag_that_is_not_a_token_is_refused(tag: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_name_addr(f"<sip:a@b.example.com>;tag={tag}", "To")
    assert info.value.reason == "Bad To"


def test_any_character_in_any_part_of_a_common_party_gets_what_the_general_parser_gives() -> None:
    parts = {"display": "Alice", "user": "alice", "host": "atlanta.example.com", "port": "5060",
             "uparam": "transport=tcp", "tag": "1928301774"}
    for text in near_misses('"{display}" <sip:{user}@{host}:{port};{uparam}>;tag={tag}', parts):
        assert _party_outcome(_fast, text) == _party_outcome(_general, text), text


@settings(max_examples=300)
@given(
    display=st.none() | mostly(st.text("aZ09 -.", max_size=6), NEAR + "é"),
    user=st.none() | mostly(st.text("aZ09-_.!~*'()&=+$,/", min_size=1, max_size=6), NEAR + "%f"),
    host=HOSTS,
    port=PORTS,
    params=st.lists(st.tuples(mostly(st.text("aZ09-.!*_+'~", min_size=1, max_size=4)),
                              st.none() | mostly(st.text("aZ09-.!*_+'~", min_size=1, max_size=4))), max_size=2),
)
def test_the_fast_path_of_parse_party_gives_exactly_what_the_general_parser_gives(
    display: str | None, user: str | None, host: str, port: int | None, params: list[tuple[str, str | None]],
) -> None:
    uri = f"sip:{'' if user is None else user + '@'}{host if port is None else f'{host}:{port}'}"
    header = "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)
    text = f"{'' if display is None else chr(34) + display + chr(34) + ' '}<{uri}>{header}"
    assert _party_outcome(_fast, text) == _party_outcome(_general, text)
