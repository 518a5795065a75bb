"""Shared grammar pieces: generic params, comma lists, host:port, quoted strings."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.sip import CSeq, Method, NameAddr, RemoteProtocolError, SipUri, Via
from switchd.sip._grammar import (
    TOKEN_PARAMS,
    draft_class,
    find_param,
    format_params,
    get_param,
    parse_params,
    split_comma,
    split_hostport,
    split_params,
    unquote,
)


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("", ()),
        (";lr", (("lr", None),)),
        (";tag=abc", (("tag", "abc"),)),
        (";branch=z9hG4bK-1;rport;received=192.0.2.1", (("branch", "z9hG4bK-1"), ("rport", None),
                                                        ("received", "192.0.2.1"))),
        (" ; q = 0.5 ;x", (("q", "0.5"), ("x", None))),
        (';n="a;b, c"', (("n", '"a;b, c"'),)),
        (";maddr=[2001:db8::1]", (("maddr", "[2001:db8::1]"),)),
    ],
)
def test_params_parse_in_order_with_flags_and_quoted_values(
    text: str, params: tuple[tuple[str, str | None], ...]
) -> None:
    assert parse_params(text, "Via") == params


@pytest.mark.parametrize("text", [";", ";=x", ";a=", ";a=b=c", "x;a=b", ";a b=c", ';a="open'])
def test_malformed_params_name_the_element_they_belong_to(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_params(text, "Contact", f"<sip:x>{text}")
    assert info.value.reason == "Bad Contact" and "<sip:x>" in str(info.value)


def test_param_lookup_is_case_insensitive_and_flags_read_as_empty() -> None:
    params = (("Transport", "tcp"), ("lr", None))
    assert (get_param(params, "transport"), get_param(params, "LR"), get_param(params, "x")) == ("tcp", "", None)
    assert format_params(params) == ";Transport=tcp;lr"


def test_find_param_finds_what_get_param_finds_for_a_lower_case_name() -> None:
    params = (("x", "1"), ("BRANCH", "z9hG4bK1"), ("branch", "z9hG4bK2"), ("rport", None))
    for name in ("branch", "rport", "x", "tag"):
        assert find_param(params, name) == get_param(params, name)
    assert find_param(params, "branch") == "z9hG4bK1"  # the first, whatever its case


def test_comma_lists_split_outside_quotes_and_brackets_and_drop_empty_elements() -> None:
    assert split_comma('a, "b, c" <sip:d;x=1,2>,, e') == ["a", '"b, c" <sip:d;x=1,2>', "e"]
    assert split_comma("") == [] and split_comma("one") == ["one"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("example.com", ("example.com", None)), ("192.0.2.1:5060", ("192.0.2.1", 5060)),
     ("[::1]", ("[::1]", None)), ("[2001:db8::1]:5061", ("[2001:db8::1]", 5061))],
)
def test_host_and_port_split(text: str, expected: tuple[str, int | None]) -> None:
    assert split_hostport(text, "Via", text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:65536", "-host", "[::1", "[::1]x", "ho st", "h:1:2"])
def test_bad_host_or_port_is_rejected(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        split_hostport(text, "Via", text)


def test_unquote_resolves_escapes() -> None:
    assert unquote(r'"a \"b\" \\ c"') == r'a "b" \ c'
    assert unquote("token") == "token"


def test_a_filled_draft_becomes_a_value_indistinguishable_from_the_constructed_one() -> None:
    draft = draft_class(Via)()
    draft.transport, draft.host, draft.port, draft.params, draft.protocol = "TCP", "h", 5060, (), "SIP/2.0"
    draft.__class__ = Via
    built = Via("TCP", "h", 5060)
    assert type(draft) is Via and draft == built and hash(draft) == hash(built) and repr(draft) == repr(built)
    with pytest.raises(AttributeError):
        draft.host = "other"  # type: ignore[misc]  # frozen again


@pytest.mark.parametrize("cls", [SipUri, Via, CSeq, NameAddr])
def test_a_draft_has_exactly_the_slots_of_its_value(cls: type) -> None:
    assert draft_class(cls).__slots__ == cls.__slots__  # type: ignore[attr-defined]


def test_a_draft_cannot_become_a_class_of_another_layout() -> None:
    draft = draft_class(CSeq)()
    draft.seq, draft.method = 1, Method.INVITE
    with pytest.raises(TypeError):
        draft.__class__ = Via


@given(st.text(";=ab9-.!%*_+`'~", max_size=12).map(lambda text: ";" + text if text else text))
def test_split_params_gives_what_parse_params_gives_or_none_where_it_raises(text: str) -> None:
    assert re.fullmatch(TOKEN_PARAMS, text)
    try:
        expected = parse_params(text, "Via")
    except RemoteProtocolError:
        expected = None
    assert split_params(text) == expected
