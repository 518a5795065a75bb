"""NameAddr / parse_name_addr: display names, angle brackets, header parameters, lazy URI."""

from __future__ import annotations

import pytest

from switchd.sip import NameAddr, RemoteProtocolError, SipUri, parse_name_addr, parse_uri


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
