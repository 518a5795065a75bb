"""Headers: ordered, case-insensitive, compact forms, comma lists split only where RFC 3261 allows."""

from __future__ import annotations

import pytest

from switchd.sip import Headers, LocalProtocolError, canonical_name


def test_names_are_case_insensitive() -> None:
    headers = Headers([("call-id", "a@b")])
    assert headers.get("Call-ID") == headers.get("CALL-ID") == "a@b"
    assert "cAlL-iD" in headers


@pytest.mark.parametrize(
    ("compact", "full"),
    [("i", "Call-ID"), ("m", "Contact"), ("f", "From"), ("t", "To"), ("v", "Via"), ("l", "Content-Length"),
     ("c", "Content-Type"), ("k", "Supported"), ("s", "Subject"), ("e", "Content-Encoding"), ("o", "Event"),
     ("u", "Allow-Events"), ("r", "Refer-To")],
)
def test_compact_forms_are_normalised_to_the_full_name(compact: str, full: str) -> None:
    headers = Headers([(compact, "x")])
    assert list(headers) == [(full, "x")]
    assert headers.get(full) == "x" and headers.get(compact) == "x"
    assert canonical_name(compact.upper()) == full


def test_fields_keep_their_order_across_names() -> None:
    headers = Headers([("Via", "a"), ("From", "f"), ("Via", "b")])
    assert list(headers) == [("Via", "a"), ("From", "f"), ("Via", "b")]
    assert len(headers) == 3


def test_get_all_splits_comma_lists_but_never_inside_quotes_or_angle_brackets() -> None:
    headers = Headers([
        ("Contact", '"Doe, John" <sip:j@a.example.com;x=1,2>, <sip:k@b.example.com>'),
        ("Contact", "sip:l@c.example.com"),
    ])
    assert headers.get_all("Contact") == [
        '"Doe, John" <sip:j@a.example.com;x=1,2>', "<sip:k@b.example.com>", "sip:l@c.example.com",
    ]
    assert headers.get("Contact") == '"Doe, John" <sip:j@a.example.com;x=1,2>'


def test_a_quoted_string_with_an_escaped_quote_does_not_end_early() -> None:
    headers = Headers([("Route", r'"a \", b" <sip:p1.example.com;lr>, <sip:p2.example.com;lr>')])
    assert headers.get_all("Route") == [r'"a \", b" <sip:p1.example.com;lr>', "<sip:p2.example.com;lr>"]


@pytest.mark.parametrize("name", ["WWW-Authenticate", "Authorization", "Date", "Subject", "X-Custom"])
def test_headers_that_are_not_comma_lists_are_never_split(name: str) -> None:
    value = 'Digest realm="a", nonce="b"' if "Auth" in name else "Sat, 13 Nov 2010 23:29:00 GMT"
    assert Headers([(name, value)]).get_all(name) == [value]


def test_set_replaces_every_field_of_a_name_where_the_first_was() -> None:
    headers = Headers([("Via", "a"), ("From", "f"), ("Via", "b")])
    headers.set("via", "c")
    assert list(headers) == [("Via", "c"), ("From", "f")]
    headers.set("To", "t")
    assert list(headers)[-1] == ("To", "t")


def test_prepend_puts_a_field_above_the_others_of_its_name() -> None:
    headers = Headers([("From", "f"), ("Via", "a")])
    headers.prepend("Via", "new")
    assert list(headers) == [("From", "f"), ("Via", "new"), ("Via", "a")]
    headers.prepend("Record-Route", "<sip:me;lr>")
    assert next(iter(headers)) == ("Record-Route", "<sip:me;lr>")


def test_remove_drops_every_field_of_a_name_and_says_how_many() -> None:
    headers = Headers([("Via", "a"), ("v", "b"), ("From", "f")])
    assert headers.remove("VIA") == 2
    assert list(headers) == [("From", "f")]
    assert headers.remove("Via") == 0


def test_get_returns_the_default_when_absent() -> None:
    assert Headers().get("To") is None
    assert Headers().get("To", "x") == "x"
    assert Headers().get_all("Via") == []


@pytest.mark.parametrize(("name", "value"), [("X-A", "one\r\nInjected: yes"), ("X-A", "a\nb"), ("Bad Name", "v"),
                                              ("", "v"), ("X:Y", "v")])
def test_adding_a_field_that_would_break_the_wire_format_is_a_local_error(name: str, value: str) -> None:
    with pytest.raises(LocalProtocolError):
        Headers().add(name, value)


def test_values_are_stripped_of_surrounding_whitespace() -> None:
    headers = Headers()
    headers.add("Subject", "  hello  ")
    assert headers.get("Subject") == "hello"


def test_equality_compares_names_and_values_in_order() -> None:
    assert Headers([("v", "a"), ("To", "b")]) == Headers([("Via", "a"), ("to", "b")])
    assert Headers([("Via", "a"), ("To", "b")]) != Headers([("To", "b"), ("Via", "a")])


def test_copy_is_independent() -> None:
    original = Headers([("Via", "a")])
    copy = original.copy()
    copy.add("Via", "b")
    assert len(original) == 1 and len(copy) == 2
